package receiver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// confirmedFor is how long a confirmed run is remembered: well past the
// sender's retries of its confirmation and of its announcements, and the
// holds they were about (detect.DefaultIncomingTTL).
const confirmedFor = 2 * detect.DefaultIncomingTTL

// confirmation is a run's confirmation: when it came, and once recorded
// (done closed) whether that failed.
type confirmation struct {
	at   time.Time
	done chan struct{}
	err  error
}

// runReport is what a sender's confirmation says of one of its runs: the
// paths it sent (with the sender's states of them, in order) and those it
// deleted.
type runReport struct {
	from, run string
	sent      []string
	states    []peer.FileState
	deleted   []string
}

// key names the run among every sender's.
func (rep runReport) key() string { return rep.from + "\x00" + rep.run }

// Received records the state of every path the run confirmed, then
// releases the run's paths. A sent path that is already gone again was
// deleted here meanwhile: it is recorded as present (an entry no lstat
// matches), so that the local deletion, held until now, is not mistaken
// for an echo and propagates. So is a sent regular file that is no longer
// what the sender sent (states): written here meanwhile, its change is
// this member's own and must propagate, not pass for the received version.
// A directory the sender names as one rsync made or changed above a listed
// path (peer.FileState.Dir) is recorded as it is while it is a directory,
// and otherwise left as the index holds it.
//
// Every path the run was announced with is released, not only those it
// confirms: a path that failed, was skipped or was cut off goes in a later
// run, announced again; held on here meanwhile, it would hold every local
// change below it for as long as that sender kept announcing it (each
// announcement renews the hold). A run not known here (announced before
// this agent started, restored from the index) releases each of its paths
// at the sender's first confirmation that records that path; a run not
// known at all releases nothing.
func (r *Receiver) Received(ctx context.Context, from, run string, sent []string, states []peer.FileState, deleted []string) error {
	if err := checkPaths(sent, deleted); err != nil {
		return fmt.Errorf("confirmed run %s from %s: %w", run, from, err)
	}
	if err := r.checkRoot(); err != nil {
		return fmt.Errorf("confirmed run %s from %s: %w", run, from, err)
	}
	rep := runReport{from: from, run: run, sent: sent, states: states, deleted: deleted}
	key := rep.key()
	c, earlier, cr := r.beginConfirmation(rep)
	if earlier != nil {
		// Confirmed again: its paths were released once, or will be by
		// the confirmation in progress, whose outcome is this one's.
		select {
		case <-earlier.done:
			return earlier.err
		case <-ctx.Done():
			return fmt.Errorf("confirmed run %s from %s: waiting for its confirmation in progress: %w", run, from, ctx.Err())
		}
	}
	mine, why, err := r.recordConfirmed(rep, cr)
	if err != nil {
		// Not confirmed: the run keeps its paths held, and the sender's
		// next try does it all again.
		err = fmt.Errorf("record %d received paths from %s: %w", len(sent)+len(deleted), from, err)
		r.mu.Lock()
		delete(r.confirmed, key)
		r.giveBack(cr.released)
		r.mu.Unlock()
		c.err = err
		close(c.done)
		return err
	}
	close(c.done)
	r.endConfirmation(rep, cr, mine, why)
	return nil
}

// confirmedRun is what a confirmation takes, under the receiver's lock,
// before it records anything (Receiver.beginConfirmation).
type confirmedRun struct {
	// a is the run as announced here; known, whether it was (and was not
	// restored from the index: restored).
	a               announced
	known, restored bool
	// released are the other runs of the sender whose paths this
	// confirmation records (takeCovered).
	released []releasedRun
	// own are this run's holds and the released runs': a path another
	// run holds too is that run's to record.
	own []detect.Hold
}

