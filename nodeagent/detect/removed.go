package detect

import (
	"sync"
	"time"
)

// removedHold is how long a removal the source reported keeps its path
// out of a full scan's mass-deletion count: long past the journal's
// record of it (milliseconds, seconds under load), after which the index
// no longer holds the path and a scan cannot find it gone.
const removedHold = time.Minute

// maxRemoved bounds how many removals are remembered; past it the oldest
// are forgotten, and count again (the guard is then stricter, never
// looser).
const maxRemoved = 1 << 16

// recentRemovals are the paths whose removal, or rename away, the source
// reported in the last removedHold: removals seen happening, which go on
// to the peers as events whatever their share, so a full scan that finds
// them gone before the journal recorded them must not count them as a
// wiped or swapped root's (scan.Scanner.SeenRemoved). Counted, a writer's
// own rm -r of most of the tree, scanned while its removals were still on
// their way to the journal, stopped the writer's agent on a mass deletion
// (the stress test, seeds 0 and 24, the forty-fifth session). A root
// wiped or swapped unseen (unmounted, replaced by another directory) has
// no such events, and is refused as before.
//
// The zero value is empty and ready to use; it is safe for concurrent use.
type recentRemovals struct {
	mu    sync.Mutex
	at    map[string]time.Time // the latest report of each path
	order []removal            // reports, oldest first
}

type removal struct {
	path string
	at   time.Time
}

// add notes that path was removed (or renamed away) at now.
func (r *recentRemovals) add(path string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = make(map[string]time.Time)
	}
	r.expire(now)
	if len(r.order) >= maxRemoved {
		r.drop(len(r.order) - maxRemoved + 1)
	}
	r.at[path] = now
	r.order = append(r.order, removal{path: path, at: now})
}

// has reports whether path, or a directory above it, was reported removed
// within removedHold of now.
func (r *recentRemovals) has(path string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.at) == 0 {
		return false
	}
	return atOrAbove(path, func(p string) bool {
		at, ok := r.at[p]
		return ok && now.Sub(at) < removedHold
	})
}

// expire forgets the reports older than removedHold; the caller holds mu.
func (r *recentRemovals) expire(now time.Time) {
	n := 0
	for n < len(r.order) && now.Sub(r.order[n].at) >= removedHold {
		n++
	}
	r.drop(n)
}

// drop forgets the n oldest reports; the caller holds mu.
func (r *recentRemovals) drop(n int) {
	for _, old := range r.order[:n] {
		if r.at[old.path].Equal(old.at) {
			delete(r.at, old.path)
		}
	}
	// Resliced, not copied: append moves the live reports to a new
	// array when this one is full, and the old one goes.
	r.order = r.order[n:]
}
