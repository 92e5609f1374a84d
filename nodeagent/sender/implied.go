package sender

import "sync"

// impliedDirs keeps one peer's runs from leaving a directory's times older
// on the peer than they are here. rsync, given `--relative`, sends every
// directory above a listed path as an implied one, with its attributes as
// they were when its file list was built, and sets them on the peer when
// it is done (generator.c, touch_up_dirs). Of two runs in flight at once
// that list paths in one directory, the one whose list is older may end
// last, and leave the directory's older mtime there: nothing journals that
// directory again (its times move with every entry made in it, which are
// changes of their own, and the last of those went already). Each rsync
// process of a run takes a number as it starts (start); as it ends
// (finish), a directory that a later-numbered one already set is returned,
// to be journaled again for this peer (journal.Journal.Again).
type impliedDirs struct {
	mu     sync.Mutex
	next   uint64
	open   map[uint64]bool   // the lists started and not ended
	landed map[string]uint64 // directory: the newest list that set it
}

// start numbers a list about to be sent.
func (d *impliedDirs) start() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	if d.open == nil {
		d.open = make(map[uint64]bool)
	}
	d.open[d.next] = true
	return d.next
}

// finish records that list n, of paths, has ended, and returns the
// directories above those paths (the root aside) that a later list set
// first. A record no open list is older than can flag nothing (a list
// that starts later is newer still): it is dropped, so that runs that
// overlap for hours keep no more than the directories of those in flight.
func (d *impliedDirs) finish(n uint64, paths []string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.open, n)
	var stale []string
	seen := make(map[string]bool)
	for _, p := range paths {
		for dir := parent(p); dir != ""; dir = parent(dir) {
			if seen[dir] {
				break // and the directories above it
			}
			seen[dir] = true
			switch {
			case d.landed[dir] > n:
				stale = append(stale, dir)
			default:
				if d.landed == nil {
					d.landed = make(map[string]uint64)
				}
				d.landed[dir] = n
			}
		}
	}
	if len(d.open) == 0 {
		d.landed = nil
		return stale
	}
	oldest := d.next
	for m := range d.open {
		oldest = min(oldest, m)
	}
	for dir, m := range d.landed {
		if m <= oldest {
			delete(d.landed, dir)
		}
	}
	return stale
}
