//go:build !linux

package receiver

import "golang.org/x/sys/unix"

// renameNoReplace is renameat(2): FreeBSD has no flag to refuse an
// existing new name, so a file made there between the receiver's check
// and the rename is replaced (a window of microseconds; the peer's own
// change of that name then arrives as a conflict of the next issue).
func renameNoReplace(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.Renameat(olddirfd, oldpath, newdirfd, newpath)
}
