package scan

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// openForWriting reports whether a process has the regular file name (in
// the directory dirfd) open for writing: a read lease (fcntl(2)
// F_SETLEASE, F_RDLCK) fails with EAGAIN while any writer holds it. known
// is false where leases cannot tell (not a regular file, leases disabled).
func openForWriting(dirfd int, name string) (open, known bool) {
	// Only a regular file is opened: opening a FIFO would release a writer
	// blocked in its open, and opening a device runs its driver's open.
	var pre unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &pre, unix.AT_SYMLINK_NOFOLLOW); err != nil || pre.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, false
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, false
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == nil:
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		return false, true
	case errors.Is(err, unix.EAGAIN):
		return true, true
	}
	return false, false
}

// WriterHolds reports whether a writer holds the file rel (beneath rootfd)
// open; known is false where the system cannot tell. A path that no longer
// exists, or is not a regular file, has no writer.
func WriterHolds(rootfd int, rel string) (held, known bool) {
	dir, name := ".", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, name = rel[:i], rel[i+1:]
	}
	dfd, err := beneath.Open(rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return false, errors.Is(err, unix.ENOENT)
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, errors.Is(err, unix.ENOENT)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, true
	}
	return openForWriting(dfd, name)
}
