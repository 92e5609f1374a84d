package sender

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// rsyncDir returns the directory rsync's clients run in for the root held
// open as rootfd: /proc/self/fd/N, which a child resolves in its chdir
// before exec (the descriptor is still open then) to the directory the
// sender holds, as its plans and re-checks see it, and not to whatever has
// the root's path now: a filesystem mounted over the root, or a copy moved
// into its place, until the detector's next check of the root stops the
// group (every second). Where /proc is not mounted, the path.
func rsyncDir(root string, rootfd int) string {
	p := "/proc/self/fd/" + strconv.Itoa(rootfd)
	var a, b unix.Stat_t
	if unix.Stat(p, &a) != nil || unix.Fstat(rootfd, &b) != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		return root
	}
	return p
}
