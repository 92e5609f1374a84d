// Package bsm decodes BSM audit records, the binary format FreeBSD's
// kernel writes to /dev/auditpipe and to audit trails, in portable Go with
// no build tags.
//
// A Reader reassembles records from a byte stream (a pipe read returns
// several records and part of one), frames each by the header's size
// field, checks the trailer, and skips what does not frame. Decode and
// DecodeToken work on bytes in memory. A Record holds its tokens in order
// with typed accessors (Header, Subject, Arg, Return, Attr, Path,
// Zonename), and Record.Change maps a kernel file record onto the change
// model of package change. WriteText and WriteJSON render records for
// people and for tools.
//
// Token layouts follow OpenBSM's libbsm/bsm_io.c and bsm_token.c, and the
// kernel's token order per system call follows kaudit_to_bsm() in
// FreeBSD's sys/security/audit/audit_bsm.c; docs/freebsd-audit.md in the
// shared documentation summarises both. Package bsmtest builds records in
// the kernel's shapes for tests.
//
// # Caveats
//
// Decoding is allocation-light: records and tokens from a Reader alias its
// buffer and are valid only until the next call to Next (Record.Clone
// keeps one).
//
// BSM tokens carry no generic length. A record holding a token id this
// package does not know is returned with ErrUnknownToken and the tokens
// before it; its framing is checked independently, so the stream stays in
// sync.
//
// Resynchronisation after a corrupt size field scans for the next header
// whose size leads to a valid trailer. When that size points past the
// bytes read so far, the Reader waits for that many bytes (at most the
// record size cap, DefaultMaxRecordSize) or the end of the input before it
// can decide: on a quiet pipe the records behind a corrupt one may be
// delayed until more records arrive. Records nested in a skipped region
// (for example inside a path token's bytes) are not looked for once the
// enclosing record framed.
//
// Record.Change can only say what the record says. Path tokens hold the
// path as the process gave it, prefixed with the global path of its root
// or working directory: symlinks in it are not resolved, and change.Rel
// cleans ".." lexically. attr32 modes hold permission bits without the
// file type, so unlinkat(2) with AT_REMOVEDIR reads as Remove, not Rmdir,
// and a rename into the root from outside reads as Subtree (walk it),
// whatever was moved. Writes through an already open descriptor,
// copy_file_range(2) and implicit closes (exit, exec, dup2, close_range)
// produce no record: pair opens with closes by (PID, FD) and fall back to
// a quiet period.
package bsm
