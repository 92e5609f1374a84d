package detect

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Incoming is the set of paths this agent's receiver is writing now. A peer
// announces the paths of a run before it starts and confirms them after;
// in between, changes on those paths are held, and once the receiver has
// recorded what it wrote in the index they are checked again (and dropped
// as echoes if they match). Without it, the events of a received file can
// outrun the record of it, and the file would be sent back.
//
// A path announced by a sender that then died is released after TTL, so
// that no local change is held forever.
//
// Each Add is a hold of its own (a Hold), which only its own Extend and
// Done touch: two runs may name one path, and a run whose hold expired
// (its sender stalled past TTL) and that is confirmed late must not end
// the hold of another run that announced the path since. Until the
// twenty-ninth session the holds of a path were a count, and that late
// Done took the other run's.
//
// The zero value is empty and ready to use; it is safe for concurrent use.
type Incoming struct {
	// TTL bounds how long an announced path is held; DefaultIncomingTTL
	// when 0.
	TTL time.Duration

	// Now is the clock (time.Now when nil): tests move it past TTL.
	Now func() time.Time

	mu      sync.Mutex
	last    Hold
	paths   map[string]holders
	runs    map[Hold]*run // by hold: what HoldsAround and Holding look at
	changed chan struct{}
}

// run is what one hold holds: how many of its path holds are left, when
// the latest of them expires, and the directories above its paths (the
// root left out). Done with some of its paths only (a restored run's
// partial confirmation), dirs still names those of the paths done: a
// removal near them waits for the rest of the hold, never less.
type run struct {
	paths   int
	expires time.Time
	dirs    map[string]struct{}
}

// Hold names one Add's hold of its paths.
type Hold uint64

// DefaultIncomingTTL is how long an announced path is held without news
// from its sender: a run that lasts longer is announced again meanwhile
// (sender.ReannounceEvery), and rsync's I/O timeout bounds a stalled one.
const DefaultIncomingTTL = 10 * time.Minute

// holders are the holds of one path: nearly always one, kept inline.
type holders struct {
	first hold
	more  []hold
}

type hold struct {
	id      Hold
	expires time.Time
}

// each calls fn with a pointer to every hold, first included (when set).
func (h *holders) each(fn func(*hold)) {
	if h.first.id != 0 {
		fn(&h.first)
	}
	for i := range h.more {
		fn(&h.more[i])
	}
}

// drop removes the holds for which gone is true; it reports whether any
// is left.
func (h *holders) drop(gone func(hold) bool) bool {
	h.more = slices.DeleteFunc(h.more, gone)
	if h.first.id != 0 && gone(h.first) {
		h.first = hold{}
	}
	if h.first.id == 0 && len(h.more) > 0 {
		h.first, h.more = h.more[0], h.more[1:]
	}
	if len(h.more) == 0 {
		h.more = nil
	}
	return h.first.id != 0
}

// Add marks paths as being received, as a hold of their own, and returns
// it for Extend and Done.
func (in *Incoming) Add(paths ...string) Hold {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.paths == nil {
		in.paths = make(map[string]holders)
	}
	in.last++
	h := hold{id: in.last, expires: in.clock().Add(in.ttl())}
	r := &run{paths: len(paths), expires: h.expires, dirs: make(map[string]struct{})}
	for _, p := range paths {
		e := in.paths[p]
		if e.first.id == 0 {
			e.first = h
		} else {
			e.more = append(e.more, h)
		}
		in.paths[p] = e
		// The directories above p, up to the first one an earlier path
		// put there already (its own are there too).
		above(p, func(dir string) bool {
			if _, ok := r.dirs[dir]; ok {
				return true
			}
			r.dirs[dir] = struct{}{}
			return false
		})
	}
	if len(paths) > 0 {
		if in.runs == nil {
			in.runs = make(map[Hold]*run)
		}
		in.runs[h.id] = r
	}
	return h.id
}

// forget counts one path hold of h gone (done or expired), and forgets
// h's run with its last; it returns true, for drop. The caller holds
// in.mu.
func (in *Incoming) forget(h hold) bool {
	if r, ok := in.runs[h.id]; ok {
		if r.paths--; r.paths <= 0 {
			delete(in.runs, h.id)
		}
	}
	return true
}

// Extend holds paths of hold id for another TTL from now: a sender
// re-announces a run that lasts (a large file at a bandwidth limit), so
// that its paths are not released while they are still being received.
// A path that id no longer holds (expired, whether or not a look dropped
// it yet, or never its) is not added.
func (in *Incoming) Extend(id Hold, paths ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.clock()
	expires := now.Add(in.ttl())
	for _, p := range paths {
		e, ok := in.paths[p]
		if !ok {
			continue
		}
		e.each(func(h *hold) {
			if h.id == id && now.Before(h.expires) {
				h.expires = expires
				if r := in.runs[id]; r != nil && r.expires.Before(expires) {
					r.expires = expires
				}
			}
		})
		in.paths[p] = e
	}
}

// ttl is TTL, or its default.
func (in *Incoming) ttl() time.Duration {
	if in.TTL > 0 {
		return in.TTL
	}
	return DefaultIncomingTTL
}

// clock is the time now.
func (in *Incoming) clock() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// Done ends hold id of paths, after the receiver recorded them; the other
// holds of a path stay.
func (in *Incoming) Done(id Hold, paths ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, p := range paths {
		e, ok := in.paths[p]
		if !ok {
			continue
		}
		if e.drop(func(h hold) bool { return h.id == id && in.forget(h) }) {
			in.paths[p] = e
		} else {
			delete(in.paths, p)
		}
	}
	if in.changed != nil {
		close(in.changed)
		in.changed = nil
	}
}

