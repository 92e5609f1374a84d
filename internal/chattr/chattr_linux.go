// Package chattr sets file flags for tests: a file the peer cannot replace
// or remove (chattr +i) is how tests make rsync fail on one path.
package chattr

import (
	"testing"

	"golang.org/x/sys/unix"
)

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h (chattr +i).
const fsImmutableFL = 0x10

// Immutable sets the immutable flag on path (FS_IOC_SETFLAGS) and clears
// it at cleanup, before a temporary directory holding it is removed. The
// filesystem must support the flag (ext4 does, tmpfs does not).
func Immutable(t testing.TB, path string) {
	t.Helper()
	if err := set(path, true); err != nil {
		t.Fatalf("set immutable flag on %s (needs a filesystem with chattr +i, such as ext4): %v", path, err)
	}
	t.Cleanup(func() {
		if err := set(path, false); err != nil {
			t.Errorf("clear immutable flag on %s: %v", path, err)
		}
	})
}

func set(path string, on bool) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
}
