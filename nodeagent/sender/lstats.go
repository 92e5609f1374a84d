package sender

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

// Lstats lets a group's senders share the lstats of their plans. The
// peers' senders take the same journal entries at about the same time
// (every change is journaled for every peer, under one sequence number)
// and plan them by what is on disk (plan): a burst's 2,000 paths were
// looked at three times, three lstats per file on a host whose CPU the
// pushes wait for. With one Lstats, the first plan of an entry looks, and
// the other senders' plans of that same entry (its path and Seq) take
// what it saw, for up to lstatReuse.
//
// What another plan saw is as good as a look of one's own. It was taken
// after the entry was journaled, as a sender's own plan is; and a change
// since then is one that a look of one's own could equally have missed,
// by coming right after it: the run's re-check after its push
// (batch.changedSince, which never shares) finds it, as it finds a write
// during the push, and what follows is what follows such a write: the
// change's own entry goes in a later run, or, for a peer's version that
// this member received meanwhile (no entry of its own), the rule for
// writes that cross (Sender.Crossed). A shared look only widens that
// window by the few milliseconds between the senders' plans.
//
// Plans hold the Lstats while they plan (at most one batch, BatchFiles
// paths), so that the senders of one burst plan one after the other, the
// first looking and the others reading. Share one among a group's
// senders; a Sender without one looks for itself. The zero value is
// ready to use.
type Lstats struct {
	mu sync.Mutex
	// cur holds the looks since curSince, old those of the window before;
	// older ones are dropped with old, so memory stays with the last two
	// windows' plans.
	cur, old map[string]sharedLstat
	curSince time.Time
}

// lstatReuse is how long one plan's look of a path serves other plans of
// the same entry: the senders of a burst plan within milliseconds of one
// another.
const lstatReuse = 100 * time.Millisecond

type sharedLstat struct {
	seq uint64
	at  time.Time
	st  unix.Stat_t
	err error
}

// plan is plan(rootfd, entries), its lstats shared through l (looked up
// for itself when l is nil).
func (l *Lstats) plan(rootfd int, entries []journal.Entry) batch {
	if l == nil {
		return plan(rootfd, entries)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.curSince) >= lstatReuse {
		l.old, l.cur, l.curSince = l.cur, make(map[string]sharedLstat, len(entries)), now
	}
	return planBy(rootfd, entries, func(e journal.Entry, st *unix.Stat_t) error {
		return l.lstat(rootfd, e, st, now)
	})
}

// lstat is beneath.Lstat of e's path, or what a plan of e (its Seq) saw
// within lstatReuse before now. Only what plan reads for itself is kept:
// a look that found the path, or found it gone; other errors (no
// descriptor, no permission, outside the root) are looked at again.
func (l *Lstats) lstat(rootfd int, e journal.Entry, st *unix.Stat_t, now time.Time) error {
	for _, m := range []map[string]sharedLstat{l.cur, l.old} {
		if s, ok := m[e.Path]; ok && e.Seq != 0 && s.seq == e.Seq && now.Sub(s.at) < lstatReuse {
			*st = s.st
			return s.err
		}
	}
	err := beneath.Lstat(rootfd, e.Path, st)
	if e.Seq != 0 && (err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)) {
		l.cur[e.Path] = sharedLstat{seq: e.Seq, at: now, st: *st, err: err}
	}
	return err
}
