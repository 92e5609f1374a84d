package receiver

import "golang.org/x/sys/unix"

// renameNoReplace renames without replacing a new name made since it was
// found free (renameat2(2), RENAME_NOREPLACE: EEXIST instead), so that a
// file a local process makes there meanwhile is never lost.
func renameNoReplace(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_NOREPLACE)
}
