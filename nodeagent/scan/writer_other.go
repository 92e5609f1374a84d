//go:build !linux

package scan

// openForWriting cannot tell on this system (FreeBSD has no file leases):
// the settle period decides.
func openForWriting(int, string) (open, known bool) { return false, false }

// WriterHolds cannot tell on this system.
func WriterHolds(int, string) (held, known bool) { return false, false }
