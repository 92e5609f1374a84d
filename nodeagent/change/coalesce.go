package change

import (
	"container/heap"
	"context"
	"time"
)

// DefaultMaxHold is how long a change waits for a close that its source
// cannot see, and the system cannot say whether a writer still holds the
// file (no Probe, or it cannot tell), before it is reported anyway, marked
// unfinished, so that such files are not starved. A file that the Probe
// knows a writer holds is never reported before the writer lets go: an
// unfinished write is never shipped as final.
const DefaultMaxHold = 30 * time.Second

// Coalescer merges the events of one source into one change per path and
// decides when each is ready to ship:
//
//   - at once when its latest event is finished (the last writer closed it,
//     or the operation is complete by nature: remove, rename, mkdir, ...);
//   - after Settle without further events, for a change whose source could
//     not see the close (Change.NeedsSettle); the change is then finished;
//   - after MaxHold from its first event while still unfinished and no
//     Probe can tell that a writer holds it, reported unfinished (and held
//     again for another MaxHold); while the Probe knows a writer holds it,
//     never: it is probed again every MaxHold/10 past MaxHold.
//
// A Coalescer is not safe for concurrent use; Run owns it.
type Coalescer struct {
	// Settle is the quiet period for unfinished changes marked NeedsSettle
	// (spec.settle).
	Settle time.Duration
	// MaxHold bounds how long an unfinished change waits; DefaultMaxHold
	// when 0.
	MaxHold time.Duration
	// Probe, when set, asks the system whether the file at path is still
	// held by a writer (done is false then; known is false when it cannot
	// tell). An unfinished change that waits for a close is probed every
	// probe interval without events, so that a lost or merged close event
	// costs a probe interval, not MaxHold.
	Probe func(path string) (done, known bool)

	pending map[string]*entry
	queue   deadlines
	// begun are the latest writes begun (a path's first change,
	// unfinished), oldest first, at most maxBegun: Writing reads the
	// youngest that still waits for its writer.
	begun []begunWrite
}

// begunWrite is a write begun at at: its path's entry while it waits.
type begunWrite struct {
	path string
	at   time.Time
}

// maxBegun bounds Coalescer.begun: the youngest writes are the ones that
// matter (Writing), and a burst of files held open must not grow it.
const maxBegun = 64

// Writing returns when the youngest write still in progress began: the
// first event of the latest path whose change came unfinished (a file
// being written) and that still waits for its writer; zero when none
// does. Only the latest maxBegun such paths are kept. A file held open
// for long (a log) stays a write under way with its old start, unless its
// change was reported past MaxHold without a Probe that could tell (its
// first event then moves on); its old start holds nothing back
// (sender.Sender.WriteWait counts from it). A sender at rest uses it to
// keep a file that closed from going alone while the next files of its
// batch are being written (sender.Sender.Writing).
func (co *Coalescer) Writing() time.Time {
	for len(co.begun) > 0 {
		b := co.begun[len(co.begun)-1]
		if e, ok := co.pending[b.path]; ok && !e.c.Finished && e.first.Equal(b.at) {
			return b.at
		}
		co.begun = co.begun[:len(co.begun)-1]
	}
	return time.Time{}
}

// entry is one path's pending change. It has at most one live deadline in
// the queue (scheduled): a later event that makes it ready sooner pushes an
// earlier one, a deadline that fires early is pushed again for later, so
// the queue holds about one deadline per path however many events arrive.
type entry struct {
	c         Change
	first     time.Time // first event since the entry was last reported
	last      time.Time // latest event
	scheduled time.Time // the live deadline in the queue
	// told says that a change merged into c came from a source that
	// tells who made it (not a scan's: fromScan); c.Echo is theirs.
	told bool
}

// fromScan reports a change that a scan found (Found): a scan cannot tell
// whose change it found, so it has no say in Echo. A scan of a tree that
// ran while the receiver applied a peer's renames, before it recorded
// them, found the new names; merged with the rename's own event (Echo),
// that change lost its Echo, read as a chain link of this member's own
// once both names were gone (detect.chainLink), and the peer's rename went
// back to every member as this member's. On the third, the push that
// followed made the implied parent directory replace the writer's symlink
// (stress seed 9, the forty-seventh session).
func fromScan(c Change) bool { return c.Op.Has(Found) }