// beginConfirmation claims the confirmation of rep's run; a run
// confirmed before (or being confirmed) returns that confirmation as
// earlier, and nothing else is done. Otherwise it takes what the run and
// the sender's other runs hold of what the confirmation records.
func (r *Receiver) beginConfirmation(rep runReport) (c, earlier *confirmation, cr confirmedRun) {
	key := rep.key()
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, again := r.confirmed[key]; again {
		return nil, c, cr
	}
	if r.confirmed == nil {
		r.confirmed = make(map[string]*confirmation)
	}
	maps.DeleteFunc(r.confirmed, func(_ string, c *confirmation) bool { return now.Sub(c.at) > confirmedFor })
	c = &confirmation{at: now, done: make(chan struct{})}
	r.confirmed[key] = c
	cr.a, cr.known = r.runs[key]
	// The other runs of this sender (announced before this agent started,
	// or never confirmed: takeCovered) give up the paths this confirmation
	// records, and only those (taken here, under the lock, so that no other
	// confirmation takes them too); this run among them, when it was
	// restored (its transfer was cut by the restart, and what the sender
	// did not list may still have arrived).
	cr.released = r.takeCovered(rep.from, announcedBefore(cr.a.at), recordedOf(rep.sent, rep.states), rep.deleted)
	cr.restored = cr.known && cr.a.restored
	if cr.restored {
		cr.known = false // what it holds is takeCovered's
	}
	// This run's holds: a path another run holds too is that run's to
	// record (below).
	cr.own = slices.Clone(cr.a.holds)
	for _, rr := range cr.released {
		cr.own = append(cr.own, rr.kept.holds...)
	}
	return c, nil, cr
}

// recordConfirmed records in the index, in one commit, every path the
// run confirmed, and returns the paths it recorded as this member's own
// (an entry nothing matches: mine), each with what it is here (why, for
// the log). Each of mine is compared again once the commit is done
// (Rescan). No event of their own may come: a file written through
// another of its names, the name then removed (the stress test: the peers
// kept the old content of m7, written through D13/h3 here while a run was
// putting the peer's m7 there).
func (r *Receiver) recordConfirmed(rep runReport, cr confirmedRun) (mine, why []string, _ error) {
	// Batch: shares its commit with the journal's and other runs' records.
	err := r.Index.Batch(func(btx *bolt.Tx) error {
		mine, why = nil, nil // afresh: Batch may call again
		if !cr.restored {
			if err := forget(btx, rep.key()); err != nil {
				return err
			}
		}
		for _, rr := range cr.released {
			if err := r.persistTaken(btx, rr); err != nil {
				return err
			}
		}
		rec := &confirmRecord{r: r, tx: index.Within(btx), run: cr, states: rep.states,
			relinked: make(map[uint64]bool), sentFiles: make(map[uint64]bool)}
		for i, p := range rep.sent {
			if err := rec.sent(i, p); err != nil {
				return err
			}
		}
		for _, p := range rep.deleted {
			if err := rec.deleted(p); err != nil {
				return err
			}
		}
		if err := rec.finish(); err != nil {
			return err
		}
		mine, why = rec.mine, rec.why
		return r.recordImplied(rec.tx, rep.sent, rep.deleted)
	})
	return mine, why, err
}

// confirmRecord is one confirmation's record, within its transaction.
type confirmRecord struct {
	r      *Receiver
	tx     *index.Tx
	run    confirmedRun
	states []peer.FileState
	// relinked are the inodes whose link count the run changed here:
	// their other names are recorded again (index.Tx.RefreshLinks).
	relinked map[uint64]bool
	// sentFiles are the inodes of files the run sent and this member
	// holds as sent: every other name of one is that file, whatever the
	// run did to it (times, mode, content written in place), and is
	// recorded as it is (index.Tx.RecordOtherNames). Left to
	// RefreshLinks, which takes a name whose mtime or mode moved for a
	// change of this member's, a name the sender no longer has for that
	// file (ln c28 h15; mv h15 m15; a new h15 written) read here as this
	// member's change, went back to every member as such, and replaced
	// the sender's new h15 (the stress test, seed 21). So are the other
	// names of a file sent without a state (noState), recorded as this
	// member holds it: the same inode, as it is. Left to RefreshLinks, a
	// mode the run set through that name read, at the next rename of
	// another name, as this member's change, which went to the writer and
	// replaced its newest version (the stress test, seed 163, the
	// fifty-first session: runs whose every path went without a state,
	// sender.batch.skewedBy).
	sentFiles map[uint64]bool
	// madeForDelete are the directories rsync made only for a removal,
	// recorded (or removed again) once the rest is (unmake).
	madeForDelete []string
	mine, why     []string
}

// state returns the run's state of its i-th sent path, if it gave one.
func (rec *confirmRecord) state(i int) (peer.FileState, bool) {
	if i < len(rec.states) {
		return rec.states[i], true
	}
	return peer.FileState{}, false
}

