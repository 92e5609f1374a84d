package scan

import (
	"errors"

	"golang.org/x/sys/unix"
)

// openForWriting reports whether a process has the regular file name (in
// the directory dirfd) open for writing: a read lease (fcntl(2)
// F_SETLEASE, F_RDLCK) fails with EAGAIN while any writer holds it. known
// is false where leases cannot tell (not a regular file, leases disabled).
func openForWriting(dirfd int, name string) (open, known bool) {
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
