package beneath

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Open opens rel beneath the directory rootfd with openat2(2): no "..",
// no absolute path, no symlink anywhere, including the last component.
func Open(rootfd int, rel string, flags int, mode uint32) (int, error) {
	if err := CheckRel(rel); err != nil {
		return -1, err
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(rootfd, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue // RESOLVE_* retries after a concurrent rename
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
			return -1, fmt.Errorf("open %q: %w (%v)", rel, ErrOutside, err)
		case errors.Is(err, unix.ENOTDIR) && isSymlink(rootfd, rel):
			// O_DIRECTORY|O_NOFOLLOW on a final symlink fails with ENOTDIR.
			return -1, fmt.Errorf("open %q: %w (%v)", rel, ErrOutside, err)
		default:
			return -1, fmt.Errorf("open %q: %w", rel, err)
		}
	}
}

// isSymlink reports whether rel, resolved beneath rootfd, is a symlink.
func isSymlink(rootfd int, rel string) bool {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(rootfd, rel, &how)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}