// sent records the i-th path the run sent, p.
func (rec *confirmRecord) sent(i int, p string) error {
	s, stated := rec.state(i)
	if stated && s.Dir {
		return rec.sentDir(p, s)
	}
	if err := rec.linked(p); err != nil {
		return err
	}
	if stated && s.Replaced {
		// A directory the run replaced with a file, or removed
		// for one it never put there (peer.FileState.Replaced):
		// the run's, as it is.
		return rec.r.record(rec.tx, p)
	}
	var st unix.Stat_t
	err := beneath.Lstat(rec.r.RootFD, p, &st)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
		rec.relinked[uint64(st.Ino)] = true
	}
	if stated {
		if done, serr := rec.settledByState(p, s, &st, err); done {
			return serr
		}
	}
	if errors.Is(err, unix.ENOENT) || err == nil && stated && !rec.r.holds(p, &st, s) {
		return rec.notHeldAsSent(p, notAsSent(err, &st, rec.states, i))
	}
	return rec.asSent(p, &st, err, stated && (s.Regular || noState(s)))
}

// sentDir records p, a directory the run sent (s).
func (rec *confirmRecord) sentDir(p string, s peer.FileState) error {
	if s.ForDelete {
		rec.madeForDelete = append(rec.madeForDelete, p) // once the rest is recorded (finish)
		return nil
	}
	// A directory rsync made or changed above a listed path:
	// the sender's now, whatever the run did below it.
	return rec.r.recordDir(rec.tx, p)
}

// settledByState settles p where the run's state of it, s, says what
// became of it here (st, or lerr: its lstat here). done is false when p is to be
// recorded as any sent path.
func (rec *confirmRecord) settledByState(p string, s peer.FileState, st *unix.Stat_t, lerr error) (done bool, err error) {
	switch {
	case s.Vanished:
		// A file that vanished at the sender before rsync read
		// it: rsync wrote nothing here, and deleted what was here
		// if it was a symlink or a directory (an empty one: a
		// tree's deletion came with lines of its own), without a
		// word. Taken for this member's removal, it went to every
		// member (peer.FileState.Vanished). Anything else here is
		// as it was, and left alone.
		return true, rec.vanished(p, st, lerr)
	case index.IsGone(lerr) && s.Unspoken:
		// Never spoken of by a run cut short, and not here: the
		// run left nothing here, and whatever removed it here is
		// compared by its own event (peer.FileState.Unspoken).
		return true, nil
	case errors.Is(lerr, unix.ENOENT) && s.Unconfirmed:
		// Itemized by a run that broke off, gone here and never
		// indexed: rsync did not leave it here, and nothing of
		// this member's is gone. Taken for this member's removal,
		// it went to every other member, which deleted the
		// sender's file (a receiver stopped halfway through a
		// large file: TestStandalone_ReceiverRestartResumesALarge-
		// File, one run in two). Indexed, it was here and was
		// removed since: this member's, as below.
		_, ok, err := rec.tx.Get(p)
		return err != nil || !ok, err
	}
	return false, nil
}

// asSent records p as found here (st, or the error lerr of its lstat),
// as the sender sent it: a write here since is this member's change,
// which its own event brings. A file of several names that the run sent
// as a file (asFile: with a regular file's state, or none) has its other
// names recorded as it is (sentFiles).
func (rec *confirmRecord) asSent(p string, st *unix.Stat_t, lerr error, asFile bool) error {
	if err := rec.r.recordFound(rec.tx, p, st, lerr); err != nil {
		return err
	}
	if lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 && asFile {
		rec.sentFiles[uint64(st.Ino)] = true
	}
	return nil
}

// vanished records p, a path that vanished at the sender before rsync
// read it (st, or lerr: its lstat here), when it is gone here and the index held
// a directory or a symlink there.
func (rec *confirmRecord) vanished(p string, st *unix.Stat_t, lerr error) error {
	if !index.IsGone(lerr) {
		return nil
	}
	old, ok, err := rec.tx.Get(p)
	if err != nil {
		return err
	}
	if ok && (old.IsDir() || old.Mode.Type() == os.ModeSymlink) {
		return rec.r.recordFound(rec.tx, p, st, lerr) // gone, as found
	}
	return nil
}

