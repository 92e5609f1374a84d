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

// CheckRel refuses paths that are not clean and relative ("." is the
// root), as every function here does.
func CheckRel(rel string) error {
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
	if err := CheckRel(rel); err != nil {
		return err
	}
	if rel == "." {
		return unix.Fstat(rootfd, st)
	}
	return at(rootfd, rel, func(dfd int, name string) error {
		if err := unix.Fstatat(dfd, name, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("lstat %q: %w", rel, err)
		}
		return nil
	})
}

// RemoveEmptyDirKeepingTimes removes rel, resolved beneath the directory
// rootfd as Lstat resolves it, where it is an empty directory (rmdir:
// ENOTEMPTY and ENOTDIR otherwise, and nothing is removed), and then sets
// the times of rel's directory back to what they were just before: the
// removal is no change of that directory's own. A run's rsync made rel there, only
// to remove or reach something below it, and set the directory's times
// to its sender's (an implied directory) after; the removal moved them
// again, to the moment of the removal: recorded so (the receiver records
// the times of the directories above what a run put), this member kept
// other times on that directory than every other member; not recorded,
// the detector took them for a change of this member's, sent to every
// member with the times of the directories above it (read from the
// stress test's Kill9 seed 113 of the sixty-first session, whose member
// sent a directory's times that a run's removals there had moved).
func RemoveEmptyDirKeepingTimes(rootfd int, rel string) error {
	if err := CheckRel(rel); err != nil {
		return err
	}
	if rel == "." {
		return fmt.Errorf("rmdir %q: the root itself", rel)
	}
	return at(rootfd, rel, func(dfd int, name string) error {
		var st unix.Stat_t
		if err := unix.Fstat(dfd, &st); err != nil {
			return fmt.Errorf("rmdir %q: stat its directory: %w", rel, err)
		}
		if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil {
			return fmt.Errorf("rmdir %q: %w", rel, err)
		}
		if err := unix.UtimesNanoAt(dfd, ".", []unix.Timespec{st.Atim, st.Mtim}, 0); err != nil {
			return fmt.Errorf("rmdir %q: set its directory's times back: %w", rel, err)
		}
		return nil
	})
}

// Readlink returns the target of the symlink rel, resolved beneath the
// directory rootfd as Lstat resolves it.
func Readlink(rootfd int, rel string) (string, error) {
	if err := CheckRel(rel); err != nil {
		return "", err
	}
	if rel == "." {
		return "", fmt.Errorf("readlink %q: %w", rel, unix.EINVAL)
	}
	var target string
	err := at(rootfd, rel, func(dfd int, name string) error {
		for size := 256; ; size *= 4 {
			buf := make([]byte, size)
			n, err := unix.Readlinkat(dfd, name, buf)
			if err != nil {
				return fmt.Errorf("readlink %q: %w", rel, err)
			}
			if n < size {
				target = string(buf[:n])
				return nil
			}
		}
	})
	return target, err
}

// at calls fn with the directory of rel, opened beneath rootfd without
// following symlinks, and rel's last component; rel is checked already.
func at(rootfd int, rel string, fn func(dfd int, name string) error) error {
	dir, name := ".", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, name = rel[:i], rel[i+1:]
	}
	if dir == "." {
		return fn(rootfd, name)
	}
	fd, err := Open(rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd, name)
}

// OpenRoot opens the data root itself as a directory.
func OpenRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open data root %s: %w", root, err)
	}
	return fd, nil
}
