//go:build linux

package fanotify

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestInitAndMarkErrors: every refusal of fanotify_init(2) and
// fanotify_mark(2) says what the operator can do (a newer kernel, root, a
// sysctl), keeps the errno, and is ErrUnavailable (the agent falls back to
// the scanner) except for a root that does not exist. The FAN_RENAME case
// is told apart by a second mark on a real group, which this kernel
// accepts without FAN_RENAME, as a 5.9-5.16 kernel would.
func TestInitAndMarkErrors(t *testing.T) {
	root := mountTmpfs(t)
	group, err := unix.FanotifyInit(initFlags, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(group)
	tests := []struct {
		name        string
		err         error
		errno       unix.Errno
		unavailable bool
		says        string
	}{
		{"init: old kernel", initError(unix.EINVAL), unix.EINVAL, true, "needs Linux 5.17 or later"},
		{"init: not root", initError(unix.EPERM), unix.EPERM, true, "run the agent as root"},
		{"init: no fanotify", initError(unix.ENOSYS), unix.ENOSYS, true, "built without fanotify"},
		{"init: too many groups", initError(unix.EMFILE), unix.EMFILE, true, "fs.fanotify.max_user_groups"},
		{"mark: no FAN_RENAME", markError(group, root, unix.EINVAL), unix.EINVAL, true, "does not support FAN_RENAME: fanotify needs Linux 5.17 or later"},
		{"mark: refused", markError(-1, root, unix.EINVAL), unix.EINVAL, true, "refused a filesystem mark on " + root},
		{"mark: not root", markError(-1, root, unix.EPERM), unix.EPERM, true, "run the agent as root"},
		{"mark: no file handles", markError(-1, root, unix.EOPNOTSUPP), unix.EOPNOTSUPP, true, "does not report file handles"},
		{"mark: subvolume", markError(-1, root, unix.EXDEV), unix.EXDEV, true, "subvolume"},
		{"mark: too many marks", markError(-1, root, unix.ENOSPC), unix.ENOSPC, true, "fs.fanotify.max_user_marks"},
		{"mark: no root", markError(-1, root, unix.ENOENT), unix.ENOENT, false, "root " + root},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if errors.Is(tc.err, ErrUnavailable) != tc.unavailable || !errors.Is(tc.err, tc.errno) || !strings.Contains(tc.err.Error(), tc.says) {
				t.Errorf("%v; want ErrUnavailable %t, %v, saying %q", tc.err, tc.unavailable, tc.errno, tc.says)
			}
		})
	}
}