// notHeldAsSent records p, a sent path that is gone here or not what the
// sender sent (why), as this member's own change, unless another run is
// putting its version there or a replay took the run's away.
func (rec *confirmRecord) notHeldAsSent(p, why string) error {
	if rec.r.Held.CarriedByOther(p, rec.run.own) {
		// Not this member's change: another run (of this
		// sender's, or another's) is putting its version
		// there, and its confirmation records it.
		return nil
	}
	if rec.run.known && rec.r.movedAwaySince(p, rec.run.a.at) {
		// A replayed rename (or removal) of another member's,
		// applied since the run was announced, took what the
		// run put here away with the name or a directory above
		// it; it recorded what it moved, and what the name
		// holds now is its, or nothing. Taken for this
		// member's removal, the path's absence went to every
		// member, and a member that had written the path since
		// kept its version alone (the stress test's Crossing
		// seed 2, the sixty-second session: n2 replayed n1's
		// mv d9/d9 D27 just after n3's run put d9/d9/h26 there).
		return nil
	}
	return rec.ownChange(p, why)
}

// deleted records p, a path the run deleted.
func (rec *confirmRecord) deleted(p string) error {
	if err := rec.linked(p); err != nil {
		return err
	}
	if slices.Contains(rec.madeForDelete, p) {
		// Deleted, and made again by the run itself: rsync sent it as
		// the implied parent of the run's removals below it, the sender
		// holding a directory there again by the time rsync read its list
		// (rm -r s4; mv D28 s4). It is the run's, and finish decides it
		// (unmake): gone where empty and nothing else holds it. Taken for
		// this member's own, the empty directory went to every member,
		// the writer included (the stress test, Kill9 seed 543 of the
		// sixty-ninth session).
		return nil
	}
	// Made here again since rsync deleted it (a path that exists
	// and is not as the index holds it): this member's own change,
	// recorded as an entry nothing matches so that it propagates
	// rather than pass for the received deletion. A path the peer
	// kept (a refused rename's old name, deletes: Keep) is as the
	// index holds it, and recorded so: as it was found and compared
	// (index.Tx.RecordFound).
	var st unix.Stat_t
	lerr := beneath.Lstat(rec.r.RootFD, p, &st)
	if lerr == nil {
		if same, err := rec.tx.UnchangedFound(p, &st, lerr, false); err == nil && !same {
			if rec.r.Held.CarriedByOther(p, rec.run.own) {
				return nil // another run's version, as for a sent path
			}
			return rec.ownChange(p, "deleted by the run, here again")
		}
	}
	return rec.r.recordFound(rec.tx, p, &st, lerr)
}

// ownChange records p as this member's own change: an entry nothing
// matches, compared again after the commit (mine).
func (rec *confirmRecord) ownChange(p, why string) error {
	if err := rec.tx.Put(p, index.Entry{Size: -1}); err != nil {
		return err
	}
	rec.mine = append(rec.mine, p)
	rec.why = append(rec.why, why)
	return nil
}

// linked notes the inodes of hard-linked files at p as the index holds
// it, and below p where it held a directory (a directory removed takes
// its tree's names, as index.Tx.Delete does): their link count may have
// changed (relinked).
func (rec *confirmRecord) linked(p string) error {
	old, ok, err := rec.tx.Get(p)
	switch {
	case err != nil || !ok:
	case old.MayHaveChildren():
		return rec.tx.EachBelow(p, func(_ string, e index.Entry) error {
			if !e.MayHaveChildren() && e.Nlink > 1 {
				rec.relinked[e.Ino] = true
			}
			return nil
		})
	case old.Nlink > 1:
		rec.relinked[old.Ino] = true
	}
	return nil
}

// finish records, once every path is, the directories made only for a
// removal and the other names of the files the run sent or relinked.
func (rec *confirmRecord) finish() error {
	if err := rec.r.unmake(rec.tx, rec.madeForDelete, rec.run.own); err != nil {
		return err
	}
	for ino := range rec.sentFiles {
		if err := rec.tx.RecordOtherNames(rec.r.RootFD, ino); err != nil {
			return err
		}
	}
	for ino := range rec.relinked {
		if rec.sentFiles[ino] {
			continue
		}
		if err := rec.tx.RefreshLinks(rec.r.RootFD, ino, ""); err != nil {
			return err
		}
	}
	return nil
}

