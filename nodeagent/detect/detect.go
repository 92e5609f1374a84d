// Package detect turns one data root's change source, its scans and its
// index into one stream of ready changes: what later stages ship to peers.
//
//	source ──┐                     ┌─ excluded: dropped
//	         ├─► route ─► coalesce ─► filter by the index ─► out
//	scans  ──┘     │                 (lstat matches the entry: an echo of
//	               └─ Rescan ─► scan   the receiver, or undone: dropped)
//
// Scans run at start, when the source lost events (change.Rescan), every
// resync interval, and (in place of a source) every scan interval. The
// root's identity is checked at start, before every scan and every second:
// when it changes (unmounted, replaced) the detector stops with
// index.ErrRootChanged, and nothing is reported from the empty mount point.
package detect

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/exclude"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/scan"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// rootCheckInterval is how often the root's identity is checked between scans.
const rootCheckInterval = time.Second

// Detector produces the ready changes of one data root.
type Detector struct {
	// Root is the data root (absolute, symlinks resolved).
	Root string
	// Index is the root's index; the detector only reads it.
	Index *index.Index
	// Source reports changes as they happen; nil means the scanner is the
	// only source, every ScanInterval.
	Source source.Source
	// Exclude drops excluded paths; nil excludes only .jailsync.
	Exclude *exclude.Matcher
	// Settle and MaxHold configure the coalescer (spec.settle, the maximum
	// hold time of a file open for writing).
	Settle, MaxHold time.Duration
	// ScanInterval is the scan period without a Source (scan.DefaultInterval
	// when 0); ResyncInterval the full compare period with one (0: never).
	ScanInterval, ResyncInterval time.Duration
	// Workers is the scanner's parallelism.
	Workers int
	// Incoming holds changes on paths the receiver is writing; nil holds
	// nothing.
	Incoming *Incoming
	// HeldRoot, when set, is the root as the caller opened it at start (the
	// descriptor its receiver and journal write and read through): the
	// detector's own, and the root its path names at every check, must be
	// that directory (index.Index.CheckHeldRoot). Without it, the detector's own
	// descriptor is the reference.
	HeldRoot *int
	// AllowMassDelete lets one scan report more than the scanner's share
	// of deletions (the operator's word, --allow-mass-delete).
	AllowMassDelete bool
	// MaxDeleteShare is the scanner's share (scan.Scanner.MaxDeleteShare).
	MaxDeleteShare float64
	// Racy, when set, reports the local changes of paths whose index entry
	// may hide a write of the same size within one timestamp tick
	// (journal.Journal.Racy): one passes on even where the index holds it
	// as it is, and the journal decides.
	Racy func(c change.Change) bool
	// Scanned, when set, is called once per scan with its reason: "start",
	// "lost-events-or-subtree", "resync", and without a Source "start" then
	// "interval" for each periodic scan.
	Scanned func(reason string)
	// Log receives what the detector does.
	Log logr.Logger

	// rescans are the paths waiting for a scan (Rescan, and lost events).
	rescans scanQueue
	// removed are the removals the source reported a moment ago, which
	// a full scan does not count as a mass deletion's.
	removed recentRemovals
	// later are the paths waiting for a scan after a backoff
	// (RescanLater, and scans left incomplete).
	later laterScans
	// writing is the coalescer's Writing (nil: none), as a time.Time so
	// that it keeps its monotonic clock reading: a wall clock set back
	// must not stretch a sender's wait.
	writing atomic.Pointer[time.Time]
	// coming is Coming's test while Run runs (nil: not running).
	coming atomic.Pointer[func() bool]
	// scanned: the start-up scan is over; scanning: a scan is under way,
	// or paths wait for one (Scanning).
	scanned  atomic.Bool
	scanning atomic.Bool
}

// Coming reports whether changes are on their way through the detector:
// sent by its source and waiting between its stages, not yet reported. A
// hint for the senders' gathering (sender.Sender.Coming): a change that
// the filter then drops (an echo of a received file) counted as coming
// too. Events still queued in the kernel do not count: a fanotify mark
// covers the root's whole filesystem, whose other files' events would
// count too (with them a burst's first commit went alone in 0 of 11
// bursts, without them in 1 of 11, and in 3 of 11 before; docs/
// benchmarks.md, the twenty-sixth session). Safe to call while Run runs;
// false when it does not.
func (d *Detector) Coming() bool {
	if f := d.coming.Load(); f != nil {
		return (*f)()
	}
	return false
}

