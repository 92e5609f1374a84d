package auditpipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/bsm"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// Device is the audit pipe device.
const Device = "/dev/auditpipe"

// noRecordsAfter is how long the source waits for a first record before it
// says that no audit trail seems to be active.
const noRecordsAfter = 10 * time.Second

// Source reads /dev/auditpipe. It implements source.Source.
type Source struct {
	opts    source.Options
	ownAUID uint32
	reap    time.Duration
	log     logr.Logger

	// trailInactive is set when no record arrived in the first
	// noRecordsAfter: no audit trail is active.
	trailInactive atomic.Bool

	mu sync.Mutex
	tr Translator

	// f is the pipe, opened by New: the records of what happens after New
	// returns are queued for Run, so that the start scan that follows
	// misses nothing.
	f         *os.File
	fd        int
	closeOnce sync.Once
}

// TrailInactive reports whether the kernel delivers no records because no
// audit trail is active (reason AuditTrailInactive in the agent's status).
func (s *Source) TrailInactive() bool { return s.trailInactive.Load() }

// New returns the auditpipe source for opts.Root. ownAUID is the audit user
// id the agent's rsync receiver runs under (bsm.AUIDUnset for none): the
// pipe is told to select nothing of it, and what still arrives is marked
// Echo. reap is how often files of exited processes are reported closed
// (the settle period).
//
// The pipe is opened and configured here, before the caller's start scan,
// as fanotify marks the filesystem in its New: a write made between the
// scan of its directory and a later open of the pipe would be seen by
// neither. It fails with an error wrapping ErrUnavailable when the pipe
// cannot be used; the caller then falls back to the scanner.
func New(opts source.Options, ownAUID uint32, reap time.Duration, log logr.Logger) (*Source, error) {
	f, fd, err := open(ownAUID, log)
	if err != nil {
		return nil, err
	}
	return &Source{opts: opts, ownAUID: ownAUID, reap: reap, log: log,
		tr: Translator{Root: opts.Root, OwnAUID: ownAUID, OwnPID: opts.OwnPID}, f: f, fd: fd}, nil
}

// Close releases the pipe of a Source whose Run was never called.
func (s *Source) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.f.Close() })
	return err
}

// SeesClose is true: opens are tied to closes, and implicit closes are
// found by reaping exited processes.
func (s *Source) SeesClose() bool { return true }

// Run reads records until ctx ends.
func (s *Source) Run(ctx context.Context, out chan<- change.Change) error {
	f, fd := s.f, s.fd
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	defer s.Close()

	emit := func(c change.Change) {
		if s.opts.Exclude != nil && c.Op != change.Rescan && s.opts.Exclude(c.Path) {
			return
		}
		select {
		case out <- c:
		case <-ctx.Done():
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.watch(ctx, fd, emit) })
	defer wg.Wait()

	r := bsm.NewReader(f)
	for {
		rec, err := r.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", Device, err)
		}
		if s.trailInactive.Load() {
			s.trailInactive.Store(false)
			s.log.Info("audit records arrive again")
		}
		if rec.Err != nil {
			s.log.V(1).Info("audit record not decoded", "event", rec.Event, "error", rec.Err)
			continue
		}
		s.mu.Lock()
		s.tr.Translate(rec, emit)
		s.mu.Unlock()
	}
}

// Open opens /dev/auditpipe configured as the agent uses it, for
// `nodeagent audit decode --pipe`.
func Open(ownAUID uint32, log logr.Logger) (*os.File, error) {
	f, _, err := open(ownAUID, log)
	return f, err
}

func open(ownAUID uint32, log logr.Logger) (*os.File, int, error) {
	fd, err := unix.Open(Device, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("%w: open %s: %v (the agent needs root, and the kernel needs options AUDIT, as in GENERIC)", ErrUnavailable, Device, err)
	}
	if err := configure(fd, ownAUID, log); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return os.NewFile(uintptr(fd), Device), fd, nil
}

// configure puts the pipe in LOCAL preselection mode with the agent's own
// masks (success: fw|fm|fc|fd|cl, failure: none) for both attributable and
// non-attributable records, raises the queue limit to the maximum, hides
// the receiver's audit user id and drops what was queued before.
func configure(fd int, ownAUID uint32, log logr.Logger) error {
	mask := [2]uint32{pipeMask, 0}
	mode := int32(preselectModeLocal)
	steps := []struct {
		what string
		req  uint32
		arg  unsafe.Pointer
	}{
		{"set LOCAL preselection mode", ioctlSetPreselectMode, unsafe.Pointer(&mode)},
		{"set preselection flags", ioctlSetPreselectFlags, unsafe.Pointer(&mask)},
		{"set preselection naflags", ioctlSetPreselectNAFlags, unsafe.Pointer(&mask)},
	}
	for _, st := range steps {
		if err := ioctl(fd, st.req, st.arg); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	var qmax uint32
	if err := ioctl(fd, ioctlGetQLimitMax, unsafe.Pointer(&qmax)); err != nil {
		return fmt.Errorf("get queue limit max: %w", err)
	}
	if err := ioctl(fd, ioctlSetQLimit, unsafe.Pointer(&qmax)); err != nil {
		return fmt.Errorf("set queue limit %d: %w", qmax, err)
	}
	if ownAUID != bsm.AUIDUnset {
		// struct auditpipe_ioctl_preselect: auid, then a zero mask.
		sel := [3]uint32{ownAUID, 0, 0}
		if err := ioctl(fd, ioctlSetPreselectAuID, unsafe.Pointer(&sel)); err != nil {
			return fmt.Errorf("hide audit user %d: %w", ownAUID, err)
		}
	}
	if err := ioctl(fd, ioctlFlush, nil); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	log.Info("auditpipe configured", "mode", "local", "mask", fmt.Sprintf("%#x", pipeMask), "queueLimit", qmax, "hiddenAUID", ownAUID)
	return nil
}

// watch polls the drop counter every second (a rise means lost records: a
// rescan of the whole root), reaps files of exited processes every reap
// period, and says once when no records arrive at all.
func (s *Source) watch(ctx context.Context, fd int, emit func(change.Change)) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reap := time.NewTicker(max(s.reap, 50*time.Millisecond))
	defer reap.Stop()
	start := time.Now()
	var lastDrops uint64
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-reap.C:
			s.mu.Lock()
			s.tr.Reap(processAlive, emit)
			s.mu.Unlock()
		case <-tick.C:
			var drops, inserts uint64
			if err := ioctl(fd, ioctlGetDrops, unsafe.Pointer(&drops)); err == nil && drops > lastDrops {
				s.log.Info("auditpipe dropped records: rescanning", "dropped", drops-lastDrops)
				lastDrops = drops
				emit(change.Change{Path: ".", Op: change.Rescan, Time: time.Now()})
			}
			if !warned && time.Since(start) > noRecordsAfter {
				if err := ioctl(fd, ioctlGetInserts, unsafe.Pointer(&inserts)); err == nil && inserts == 0 {
					warned = true
					s.trailInactive.Store(true)
					s.log.Info("no audit records arrive: the kernel audits only while an audit trail is active. " +
						"Run auditd (sysrc auditd_enable=YES; service auditd start) with empty flags: and naflags: " +
						"in /etc/security/audit_control; until then changes are found by scanning only")
				}
			}
		}
	}
}

func processAlive(pid uint32) bool {
	return !errors.Is(unix.Kill(int(pid), 0), unix.ESRCH)
}

func ioctl(fd int, req uint32, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}
