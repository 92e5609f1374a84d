package beneath

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// maxDirs bounds the directories a Dirs keeps open; when it is full it
// closes them all and starts over.
const maxDirs = 64

// Dirs is Lstat for many paths at once: it keeps the directories it opened
// (each one resolved beneath the root as Open does), so that the paths of
// one directory cost one open between them instead of one each (on Linux
// an lstat below the root's top level is openat2, fstatat and close).
// Use one for a batch of paths taken at one moment and Close it: a kept
// directory that is renamed meanwhile still answers for its old path, as a
// directory renamed between the open and the fstatat of Lstat would. Not
// safe for concurrent use.
type Dirs struct {
	rootfd int
	fds    map[string]int
}

// NewDirs returns a Dirs for paths beneath rootfd.
func NewDirs(rootfd int) *Dirs { return &Dirs{rootfd: rootfd} }

// Lstat is Lstat(rootfd, rel, st) through the kept directories.
func (d *Dirs) Lstat(rel string, st *unix.Stat_t) error {
	if err := checkRel(rel); err != nil {
		return err
	}
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return Lstat(d.rootfd, rel, st)
	}
	dir, name := rel[:i], rel[i+1:]
	dfd, ok := d.fds[dir]
	if !ok {
		fd, err := Open(d.rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		if len(d.fds) >= maxDirs {
			d.Close()
		}
		if d.fds == nil {
			d.fds = make(map[string]int)
		}
		d.fds[dir], dfd = fd, fd
	}
	if err := unix.Fstatat(dfd, name, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lstat %q: %w", rel, err)
	}
	return nil
}

// Close closes the kept directories; the Dirs may be used again.
func (d *Dirs) Close() {
	for _, fd := range d.fds {
		unix.Close(fd)
	}
	clear(d.fds)
}
