package fanotify

import "errors"

// ErrUnavailable is returned, wrapped with the reason, by New when fanotify
// cannot watch the root on this host: the operating system is not Linux,
// the agent lacks CAP_SYS_ADMIN, the kernel is older than 5.17 or built
// without fanotify, the root's filesystem does not support file handles, or
// the fanotify limits are reached. Callers fall back to the scanner.
var ErrUnavailable = errors.New("fanotify unavailable")
