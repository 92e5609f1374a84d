package beneath

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Open opens rel beneath the directory rootfd one component at a time, each
// with O_NOFOLLOW|O_RESOLVE_BENEATH (open(2): O_RESOLVE_BENEATH), so that no
// symlink is followed anywhere on the way.
func Open(rootfd int, rel string, flags int, mode uint32) (int, error) {
	if err := CheckRel(rel); err != nil {
		return -1, err
	}
	if rel == "." {
		return unix.Openat(rootfd, ".", flags|unix.O_CLOEXEC, mode)
	}
	comps := strings.Split(rel, "/")
	dfd := rootfd
	for i, c := range comps {
		last := i == len(comps)-1
		fl := unix.O_RDONLY | unix.O_DIRECTORY
		if last {
			fl = flags
		}
		fd, err := unix.Openat(dfd, c, fl|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_RESOLVE_BENEATH, mode)
		if dfd != rootfd {
			unix.Close(dfd)
		}
		if err != nil {
			// A symlink under O_NOFOLLOW fails with EMLINK on FreeBSD
			// (ELOOP elsewhere); an escape under O_RESOLVE_BENEATH with
			// ENOTCAPABLE.
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) || errors.Is(err, unix.ENOTCAPABLE) {
				return -1, fmt.Errorf("open %q: %w (%v)", rel, ErrOutside, err)
			}
			return -1, fmt.Errorf("open %q: %w", rel, err)
		}
		dfd = fd
	}
	return dfd, nil
}