// Add merges c, which happened at now, into the pending change of its path.
func (co *Coalescer) Add(c Change, now time.Time) {
	if co.pending == nil {
		co.pending = make(map[string]*entry)
	}
	e, ok := co.pending[c.Path]
	if !ok {
		e = co.begin(c, now)
	} else if gone := co.merge(e, c); gone != nil {
		defer co.Add(*gone, now)
	}
	e.last = now
	if at := co.readyAt(e); !ok || at.Before(e.scheduled) {
		co.schedule(c.Path, e, at)
	}
}

// begin makes c, which happened at now, the pending change of its path.
func (co *Coalescer) begin(c Change, now time.Time) *entry {
	e := &entry{c: c, first: now, told: !fromScan(c)}
	e.c.EchoRename = c.Op.Has(Rename) && c.OldPath != "" && c.Echo
	co.pending[c.Path] = e
	// A write under way: not the receiver's own, and known to have
	// a writer (a scan's change that waits to settle is a file found
	// changed, whether or not anyone still writes it; one whose
	// writer the scan found holding it counts, scan.markWriter).
	if !c.Finished && !c.Echo && !c.NeedsSettle {
		if len(co.begun) == maxBegun {
			co.begun = append(co.begun[:0], co.begun[1:]...)
		}
		co.begun = append(co.begun, begunWrite{path: c.Path, at: now})
	}
	return e
}

// merge merges c into e, the pending change of its path. gone is the
// removal of an old name that e's rename named and c's replaces, when no
// change of it is pending: Add adds it once e is scheduled.
func (co *Coalescer) merge(e *entry, c Change) (gone *Change) {
	if prev := e.c.OldPath; c.Op.Has(Rename) && prev != "" && prev != c.OldPath && prev != c.Path {
		// mv a b; mv c b: the change names one old name, and a
		// went too. A pending change of a (made again since) only
		// learns it: whether it is finished stays its own.
		if pe, ok := co.pending[prev]; ok {
			pe.c.Op |= Remove
		} else {
			gone = &Change{Path: prev, Op: Remove, Finished: true, Echo: e.c.Echo, Time: c.Time}
		}
	}
	e.c.Op = e.c.Op.Merge(c.Op)
	// Where the Probe can tell, a removal does not finish a write
	// under way: it may be older than the write (a full scan holds
	// its removals back until its walk ends, while the path was made
	// again and is being written). Whether a writer holds the path is
	// for its close, or the Probe, to say; a path removed for good is
	// found so at the next probe (probeInterval).
	if !(co.Probe != nil && removalOnly(c.Op) && !e.c.Finished) {
		e.c.Finished = c.Finished
	}
	e.c.Closed = c.Closed
	// Once a source that sees closes spoke for the path, its close
	// decides: a scan's view must not settle a file a writer holds.
	e.c.NeedsSettle = e.c.NeedsSettle && c.NeedsSettle
	switch {
	case fromScan(c):
	case e.told:
		e.c.Echo = e.c.Echo && c.Echo
	default:
		e.c.Echo, e.told = c.Echo, true
	}
	if c.WrittenIno != 0 {
		e.c.WrittenIno = c.WrittenIno
	}
	e.c.Time = c.Time
	if c.Op.Has(Rename) {
		e.c.OldPath = c.OldPath
		if c.OldPath != "" && !fromScan(c) {
			e.c.EchoRename = c.Echo
		}
	}
	return gone
}

// removalOnly reports a change that only removed its path.
func removalOnly(op Op) bool {
	return op&(Remove|Rmdir) != 0 && op&(Create|Write|Rename|Mkdir|Subtree|Attrib) == 0
}

func (co *Coalescer) schedule(path string, e *entry, at time.Time) {
	e.scheduled = at
	heap.Push(&co.queue, deadline{at: at, path: path})
}

// readyAt is when e becomes ready if nothing else happens to it.
func (co *Coalescer) readyAt(e *entry) time.Time {
	if e.c.Finished {
		return e.last
	}
	hold := e.first.Add(co.maxHold())
	if e.c.Closed && co.Probe != nil {
		// Its writer's close was seen a moment ago: probed again soon.
		return e.last.Add(closedProbe)
	}
	if co.settles(e) || co.Probe != nil {
		if quiet := e.last.Add(co.probeInterval()); quiet.Before(hold) {
			return quiet
		}
		if co.Probe != nil && !e.last.Before(hold) {
			// Probed past MaxHold, a writer held it: less often now.
			return e.last.Add(max(co.maxHold()/10, co.probeInterval()))
		}
	}
	return hold
}

// closedProbe is how soon a change whose writer's close was seen
// (Change.Closed) is probed: the closing writer's access is dropped within
// microseconds of its close event, unless it was preempted in between.
const closedProbe = 5 * time.Millisecond