// live reports whether path itself has a hold that has not expired, and
// drops its expired ones; the caller holds in.mu.
func (in *Incoming) live(path string, now time.Time) bool {
	e, ok := in.paths[path]
	if !ok {
		return false
	}
	if e.drop(func(h hold) bool { return !now.Before(h.expires) && in.forget(h) }) {
		in.paths[path] = e
		return true
	}
	delete(in.paths, path)
	return false
}

// Has reports whether path, or a directory above it, is being received
// (announced, not yet done, not expired): a received directory's delete or
// rename touches everything below it.
func (in *Incoming) Has(path string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.paths) == 0 {
		return false
	}
	now := in.clock()
	return atOrAbove(path, func(p string) bool { return in.live(p, now) })
}

// atOrAbove reports whether fn holds for path or for a directory above it,
// the nearest first.
func atOrAbove(path string, fn func(p string) bool) bool {
	for p := path; ; {
		if fn(p) {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// above reports whether fn holds for a directory above path (the root
// left out), the nearest first: atOrAbove from path's parent.
func above(path string, fn func(dir string) bool) bool {
	i := strings.LastIndexByte(path, '/')
	return i > 0 && atOrAbove(path[:i], fn)
}

// Carries reports whether path itself (not a directory above it) is being
// received. A received directory's own change (its times, as a file made
// in it changes them) carries nothing of the files below it, which Has
// would count.
func (in *Incoming) Carries(path string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.live(path, in.clock())
}

// HasBelow reports whether a path below dir is being received (announced,
// not yet done, not expired): rsync makes the missing parents of a listed
// path on the receiver (implied directories), and their events carry
// nothing of this member's, nor do the removals of what was in their way.
// It looks at every held path: call it for directory changes and
// removals only.
func (in *Incoming) HasBelow(dir string) bool {
	return in.anyBelow(dir, false, in.live)
}

// CarriedByOther reports whether path itself is held by a hold that is
// not among own (another run's, announced and not expired): a receiver
// recording one run's confirmation leaves such a path to that run's.
func (in *Incoming) CarriedByOther(path string, own []Hold) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.heldByOther(path, own, in.clock())
}

// OtherAtOrBelow reports whether dir itself or a path below it is held
// by a hold that is not among own: a directory one run made only to reach
// a removal is one another run may be putting files in (its implied
// parent, or its own listed directory), and removing it there makes that
// run's files fail and its confirmation take them for this member's
// removal (the stress test, seed 478 of the fifty-fourth session). It
// looks at every held path, as HasBelow does.
func (in *Incoming) OtherAtOrBelow(dir string, own []Hold) bool {
	return in.anyBelow(dir, true, func(p string, now time.Time) bool { return in.heldByOther(p, own, now) })
}

// anyBelow reports whether held(p, now) is true for a held path p below
// dir, or dir itself when self is set; held is called with in.mu held.
// It looks at every held path.
func (in *Incoming) anyBelow(dir string, self bool, held func(p string, now time.Time) bool) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.paths) == 0 {
		return false
	}
	prefix := dir + "/"
	if dir == "." {
		prefix = ""
	}
	now := in.clock()
	for p := range in.paths {
		if (p == dir && self || p != dir && strings.HasPrefix(p, prefix)) && held(p, now) {
			return true
		}
	}
	return false
}

// heldByOther reports whether path has a live hold not among own; the
// caller holds in.mu.
func (in *Incoming) heldByOther(path string, own []Hold, now time.Time) bool {
	if !in.live(path, now) {
		return false
	}
	e := in.paths[path]
	other := false
	e.each(func(h *hold) {
		other = other || !slices.Contains(own, h.id)
	})
	return other
}

// HoldsAround returns the live holds that hold a path below a directory
// above rel (the root left out): runs whose rsync may empty and remove
// such a directory here, to replace it with a file the sender read there
// (--force; peer.FileState.Replaced). A removal read while that directory
// is still one looks like any other; the detector holds it until these
// holds end (Holding), and then looks at what the directory became. One
// look per live hold and directory above rel.
func (in *Incoming) HoldsAround(rel string) []Hold {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.runs) == 0 {
		return nil
	}
	now := in.clock()
	var ids []Hold
	for id, r := range in.runs {
		if !now.Before(r.expires) {
			delete(in.runs, id) // its path holds go when looked at (live)
			continue
		}
		if above(rel, func(dir string) bool { _, ok := r.dirs[dir]; return ok }) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Holding reports whether any of ids still holds a path (not done, not
// expired).
func (in *Incoming) Holding(ids []Hold) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.clock()
	for _, id := range ids {
		if r, ok := in.runs[id]; ok && now.Before(r.expires) {
			return true
		}
	}
	return false
}

// Busy returns how many holds were made so far (Add) and whether any
// still holds a path (not done, not expired): the anti-entropy compare
// waits while a run is received, and takes a new hold for activity
// (package antientropy).
func (in *Incoming) Busy() (added uint64, busy bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.clock()
	for _, r := range in.runs {
		if now.Before(r.expires) {
			return uint64(in.last), true
		}
	}
	return uint64(in.last), false
}

// Changed returns a channel closed at the next Done.
func (in *Incoming) Changed() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.changed == nil {
		in.changed = make(chan struct{})
	}
	return in.changed
}
