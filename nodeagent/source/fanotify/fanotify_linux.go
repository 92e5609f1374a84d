//go:build linux

package fanotify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

var _ source.Source = (*Source)(nil)

// initFlags make a notification group (no permission events) that reports
// file handles instead of open descriptors, with no limit on queued
// events: the directory and entry name of each event, and the object's own
// handle, for dirent events too (FAN_REPORT_DFID_NAME_TARGET, Linux 5.17).
// With the object's handle the kernel merges queued events only when they
// are about the same object, and a rename can be checked against what its
// new name holds when read. FAN_NONBLOCK lets Go's poller wait on the
// group, so that Run can be cancelled. See fanotify_init(2),
// https://man7.org/linux/man-pages/man2/fanotify_init.2.html.
const initFlags = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK |
	unix.FAN_UNLIMITED_QUEUE | unix.FAN_REPORT_DFID_NAME_TARGET

// markMask are the events marked on the root's filesystem
// (fanotify_mark(2), https://man7.org/linux/man-pages/man2/fanotify_mark.2.html).
// FAN_RENAME reports both names of a rename in one event, so FAN_MOVED_FROM
// and FAN_MOVED_TO would only repeat it. FAN_DELETE_SELF is not needed: the
// removal of any object, the root included, is a FAN_DELETE in its parent.
// FAN_Q_OVERFLOW is always reported and cannot be marked.
const markMask = unix.FAN_CREATE | unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB |
	unix.FAN_DELETE | unix.FAN_RENAME | unix.FAN_ONDIR

// readBufSize holds many events; the largest, a rename with two names and
// three handles, takes about 1 KiB.
const readBufSize = 64 << 10

// Source reports the changes under one data root from a fanotify
// filesystem mark. Make it with New; Run it once.
type Source struct {
	opts source.Options
	root string
	// group is the fanotify descriptor, nonblocking, in Go's poller.
	group *os.File
	// res turns directory handles into paths; used by Run only.
	res *resolver
	// links are the unfinished names of multiply linked files.
	links openLinks
	// buf receives events, changes the changes of one event.
	buf       []byte
	changes   []change.Change
	closeOnce sync.Once
}

// New starts watching the filesystem that holds opts.Root. It fails with an
// error wrapping ErrUnavailable when fanotify cannot be used here (see the
// package documentation); the caller then falls back to the scanner. The
// events that happen after New returns are reported by Run.
func New(opts source.Options) (*Source, error) {
	return newSource(opts, primeDirs)
}

// newSource is New with the number of directories to prime the directory
// cache with (resolver.prime; tests take 0 for directories never seen).
func newSource(opts source.Options, prime int) (*Source, error) {
	root := opts.Root
	if !filepath.IsAbs(root) || filepath.Clean(root) != root {
		return nil, fmt.Errorf("fanotify: root %q must be absolute and clean", root)
	}
	if real, err := filepath.EvalSymlinks(root); err != nil {
		return nil, fmt.Errorf("fanotify: root: %w", err)
	} else if real != root {
		return nil, fmt.Errorf("fanotify: root %q must have its symlinks resolved (%q): the kernel reports %q", root, real, real)
	}
	fd, err := unix.FanotifyInit(initFlags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, initError(err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, markMask, unix.AT_FDCWD, root); err != nil {
		err = markError(fd, root, err)
		unix.Close(fd)
		return nil, err
	}
	quiet(fd, root, opts.Quiet)
	mount, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify: open root %s: %w", root, err)
	}
	s := &Source{
		opts:  opts,
		root:  root,
		group: os.NewFile(uintptr(fd), "fanotify"),
		res: &resolver{
			mount: mount,
			root:  root,
			cache: newDirCache(),
			link:  make([]byte, unix.PathMax+1),
		},
		buf: make([]byte, readBufSize),
	}
	// After the mark: a directory moved while the walk runs is put where
	// the walk finds it, and its rename's event, read later, puts it there
	// again (renameCached).
	s.res.prime(prime, opts.Exclude)
	return s, nil
}

// quietMask is what an ignore mark on a quiet directory drops: every event
// of its entries (FAN_EVENT_ON_CHILD), before the kernel queues it.
const quietMask = markMask&^unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD

// quiet puts an ignore mark (FAN_MARK_IGNORE_SURV, Linux 6.0: ignores
// events on the directory's children too, and survives their
// modification) on each of the directories, so that the rsync daemon's
// writes into its temp directory cost neither a queued event nor a read
// here. Without it (older kernels, a directory missing) those events come
// and Exclude drops them: only the cost differs, so failures are ignored.
// Each directory is opened beneath the root with no symlink on the way and
// marked by its descriptor: a link planted in its place (pointing at a
// data directory) must not get the mark and mute that directory's events.
func quiet(fd int, root string, dirs []string) {
	rootfd, err := beneath.OpenRoot(root)
	if err != nil {
		return
	}
	defer unix.Close(rootfd)
	for _, d := range dirs {
		dfd, err := beneath.Open(rootfd, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		_ = unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORE_SURV, quietMask, dfd, "")
		unix.Close(dfd)
	}
}

// SeesClose reports true: fanotify reports the close of a written file.
func (s *Source) SeesClose() bool { return true }

// Close releases the fanotify group of a Source whose Run was never
// called. Run releases it when it returns; Close is then a no-op. Do not
// call Close while Run runs: cancel Run's context.
func (s *Source) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = errors.Join(s.group.Close(), unix.Close(s.res.mount))
	})
	return err
}

// Run reads events and sends their changes to out until ctx ends, then
// closes the group and returns nil. It returns an error when the group
// cannot be read.
func (s *Source) Run(ctx context.Context, out chan<- change.Change) error {
	defer s.Close()
	// A deadline in the past wakes a blocked read when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = s.group.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		n, err := s.group.Read(s.buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fanotify: read events: %w", err)
		}
		if err := s.dispatch(ctx, s.buf[:n], out); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// dispatch maps the events in buf to changes and sends them to out.
func (s *Source) dispatch(ctx context.Context, buf []byte, out chan<- change.Change) error {
	now := time.Now()
	for len(buf) > 0 {
		ev, rest, err := nextEvent(buf)
		if ev.fd >= 0 {
			// Not expected in file handle mode (FAN_NOFD); never leak one.
			unix.Close(int(ev.fd))
		}
		switch {
		case errors.Is(err, errVersion):
			return fmt.Errorf("fanotify: %w", err)
		case err != nil:
			// The rest of this read does not frame: its events are lost.
			return send(ctx, out, s.lostEvents(now))
		}
		s.changes = s.eventChanges(s.changes[:0], &ev, now)
		for _, c := range s.changes {
			if err := send(ctx, out, c); err != nil {
				return err
			}
		}
		buf = rest
	}
	return nil
}

func send(ctx context.Context, out chan<- change.Change, c change.Change) error {
	select {
	case out <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