// Scanning reports whether the index may not hold the tree as it is yet:
// the start-up scan is not over, a scan is under way, or paths wait for
// one (Rescan, or after a backoff). The anti-entropy compare waits for it
// (package antientropy). Safe to call while Run runs.
func (d *Detector) Scanning() bool {
	return !d.scanned.Load() || d.scanning.Load() || d.rescans.len() > 0 || d.later.queue.len() > 0
}

// Writing returns when the youngest write under way here began (a file
// whose first change came while a writer held it, still held), or zero
// (change.Coalescer.Writing). Safe to call while Run runs.
func (d *Detector) Writing() time.Time {
	if t := d.writing.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Rescan asks for a scan of path (relative to the root), which reports
// what differs there from the index: the receiver asks it for a tree it
// renamed here, some of whose files it found changed by this member.
// Safe to call before and while Run runs.
func (d *Detector) Rescan(path string) { d.rescans.add(path) }

// RescanLater asks for a scan of path after a backoff (laterScans): a
// change there could not be looked at (a descriptor limit, an I/O error),
// and the journal left it out (journal.Journal.Unreadable). Without it,
// the change waited for the next periodic resync, an hour by default, or
// for good without one. Safe to call before and while Run runs.
func (d *Detector) RescanLater(path string) { d.later.queue.add(path) }

// Run reports ready changes to out until ctx ends (it returns nil) or the
// root is refused or the source fails (it returns the error).
func (d *Detector) Run(ctx context.Context, out chan<- change.Change) error {
	rootfd, err := beneath.OpenRoot(d.Root)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	held := rootfd
	if d.HeldRoot != nil {
		held = *d.HeldRoot
	}
	if err := d.Index.CheckHeldRoot(held, rootfd, d.Root); err != nil {
		return err
	}
	m := d.Exclude
	if m == nil {
		m, _ = exclude.Compile(nil)
	}
	sc := &scan.Scanner{Root: d.Root, Index: d.Index, Workers: d.Workers, Exclude: m.Match, AllowMassDelete: d.AllowMassDelete, MaxDeleteShare: d.MaxDeleteShare,
		HeldRoot: &held}
	if d.Incoming != nil {
		sc.Incoming = d.Incoming.Has
	}
	if d.Source != nil {
		sc.SeenRemoved = func(rel string) bool { return d.removed.has(rel, time.Now()) }
	}
	typeOf := func(rel string) (dir, exists bool) { return typeAt(rootfd, rel) }

	raw := make(chan change.Change, 4096)
	toCoalesce := make(chan change.Change, 4096)
	ready := make(chan change.Change, 4096)
	rescans := &d.rescans
	coming := func() bool { return len(raw)+len(toCoalesce)+len(ready) > 0 }
	d.coming.Store(&coming)
	defer d.coming.Store(nil)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.runSource(ctx, sc, raw) })
	g.Go(func() error { return d.route(ctx, raw, toCoalesce, rescans, m, typeOf) })
	g.Go(func() error { return d.scans(ctx, sc, rescans, typeOf, toCoalesce) })
	g.Go(func() error {
		co := &change.Coalescer{Settle: d.Settle, MaxHold: d.MaxHold, Probe: func(p string) (bool, bool) {
			held, known := scan.WriterHolds(rootfd, p)
			return !held, known
		}}
		defer d.writing.Store(nil)
		return co.Run(ctx, toCoalesce, ready, func(began time.Time) {
			if began.IsZero() {
				d.writing.Store(nil)
				return
			}
			d.writing.Store(&began)
		})
	})
	g.Go(func() error { return d.filter(ctx, rootfd, ready, out) })
	g.Go(func() error { return d.watchRoot(ctx, held) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (d *Detector) runSource(ctx context.Context, sc *scan.Scanner, raw chan<- change.Change) error {
	if d.Source != nil {
		return d.Source.Run(ctx, raw)
	}
	return (&scan.Source{Scanner: sc, Interval: d.ScanInterval, Scanned: d.Scanned, Log: d.Log}).Run(ctx, raw)
}

// route passes source changes on to the coalescer, drops excluded ones and
// turns Rescan into a scan request.
func (d *Detector) route(ctx context.Context, raw <-chan change.Change, next chan<- change.Change, rescans *scanQueue, m *exclude.Matcher, typeOf func(rel string) (dir, exists bool)) error {
	r := router{d: d, rescans: rescans, excluded: excludedBy(m, typeOf), matches: m.Match, typeOf: typeOf}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-raw:
			c, ok := r.pass(c)
			if !ok {
				continue
			}
			select {
			case next <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// router decides, change by change, what route passes on.
type router struct {
	d        *Detector
	rescans  *scanQueue
	excluded func(change.Change) bool
	matches  func(rel string, dir bool) bool
	typeOf   func(rel string) (dir, exists bool)
}

// pass returns c as the coalescer takes it, or false when it goes no
// further (the root, excluded, or a scan request).
func (r router) pass(c change.Change) (change.Change, bool) {
	if c.Op.Has(change.Rename) && c.OldPath != "" && !c.Op.Has(change.Rescan) {
		var keep bool
		if c, keep = acrossExclusion(c, r.matches, r.typeOf); !keep {
			return c, false
		}
	}
	r.d.noteRemoval(c)
	switch {
	case c.Path == "." && !c.Op.Has(change.Rescan):
		// The root itself is not replicated: its mode and owner are
		// each host's, and its mtime moves with every receive.
		return c, false
	case !c.Op.Has(change.Rescan) && r.excluded(c):
		return c, false
	case c.Op.Has(change.Rescan):
		// Lost events: the scan of that path reports what differs.
		r.rescans.add(c.Path)
		return c, false
	case c.Op.Has(change.Subtree):
		return r.madeWhole(c), true
	}
	return c, true
}

// madeWhole takes c, a directory that appeared whole: the scan of it
// reports (and expands) what is below it; the directory itself goes on as
// made (its mode, owner and times; an empty one has nothing else), a
// renamed one as its rename. The audit trail's source marks a file moved
// in so too: it goes on as created.
//
// Not for this agent's own (Echo): a peer's renames, replayed by the
// receiver, and what their events find at names made again or holding
// another tree since (a swap's, read late: Mkdir|Subtree). The receiver
// compares the renamed trees itself when it records the request
// (recordTree), and asks for a scan of what changed here (Rescan). The
// scan asked for here ran while the receiver was still applying the rest
// of the request, read trees at names that a later rename of the request
// had left (a directory renamed in, then its parent renamed on), and its
// finds there went out as this member's own (the stress test, seed 102 of
// the forty-ninth session's g1 run; in the fiftieth session's runs, scans
// of a swap's names ran so too). What a local process moved in or made
// there has events of its own, which ask for their scans.
func (r router) madeWhole(c change.Change) change.Change {
	if !c.Echo {
		r.rescans.addTree(c.Path)
	}
	if !c.Op.Has(change.Rename) || c.OldPath == "" {
		made := change.Create
		if dir, exists := r.typeOf(c.Path); dir || !exists {
			made = change.Mkdir
		}
		c.Op = c.Op&^change.Subtree | made
	}
	return c
}

// noteRemoval notes a removal, or the old name of a rename, that the
// source reported (recentRemovals). The scan source (no Source) reports
// what its own scans find: those are what the guard counts.
func (d *Detector) noteRemoval(c change.Change) {
	if d.Source == nil || c.Op.Has(change.Rescan) {
		return
	}
	switch {
	case c.Op.Has(change.Rename) && c.OldPath != "":
		d.removed.add(c.OldPath, time.Now())
	case c.Op&(change.Remove|change.Rmdir) != 0:
		d.removed.add(c.Path, time.Now())
	}
}

// acrossExclusion turns a rename with one side excluded into what the
// synced tree saw of it: moved out (to an excluded name), a removal of the
// old name; moved in (from an excluded name), a creation, or for a
// directory a whole tree that appeared (Subtree). Both sides excluded, it
// is dropped (keep false). Left a rename, the peer would be asked to
// rename a file it must keep (an excluded one is each member's own), or
// to move one out of what it syncs and keep a stale copy. The fanotify
// source splits such renames itself; the audit trail's does not.
//
// Whether it is a directory is read from the new name as it is now (the
// audit trail's renames carry no type), or from the op when it is gone.
func acrossExclusion(c change.Change, excluded func(rel string, dir bool) bool, typeOf func(rel string) (dir, exists bool)) (change.Change, bool) {
	dir, exists := typeOf(c.Path)
	if !exists {
		dir = c.Op&(change.Mkdir|change.Rmdir|change.Subtree) != 0
	}
	// Both names are matched as what was renamed: the old one is gone,
	// and its type cannot be read there (a directory-only pattern, such
	// as "build/", would not match it).
	newOut, oldOut := excluded(c.Path, dir), excluded(c.OldPath, dir)
	switch {
	case newOut && oldOut:
		return c, false
	case newOut:
		op := change.Remove
		if dir {
			op = change.Rmdir
		}
		return change.Change{Path: c.OldPath, Op: op, Finished: true, Echo: c.Echo, Time: c.Time}, true
	case oldOut:
		c.OldPath = ""
		c.Op = c.Op&^change.Rename | change.Create
		if dir {
			c.Op = c.Op&^(change.Create|change.Mkdir) | change.Subtree
		}
	}
	return c, true
}

// scanQueue collects the paths waiting for a scan; past maxQueuedScans it
// collapses them into one scan of the whole root, so no request is lost.
type scanQueue struct {
	mu sync.Mutex
	// paths are the requests: true for a tree's only (addTree).
	paths  map[string]bool
	notify chan struct{} // made at first use (ch)
}

// scanRequest is one path to scan; tree says that it is asked for only as
// a tree that appeared (scanQueue.addTree).
type scanRequest struct {
	path string
	tree bool
}

// ch is the channel signalled when a path is queued.
func (q *scanQueue) ch() chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.notify == nil {
		q.notify = make(chan struct{}, 1)
	}
	return q.notify
}

const maxQueuedScans = 256

// len is the number of paths queued.
func (q *scanQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.paths)
}

// add asks for a scan of path: what happened there was not seen (lost
// events, a receiver's word), whatever the path is by the time it runs.
func (q *scanQueue) add(path string) { q.request(path, false) }

// addTree asks for a scan of a directory that appeared whole (moved in or
// renamed), only while it is one: gone or not a directory by the time the
// scan runs, what became of it (renamed on, removed, replaced) is an event
// of its own, and its scan is moot. Until the forty-sixth session such a
// request climbed, as a lost event's does, to the nearest directory above
// that exists: in the stress test, directories renamed on at once made
// about a dozen scans of the whole root per agent and run, and one that
// ran while the journal had yet to record the writer's rm -r of most of
// the tree stopped the writer on a mass deletion (seed 0).
func (q *scanQueue) addTree(path string) { q.request(path, true) }

func (q *scanQueue) request(path string, tree bool) {
	q.mu.Lock()
	if q.paths == nil {
		q.paths = make(map[string]bool)
	}
	if len(q.paths) >= maxQueuedScans {
		q.paths = map[string]bool{".": false}
	}
	if was, ok := q.paths[path]; !ok || was {
		q.paths[path] = tree
	}
	q.mu.Unlock()
	select {
	case q.ch() <- struct{}{}:
	default:
	}
}

// take returns the queued requests (just "." when the root is among them).
func (q *scanQueue) take() []scanRequest {
	q.mu.Lock()
	defer q.mu.Unlock()
	if tree, ok := q.paths["."]; ok {
		q.paths = nil
		return []scanRequest{{path: ".", tree: tree}}
	}
	reqs := make([]scanRequest, 0, len(q.paths))
	for p, tree := range q.paths {
		reqs = append(reqs, scanRequest{path: p, tree: tree})
	}
	q.paths = nil
	return reqs
}

// scanDirs turns requested rescans into the directories to scan: a scan
// reads directories, so a path that is a file, a symlink or gone now (the
// sources ask for the path whose lstat failed) is compared by a scan of
// the nearest directory above it that exists; a tree's request
// (scanQueue.addTree) for a path that is no directory now is dropped.
func scanDirs(reqs []scanRequest, typeOf func(rel string) (dir, exists bool)) []string {
	seen := make(map[string]bool, len(reqs))
	dirs := make([]string, 0, len(reqs))
	for _, r := range reqs {
		p := r.path
		if r.tree {
			if dir, _ := typeOf(p); !dir && p != "." {
				continue
			}
		}
		for p != "." {
			if dir, _ := typeOf(p); dir {
				break
			}
			p = path.Dir(p)
		}
		if !seen[p] {
			seen[p] = true
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// vanished reports whether every error of an incomplete scan (joined, see
// scan.Scanner.Scan) is of a directory gone or no directory any more when
// the scan came to open it: removed, a file now, or a symlink now, on its
// path or in its place (beneath.ErrOutside: a scan's paths are names read
// from directories, never ".." or absolute). Each of those has an event of
// its own. A symlink put there logged an error and asked for the scan
// again (the stress test, seed 297 of the fifty-second session: a
// directory swapped with a symlink while a scan walked it).
func vanished(err error) bool {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		for _, e := range errs {
			if !vanished(e) {
				return false
			}
		}
		return len(errs) > 0
	case interface{ Unwrap() error }:
		return vanished(e.Unwrap())
	}
	return err == unix.ENOENT || err == unix.ENOTDIR || err == beneath.ErrOutside
}

// scans runs the start-up scan, requested rescans and, when a source
// exists, the periodic resync.
func (d *Detector) scans(ctx context.Context, sc *scan.Scanner, rescans *scanQueue, typeOf func(rel string) (dir, exists bool), out chan<- change.Change) error {
	var resync <-chan time.Time
	if d.Source != nil && d.ResyncInterval > 0 {
		t := time.NewTicker(d.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	var later <-chan time.Time // armed while paths wait in d.later
	dirs, reason := []string{"."}, "start"
	if d.Source == nil {
		dirs = nil // the scan source scans at start itself
	}
	for {
		d.scanning.Store(len(dirs) > 0)
		for _, dir := range dirs {
			if d.Scanned != nil {
				d.Scanned(reason)
			}
			st, err := sc.Scan(ctx, dir, out)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if scan.Fatal(err) {
					return err
				}
				if vanished(err) {
					// What the scan could not read is gone: renamed or
					// removed while it read the tree, which the source
					// reports as it does any rename or removal. Scanned
					// again, the request climbed to the nearest directory
					// that exists, often the root, and logged an error
					// for an ordinary race (the stress test).
					d.Log.V(1).Info("scan read past directories that vanished meanwhile; their events report them", "path", dir, "reason", reason, "err", err.Error())
				} else {
					d.Log.Error(err, "scan incomplete; it is scanned again later", "path", dir, "reason", reason)
					d.later.queue.add(dir)
				}
			}
			d.Log.V(1).Info("scan done", "path", dir, "reason", reason, "dirs", st.Dirs, "files", st.Files, "changes", st.Changes)
		}
		d.scanning.Store(false)
		d.scanned.Store(true)
		for dirs = nil; dirs == nil; {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-rescans.ch():
				d.scanning.Store(true) // before the queue is taken empty
				dirs, reason = scanDirs(rescans.take(), typeOf), "lost-events-or-subtree"
			case <-resync:
				d.scanning.Store(true)
				dirs, reason = []string{"."}, "resync"
			case <-d.later.queue.ch():
				if later == nil {
					// Not stopped at return: an unreferenced timer is
					// collected (Go 1.23).
					later = time.NewTimer(d.later.wait(time.Now())).C
				}
			case <-later:
				later = nil
				d.scanning.Store(true)
				dirs, reason = scanDirs(d.later.take(time.Now()), typeOf), "unreadable"
			}
		}
	}
}

// replacedAbove reports whether the first directory above rel that is
// there (the root left out) is no directory any more: a peer's run
// replaced it with a file or a symlink (peer.FileState.Replaced), and
// rsync removed what was below it first.
func replacedAbove(rootfd int, rel string) bool {
	for dir := path.Dir(rel); dir != "." && dir != "/"; dir = path.Dir(dir) {
		var st unix.Stat_t
		err := beneath.Lstat(rootfd, dir, &st)
		if err == nil {
			return st.Mode&unix.S_IFMT != unix.S_IFDIR
		}
		if !index.IsGone(err) {
			return false
		}
	}
	return false
}

// pending is a change the filter has read, and why it waits, if it does.
type pending struct {
	change.Change
	// received: held for a peer's run that names its path (or a path
	// below it); compared as the receiver's once released.
	received bool
	// around: a removal held for the runs that put paths below a
	// directory above it (Incoming.HoldsAround); once they are over, it
	// is the receiver's if that directory is no directory any more
	// (replacedAbove), and compared as any change of this member's if it
	// is.
	around []Hold
}

// filter drops ready changes whose path is as the index records it: echoes
// of this agent's receiver, and changes undone before they shipped. The
// changes ready at once are compared in one read transaction (one per
// change was a tenth of the agent's CPU on a burst).
func (d *Detector) filter(ctx context.Context, rootfd int, ready <-chan change.Change, out chan<- change.Change) error {
	f := &filtered{d: d, rootfd: rootfd, out: out}
	recheck := time.NewTicker(time.Second) // held paths whose announcement expired
	defer recheck.Stop()
	batch := make([]pending, 0, filterBatch)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-ready:
			batch = append(batch[:0], pending{Change: c})
		more:
			for len(batch) < filterBatch {
				select {
				case c := <-ready:
					batch = append(batch, pending{Change: c})
				default:
					break more
				}
			}
			if err := f.pass(ctx, batch); err != nil {
				return err
			}
		case <-recheck.C:
			if len(f.held) == 0 {
				continue
			}
			again := f.held
			f.held = nil
			if err := f.pass(ctx, again); err != nil {
				return err
			}
		case <-f.released:
			again := f.held
			f.held, f.released = nil, nil
			if err := f.pass(ctx, again); err != nil {
				return err
			}
		}
	}
}

// filtered is what filter holds between its passes: the changes held for
// peers' runs, and the signal that a run released paths.
type filtered struct {
	d      *Detector
	rootfd int
	out    chan<- change.Change
	held   []pending
	// released is Incoming.Changed while changes are held.
	released <-chan struct{}
}

// hold keeps p until a run releases paths, or the next recheck.
func (f *filtered) hold(p pending) {
	f.held = append(f.held, p)
	f.released = f.d.Incoming.Changed()
}

// pass compares cs with the index and sends on what changed, and holds
// what a peer's run may have done.
func (f *filtered) pass(ctx context.Context, cs []pending) error {
	check := cs[:0:0]
	for _, p := range cs {
		p, wait := f.waits(p)
		if wait {
			f.hold(p)
			continue
		}
		check = append(check, p)
	}
	for _, c := range f.d.changed(f.rootfd, check) {
		select {
		case f.out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// waits reports whether p waits for peers' runs (and returns it as it is
// held), or is compared now (and returns it as it is compared).
func (f *filtered) waits(p pending) (pending, bool) {
	d, c := f.d, p.Change
	// A directory made or changed above a received path is the
	// receiver's (rsync makes and sets the missing parents of what
	// it receives: implied directories, never announced), and so
	// is what was removed where it made one: a file or symlink in
	// the way, whose removal reads as one when it is read before
	// the directory was made. So is a file made where a received
	// path lies below: rsync read that parent as a file (a
	// directory swapped with one on the sender while rsync read
	// the list) and replaced the directory here with it
	// (rsync.Result.NotDirs, peer.FileState.Replaced).
	if d.Incoming != nil && (d.Incoming.Has(c.Path) || (c.OldPath != "" && d.Incoming.Has(c.OldPath)) ||
		c.Op&(change.Mkdir|change.Attrib|change.Remove|change.Rmdir|change.Create|change.Write) != 0 && d.Incoming.HasBelow(c.Path)) {
		return pending{Change: c, received: true}, true
	}
	// What such a run removed below the directory it replaced
	// first (--force empties it): read while the directory is
	// still one, a removal there looks like this member's own.
	// Held until the runs near it are over, whatever removed it:
	// a removal of this member's own is compared as one then
	// (removedBelowRename), and only waits.
	if d.Incoming != nil && c.Op&(change.Remove|change.Rmdir) != 0 && !c.Op.Has(change.Rename) {
		if p.around == nil && !p.received {
			p.around = d.Incoming.HoldsAround(c.Path)
		}
		if d.Incoming.Holding(p.around) {
			return pending{Change: c, around: p.around}, true
		}
		if p.around != nil {
			p.received = replacedAbove(f.rootfd, c.Path)
		}
	}
	return p, false
}

// filterBatch bounds how many ready changes filter compares at once.
const filterBatch = 1024

// changed returns the changes of ps whose path (or, for a rename, old
// path) is not as the index records it, compared in one read transaction,
// in their order. A change that cannot be compared is reported. A change
// received (held for a peer's run) is compared as the receiver's
// (removedBelowRename).
func (d *Detector) changed(rootfd int, ps []pending) []change.Change {
	if len(ps) == 0 {
		return nil
	}
	out := make([]change.Change, 0, len(ps))
	err := d.Index.View(func(tx *index.Tx) error {
		for _, p := range ps {
			if c, report := d.compared(tx, rootfd, p); report {
				out = append(out, c)
			}
		}
		return nil
	})
	if err != nil {
		d.Log.V(1).Info("cannot read the index; reporting the changes", "changes", len(ps), "error", err)
		out = out[:0]
		for _, p := range ps {
			out = append(out, p.Change)
		}
	}
	return out
}

// compared returns p's change as it is to be reported, and whether to
// report it: its path (or, for a rename, old path) is not as the index
// records it, or cannot be compared.
func (d *Detector) compared(tx *index.Tx, rootfd int, p pending) (change.Change, bool) {
	c, received := p.Change, p.received
	if c.Echo && c.Op.Has(change.Rename) && c.Op&(change.Create|change.Write) == 0 {
		// This agent's own rename: a peer's, replayed here by the
		// receiver, which recorded it. Compared with the index
		// when it is read, its names may hold something else by
		// then (a later replayed rename took its new name on, a
		// swap's last link put another object there), and it went
		// to every peer as this member's rename, and the sender's
		// deletions and pushes brought back on the writer a tree
		// it had renamed away (stress seed 6, the forty-seventh
		// session). What was made there since comes as changes
		// of its own.
		return c, false
	}
	if c.EchoRename && c.Op.Has(change.Rename) {
		// The agent's own rename, merged with other events (a
		// peer's run writing its new name, the receiver removing
		// that name again): the receiver recorded the rename, and
		// the rest is compared as any change. Compared as a
		// rename, both names gone read as a chain link of this
		// member's own: logged, its replay on the writer cleared
		// the new name there, the writer's newest file (stress
		// Kill9 seed 282 of the sixty-fourth session: n1,
		// restarted, replayed n3's swaptmp7 -> f7 and n3's later
		// removal of f7 while n3's run wrote f7; the rename went
		// back to n3, whose receiver removed its f7 as the new
		// name of a rename whose old name was gone).
		c.Op &^= change.Rename
		c.OldPath = ""
	}
	if d.Racy != nil && d.Racy(c) || c.WrittenIno != 0 {
		// A write whose path went at once changed the file's
		// other names, which the journal looks up
		// (change.Change.WrittenIno): whatever the path's entry.
		return c, true
	}
	same, err := sameAsIndexed(tx, rootfd, c, received)
	if err != nil {
		d.Log.V(1).Info("cannot compare with the index; reporting the change", "path", c.Path, "error", err)
	}
	if same && err == nil {
		return c, false
	}
	// For tracing what a member took for its own: a peer's
	// run's event read as this member's change (the stress
	// test).
	if v := d.Log.V(4); v.Enabled() && err == nil {
		v.Info("differs from the index", "path", c.Path, "op", c.Op.String(), "old", c.OldPath, "held", received, "why", whyChanged(tx, rootfd, c.Path))
	}
	return c, true
}

// sameAsIndexed reports whether c's path (or, for a rename, both its
// names) is as the index holds it; received: c is held for a peer's run.
func sameAsIndexed(tx *index.Tx, rootfd int, c change.Change, received bool) (bool, error) {
	// A directory's attribute change held for a peer's run
	// (rsync set its times, as the writer's) is compared without
	// its times: an entry made there after the receiver recorded
	// it (the next run's, or this member's own, reported by
	// itself) moves them without an attribute event, and the
	// held event read as this member's change of the times, which
	// went to every member, over the writer's (the stress test,
	// seeds 6 and 29, the forty-seventh session). Its mode and
	// owner still count. A touch of the directory here while a
	// peer's run is held there is lost so: its times are the
	// writer's once a run sets them again.
	same, err := tx.Unchanged(rootfd, c.Path, c.Op.Has(change.Attrib) && !received)
	if err == nil && same && c.Op.Has(change.Rename) {
		same, err = tx.Unchanged(rootfd, c.OldPath, false)
		same = same && !chainLink(rootfd, c)
	} else if err == nil && same && !received {
		same = !removedBelowRename(c)
	}
	return same, err
}

// whyChanged says how rel here differs from its index entry, for logs.
func whyChanged(tx *index.Tx, rootfd int, rel string) string {
	old, ok, err := tx.Get(rel)
	if err != nil {
		return err.Error()
	}
	var st unix.Stat_t
	lerr := beneath.Lstat(rootfd, rel, &st)
	switch {
	case lerr != nil && !ok:
		return "neither here nor indexed"
	case lerr != nil:
		return fmt.Sprintf("not here (%v); indexed as %v", lerr, old.Mode)
	case !ok:
		return fmt.Sprintf("not indexed; here %v", index.FromStat(&st).Mode)
	}
	e := index.FromStat(&st)
	return fmt.Sprintf("indexed as %v, here %v; differ: %s", old.Mode, e.Mode, old.Diff(e))
}

// chainLink reports whether c, a rename that the index holds as it is, is
// a local link of a chain read late: both its names are gone from the
// tree (and so from the index, or it would not hold them as they are).
// mv d e; mv e/f e/g; mv e/g e/h, the last two read before the journal
// recorded the first: neither e/f nor e/g is indexed, nor there, and the
// rename read as undone. Dropped, the log lacked it, and a peer kept f
// for good (d/f, which the log's next rename, of e/g, does not name:
// stress seed 22, the forty-first session). It goes on, and the journal
// logs it. A rename of this agent's own (Echo: a peer's chain it replayed
// here, read after its hold ended) is the echo it looks like: sent on, a
// member that had not replayed the chain yet would apply its first link
// as this member's own rename.
func chainLink(rootfd int, c change.Change) bool {
	if c.Echo {
		return false
	}
	var st unix.Stat_t
	return index.IsGone(beneath.Lstat(rootfd, c.Path, &st)) && index.IsGone(beneath.Lstat(rootfd, c.OldPath, &st))
}

// removedBelowRename reports whether c, a removal that the index holds as
// it is (mostly a path gone and not held), may be the removal of a
// path that a rename read just before it moved there: mv x d; rm d/s, the
// removal read before the journal recorded the rename, while the index
// still held the file as x/s. The filter cannot tell it from a path never
// recorded (a file made and removed before it was read); the journal can,
// as it records the rename first and then finds d/s indexed and gone.
// Dropped, the peers applied the rename and kept d/s for good (stress
// seeds 21, 25 and 26). So a removal that is not this agent's own goes on
// to the journal, which records nothing for a path that it does not hold
// or holds as it is: one lookup in its transaction. The agent's own
// removals (Echo: a peer's, replayed here) are the echoes they look like,
// and so are those held for a peer's run (Incoming): rsync's deletions on
// a receiver, recorded by then.
func removedBelowRename(c change.Change) bool {
	return !c.Echo && c.Op&(change.Remove|change.Rmdir) != 0 && !c.Op.Has(change.Rename)
}

// excludedBy reports whether m excludes a change's path; only a
// directory-only pattern needs to know the type (isDir).
func excludedBy(m *exclude.Matcher, typeOf func(rel string) (dir, exists bool)) func(change.Change) bool {
	return func(c change.Change) bool {
		return m.Match(c.Path, false) || (m.Match(c.Path, true) && isDir(c, typeOf))
	}
}

// isDir reports whether c's path is a directory: by its op where that says
// so (a removed one cannot be looked at), else as it is now (typeOf).
func isDir(c change.Change, typeOf func(rel string) (dir, exists bool)) bool {
	if c.Op&(change.Mkdir|change.Rmdir) != 0 {
		return true
	}
	// Subtree is not enough: the audit trail's source marks a file moved
	// in from outside the root so too.
	dir, _ := typeOf(c.Path)
	return dir
}

// typeAt reports whether rel exists now beneath rootfd, and whether it is
// a directory.
func typeAt(rootfd int, rel string) (dir, exists bool) {
	var st unix.Stat_t
	if beneath.Lstat(rootfd, rel, &st) != nil {
		return false, false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, true
}

// watchRoot checks the root by path every second: a filesystem unmounted
// or mounted over the root, or another directory given its path, stops the
// detector.
func (d *Detector) watchRoot(ctx context.Context, held int) error {
	t := time.NewTicker(rootCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := d.Index.CheckRootPath(held, d.Root); err != nil {
				return fmt.Errorf("data root refused: %w", err)
			}
		}
	}
}