// endConfirmation has what the confirmation recorded as this member's
// own compared again, moves what landed under names a replay took away
// since, and releases the run's paths and the released runs'.
func (r *Receiver) endConfirmation(rep runReport, cr confirmedRun, mine, why []string) {
	if len(mine) > 0 {
		r.Log.V(1).Info("received paths not as sent, or made again here: this member's own, compared again", "from", rep.from, "run", rep.run, "paths", mine, "why", why)
	}
	if r.Rescan != nil {
		for _, p := range mine {
			r.Rescan(p)
		}
	}
	if cr.known && cr.a.replayed != nil {
		if unreplayed := r.unreplayed(rep.from, rep.sent, cr.a.replayed); len(unreplayed) > 0 {
			r.moveAllLanded(rep, mine, unreplayed)
		}
	}
	if cr.known {
		r.mu.Lock()
		delete(r.runs, rep.key())
		r.mu.Unlock()
	}
	for _, rr := range cr.released {
		rr.kept.release(r.Held, rr.paths...)
	}
	// A run not known here holds nothing: it was confirmed before this
	// agent restarted (the sender did not hear the answer and asks again),
	// or dropped, its paths released then. Releasing its paths again would
	// end another run's hold of them.
	if cr.known {
		cr.a.release(r.Held, cr.a.paths...)
	}
}

