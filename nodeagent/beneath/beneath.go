package beneath

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrOutside is returned for a path that is absolute, climbs with "..", or
// passes through a symlink: resolving it could leave the root.
var ErrOutside = errors.New("path leaves the data root or passes through a symlink")

// checkRel refuses paths that are not clean and relative.
func checkRel(rel string) error {
	if rel == "." {
		return nil
	}
	if rel == "" || strings.HasPrefix(rel, "/") {
		return fmt.Errorf("%q: %w", rel, ErrOutside)
	}
	for c := range strings.SplitSeq(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q: %w", rel, ErrOutside)
		}
	}
	return nil
}

// Lstat returns the lstat of rel, resolved beneath the directory rootfd:
// every directory on the way is opened without following symlinks; the last
// component is not followed either.
func Lstat(rootfd int, rel string, st *unix.Stat_t) error {
	if err := checkRel(rel); err != nil {
		return err
	}
	if rel == "." {
		return unix.Fstat(rootfd, st)
	}
	dir, name := ".", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, name = rel[:i], rel[i+1:]
	}
	dfd := rootfd
	if dir != "." {
		fd, err := Open(rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		dfd = fd
	}
	if err := unix.Fstatat(dfd, name, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lstat %q: %w", rel, err)
	}
	return nil
}

// OpenRoot opens the data root itself as a directory.
func OpenRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open data root %s: %w", root, err)
	}
	return fd, nil
}
