//go:build linux

package fanotify

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// unavailable wraps err in ErrUnavailable with the reason and what happens
// next.
func unavailable(why string, err error) error {
	return fmt.Errorf("%w: %s (%w); the agent falls back to the scanner", ErrUnavailable, why, err)
}

// initError explains a failed fanotify_init(2).
func initError(err error) error {
	kernel := kernelRelease()
	switch {
	case errors.Is(err, unix.EPERM):
		return unavailable("fanotify_init with an unlimited queue needs CAP_SYS_ADMIN in the initial user namespace: run the agent as root", err)
	case errors.Is(err, unix.EINVAL):
		return unavailable("kernel "+kernel+" does not support FAN_REPORT_DFID_NAME_TARGET: fanotify needs Linux 5.17 or later", err)
	case errors.Is(err, unix.ENOSYS):
		return unavailable("kernel "+kernel+" is built without fanotify (CONFIG_FANOTIFY)", err)
	case errors.Is(err, unix.EMFILE):
		return unavailable("too many fanotify groups: raise fs.fanotify.max_user_groups", err)
	default:
		return unavailable("fanotify_init failed", err)
	}
}

// markError explains a failed fanotify_mark(2) of root's filesystem. An
// EINVAL is told apart by trying the mark again without FAN_RENAME, the
// newest event in the mask; that mark, if made, goes with fd.
func markError(fd int, root string, err error) error {
	kernel := kernelRelease()
	switch {
	case errors.Is(err, unix.EINVAL):
		if unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, markMask&^unix.FAN_RENAME, unix.AT_FDCWD, root) == nil {
			return unavailable("kernel "+kernel+" does not support FAN_RENAME: fanotify needs Linux 5.17 or later", err)
		}
		return unavailable("fanotify_mark refused a filesystem mark on "+root, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return unavailable("a filesystem mark needs CAP_SYS_ADMIN in the initial user namespace: run the agent as root", err)
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.EOPNOTSUPP):
		return unavailable("the filesystem of "+root+" does not report file handles with an fsid", err)
	case errors.Is(err, unix.EXDEV):
		return unavailable("the filesystem of "+root+" is a subvolume with its own fsid, which fanotify cannot mark", err)
	case errors.Is(err, unix.ENOSPC):
		return unavailable("too many fanotify marks: raise fs.fanotify.max_user_marks", err)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("fanotify: root %s: %w", root, err)
	default:
		return unavailable("fanotify_mark of the filesystem of "+root+" failed", err)
	}
}

// kernelRelease is the running kernel's release, for error messages.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown release)"
	}
	return unix.ByteSliceToString(u.Release[:])
}