// recordedOf returns the paths of sent that a confirmation records as
// sent: not one that vanished on the sender, that the run never spoke
// of or did not confirm (it broke off), nor a directory made only for a
// removal (peer.FileState). Received leaves those as the index holds
// them, or records them only in some cases; released from another run
// of the sender's that put them here and died unconfirmed (takeCovered),
// that run's change read as this member's own and went to every member:
// the stress test's Kill9 seed 47 of the sixtieth session, where n1 died
// after its run had set D3/f29/f23's mode on n2, its next run named f23
// as vanished (it had moved it away meanwhile), and n2 sent the mode,
// and the directories above f23, back to n1, which had removed them.
// Held on, such a path waits for a confirmation that records it, a
// replayed rename that names it (adopt), or the hold's end.
func recordedOf(sent []string, states []peer.FileState) []string {
	if len(states) == 0 {
		return sent
	}
	out := make([]string, 0, len(sent))
	for i, p := range sent {
		if i < len(states) && (states[i].Vanished || states[i].Unspoken || states[i].Unconfirmed || states[i].ForDelete) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// unmake removes the directories a run made here only for a removal
// (peer.FileState.ForDelete: a delete's rsync, which sends a deleted
// path's parents, --relative, or the push of a directory for its times
// after a removal took a name out of it), deepest first, where each is
// still an empty directory the index does not hold: this member lacked
// them, having renamed or removed them since the sender last looked.
// Kept, a directory that a writer here had renamed away came back here
// and went to every member (the stress test, seed 163, the fifty-first
// session). One that is not empty (a run put something there
// meanwhile) or was held before stays, recorded as the run's directories
// are (recordDir). Its removal reads, at the detector, as what the index
// holds (nothing): no change of this member's. One that another run
// (not among own) holds, or holds a path below, is that run's: it may be
// empty only because that run has yet to rename its files into it, and
// removed, they failed and its confirmation took the directory's absence
// for this member's removal, which went to every member (the stress test,
// seed 478 of the fifty-fourth session). It is left to that run, neither
// removed nor recorded here. A removal leaves the times of the directory
// above as the run left them (beneath.RemoveEmptyDirKeepingTimes).
func (r *Receiver) unmake(tx *index.Tx, dirs []string, own []detect.Hold) error {
	slices.SortFunc(dirs, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	var removed, others []string
	for _, p := range dirs {
		if r.Held.OtherAtOrBelow(p, own) {
			others = append(others, p)
			continue
		}
		switch _, held, err := tx.Get(p); {
		case err != nil:
			return err
		case !held:
			if err := beneath.RemoveEmptyDirKeepingTimes(r.RootFD, p); err == nil {
				removed = append(removed, p)
				continue
			}
		}
		if err := r.recordDir(tx, p); err != nil {
			return err
		}
	}
	if len(removed) > 0 {
		// For tracing: a removal here that no change of this member's
		// made (the stress test).
		r.Log.V(2).Info("directories a run made only for a removal, removed again", "dirs", removed)
	}
	if len(others) > 0 {
		r.Log.V(2).Info("directories a run made only for a removal, left to another run that holds them", "dirs", others)
	}
	return nil
}

// notAsSent says, for the log, what a sent path is here (lerr and st, its
// lstat) against the run's state of it (states[i], when given).
func notAsSent(lerr error, st *unix.Stat_t, states []peer.FileState, i int) string {
	if lerr != nil {
		return "gone here"
	}
	here := fmt.Sprintf("here mode %o size %d mtime %d ino %d", st.Mode, st.Size, st.Mtim.Nano(), st.Ino)
	if i >= len(states) || !states[i].Regular {
		return here
	}
	s := states[i]
	return fmt.Sprintf("%s; sent mode %o size %d mtime %d", here, s.Mode, s.Size, s.MtimeNs)
}

// noState reports whether s says nothing of the path it goes with: the
// sender asks the receiver to record what it holds (a file that changed
// while the run sent it, another name of one, every path of a run whose
// file list may have handed the peer other attributes).
func noState(s peer.FileState) bool {
	return !s.Regular && !s.Symlink && !s.Dir && !s.Unconfirmed && !s.Unspoken && !s.Vanished && !s.Replaced
}

// recordImplied records the directories above the sent paths that the
// index does not hold: rsync made them on this member
// as the missing parents of listed paths (implied directories), with the
// sender's attributes. Left out, they read as this member's own
// directories at the next compare and went to every member, where one
// could replace a file the sender had made under that name since (found
// by the stress test; the detector holds their events until the
// confirmation, Incoming.HasBelow).
//
// A directory the index holds above a sent or deleted path keeps its
// entry, but for its times when it is still that directory (the same
// inode, mode and owner): rsync sets the times of the directories of its
// list at the end of the run (touch_up_dirs) without itemizing them, and
// an attribute change of a directory compares its times
// (index.Tx.Unchanged, dirTimes); left as the index held them, the event
// of that last touch read as this member's own change and the directory
// went to every member (the twenty-ninth session's seed 5, when
// directories' times were first compared).
//
// The cost: a change here that moved only the times of such a directory
// (touch, touch -d, tar or cp -p setting them), any directory above the
// run's paths up to the root, whose event the detector had not compared
// yet when the confirmation is recorded (made during the run, or just
// before it and still on its way, or after rsync's last touch and before
// a late confirmation), is taken for the run's, for good: scans compare
// directories without their times. A chmod or chown is not (the mode or
// owner differs). Narrowing it needs each directory's times as the
// sender sent them in the confirmation; not done.
func (r *Receiver) recordImplied(tx *index.Tx, sent, deleted []string) error {
	seen := make(map[string]bool)
	for i, p := range slices.Concat(sent, deleted) {
		for d, _ := split(p); d != "." && !seen[d]; d, _ = split(d) {
			seen[d] = true
			held, ok, err := tx.Get(d)
			if err != nil {
				continue // an entry that cannot be read fails no confirmation, as before
			}
			if ok {
				if err := r.recordDirTimes(tx, d, held); err != nil {
					return err
				}
				continue
			}
			if i >= len(sent) {
				continue // made here, not by the deleting run
			}
			if err := r.recordDir(tx, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordDirTimes records the times of the directory p, which the index
// holds as held, when it is still that directory here (Entry.DirMatches)
// and they moved.
func (r *Receiver) recordDirTimes(tx *index.Tx, p string, held index.Entry) error {
	var st unix.Stat_t
	if !held.IsDir() || beneath.Lstat(r.RootFD, p, &st) != nil {
		return nil
	}
	now := index.FromStat(&st)
	if !now.IsDir() || !held.DirMatches(now) || held.Mtime.Equal(now.Mtime) {
		return nil
	}
	now.Version = held.Version
	return tx.Put(p, now)
}

// recordDir records p as it is when it is a directory here. Gone, or no
// longer a directory, it is another change's, and the index keeps what it
// holds.
func (r *Receiver) recordDir(tx *index.Tx, p string) error {
	var st unix.Stat_t
	if beneath.Lstat(r.RootFD, p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	return r.record(tx, p)
}
