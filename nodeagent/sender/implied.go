package sender

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// impliedDirs keeps one peer's runs from leaving a directory's times older
// on the peer than they are here. rsync, given `--relative`, sends every
// directory above a listed path as an implied one, with its attributes as
// they were when its file list was built, and sets them on the peer when
// it is done (generator.c, touch_up_dirs). Of two runs in flight at once
// that list paths in one directory, the one whose list is older may end
// last, and leave the directory's older mtime there: nothing journals that
// directory again (its times move with every entry made in it, which are
// changes of their own, and the last of those went already). Each rsync
// process of a run takes a number as it starts (start), with the state of
// the directories above its paths then; as it ends (finish), a directory
// that a later-numbered one set first, in another state, is returned, to
// be journaled again for this peer (journal.Journal.Again). In the same
// state (nothing changed in it between the two lists: a burst's last runs,
// a restart's catch-up), it goes no more.
type impliedDirs struct {
	mu     sync.Mutex
	next   uint64
	open   map[uint64]map[string]dirState // the lists started and not ended
	landed map[string]landedDir           // directory: the newest list that set it
}

// dirState is what rsync sets of a directory (times, mode, owner), as an
// lstat here read it.
type dirState struct {
	mtime          int64
	mode, uid, gid uint32
}

// landedDir is the list that last set a directory on the peer, and the
// state it set.
type landedDir struct {
	list  uint64
	state dirState
}

// start numbers a list of paths about to be sent, with the state of the
// directories above them (the root aside) now. One that cannot be looked
// at (gone) is left out.
func (d *impliedDirs) start(rootfd int, paths []string) uint64 {
	states := make(map[string]dirState)
	for _, p := range paths {
		for dir := parent(p); dir != ""; dir = parent(dir) {
			if _, seen := states[dir]; seen {
				break // and the directories above it
			}
			var st unix.Stat_t
			if beneath.Lstat(rootfd, dir, &st) != nil {
				states[dir] = dirState{mtime: -1}
				continue
			}
			states[dir] = dirState{mtime: st.Mtim.Nano(), mode: uint32(st.Mode), uid: st.Uid, gid: st.Gid}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	if d.open == nil {
		d.open = make(map[uint64]map[string]dirState)
	}
	d.open[d.next] = states
	return d.next
}

// finish records that list n has ended, and returns the directories above
// its paths that a later list set first, in another state. A record no
// open list is older than can flag nothing (a list that starts later is
// newer still): it is dropped, so that runs that overlap for hours keep no
// more than the directories of those in flight.
func (d *impliedDirs) finish(n uint64) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	states := d.open[n]
	delete(d.open, n)
	var stale []string
	for dir, st := range states {
		if st.mtime == -1 {
			continue // gone when the list started: its removal is journaled
		}
		l, ok := d.landed[dir]
		switch {
		case ok && l.list > n:
			if l.state != st {
				stale = append(stale, dir)
			}
		default:
			if d.landed == nil {
				d.landed = make(map[string]landedDir)
			}
			d.landed[dir] = landedDir{list: n, state: st}
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
	for dir, l := range d.landed {
		if l.list <= oldest {
			delete(d.landed, dir)
		}
	}
	return stale
}