// probeInterval is the quiet time after which an unfinished change is
// settled (NeedsSettle) or probed: Settle, at least 50 ms.
func (co *Coalescer) probeInterval() time.Duration {
	return max(co.Settle, 50*time.Millisecond)
}

func (co *Coalescer) settles(e *entry) bool { return co.Settle > 0 && e.c.NeedsSettle }

func (co *Coalescer) maxHold() time.Duration {
	if co.MaxHold > 0 {
		return co.MaxHold
	}
	return DefaultMaxHold
}

// Ready removes and returns the changes that are ready at now, appended to
// dst.
func (co *Coalescer) Ready(now time.Time, dst []Change) []Change {
	for co.queue.Len() > 0 && !co.queue[0].at.After(now) {
		d := heap.Pop(&co.queue).(deadline)
		e, ok := co.pending[d.path]
		if !ok || !e.scheduled.Equal(d.at) {
			continue // superseded by an earlier deadline
		}
		if at := co.readyAt(e); at.After(now) {
			co.schedule(d.path, e, at) // later events moved it
			continue
		}
		c := e.c
		switch {
		case c.Finished:
			delete(co.pending, d.path)
		case co.settles(e) && !now.Before(e.last.Add(co.Settle)) && !co.held(d.path):
			c.Finished = true // quiet for the settle period, and no writer seen
			delete(co.pending, d.path)
		case co.Probe != nil && co.waits(d.path, e, now, &c):
			if c.Finished {
				delete(co.pending, d.path)
				break
			}
			e.last = now // probe again one interval later
			e.c.Closed = false
			co.schedule(d.path, e, co.readyAt(e))
			continue
		default:
			// Held past MaxHold: report it unfinished and hold it again.
			e.first = now
			e.c.Op = Write
			co.schedule(d.path, e, co.readyAt(e))
		}
		dst = append(dst, c)
	}
	return dst
}

// waits probes e's path: it reports true (with c made finished) when no
// writer holds it, its close not seen; true when a writer holds it, or
// within MaxHold when the system cannot tell; false only past MaxHold
// with the system unable to tell.
func (co *Coalescer) waits(path string, e *entry, now time.Time, c *Change) bool {
	done, known := co.Probe(path)
	switch {
	case known && done:
		c.Finished = true
		return true
	case known:
		return true
	}
	return now.Before(e.first.Add(co.maxHold()))
}

// held reports whether Probe knows that a writer holds path: a quiet
// change does not settle then. A writer that has the file open but has
// not written (yet) makes no change to wait for.
func (co *Coalescer) held(path string) bool {
	if co.Probe == nil {
		return false
	}
	done, known := co.Probe(path)
	return known && !done
}

// Next returns when the next change becomes ready, if any is pending.
func (co *Coalescer) Next() (time.Time, bool) {
	for co.queue.Len() > 0 {
		d := co.queue[0]
		if e, ok := co.pending[d.path]; ok && e.scheduled.Equal(d.at) {
			return d.at, true
		}
		heap.Pop(&co.queue)
	}
	return time.Time{}, false
}

// Len is the number of paths with a pending change.
func (co *Coalescer) Len() int { return len(co.pending) }

// Run coalesces the changes from in and sends each ready one to out, until
// ctx ends or in is closed (then what is pending is flushed as it is, so
// nothing is lost on shutdown: unfinished changes go out unfinished).
// writing, when set, is given Writing whenever it changes (before the
// changes made ready by that are sent).
func (co *Coalescer) Run(ctx context.Context, in <-chan Change, out chan<- Change, writing func(time.Time)) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ready []Change
	var began time.Time
	for {
		ready = co.Ready(time.Now(), ready[:0])
		if writing != nil {
			if w := co.Writing(); !w.Equal(began) {
				began = w
				writing(w)
			}
		}
		for _, c := range ready {
			select {
			case out <- c:
			case <-ctx.Done():
				return nil
			}
		}
		wait := time.Hour
		if at, ok := co.Next(); ok {
			wait = max(time.Until(at), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-in:
			if !ok {
				return co.flush(ctx, out)
			}
			co.Add(c, time.Now())
		case <-timer.C:
		}
	}
}

func (co *Coalescer) flush(ctx context.Context, out chan<- Change) error {
	for path, e := range co.pending {
		select {
		case out <- e.c:
		case <-ctx.Done():
			return nil
		}
		delete(co.pending, path)
	}
	return nil
}

type deadline struct {
	at   time.Time
	path string
}

// deadlines is a min-heap by time (container/heap).
type deadlines []deadline

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d deadlines) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}
