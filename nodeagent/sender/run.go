package sender

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// run performs one batch: announce, renames, sends, deletes, confirm.
//
// w, when not nil, is a push client prepared for this run; run uses it
// for the sends or closes it. pushed is called once rsync is done with the
// run (before the confirmations); pushing is the run's id in s.Pushing.
func (s *Sender) run(ctx context.Context, rootfd int, b batch, w *rsync.Warm, pushed func(), pushing int) Run {
	x := &runState{s: s, rootfd: rootfd, b: b, w: w, start: time.Now()}
	defer x.closeWarm()
	x.r = Run{Peer: s.Peer}
	x.id = strconv.FormatInt(x.start.UnixNano(), 36)
	// The rename log's oldest renames, replayed by this run once it is
	// announced: their names are announced with its paths.
	x.replayedUpTo = s.Journal.Seq()
	log, err := s.Journal.RenameLog(s.Peer, maxReplay)
	if err != nil {
		x.r.Err = fmt.Errorf("read rename log: %w", err)
		return x.r
	}
	if len(log) == maxReplay {
		x.replayedUpTo = log[len(log)-1].Seq
	}
	paths := slices.Concat(pathsOf(x.b.entries()), x.b.links, replayNames(log))
	defer s.underWay(x.id)()
	// A run that ends announced and not confirmed is named to the peer by
	// the next announcement, which settles it there
	// (peer.PathsRequest.Over).
	defer func() {
		if x.announced && !x.confirmedThere {
			s.endUnconfirmed(x.id)
		}
	}()
	x.startClient()
	if !x.announce(ctx, paths) {
		return x.r
	}
	// Every run that reaches the peer keeps its paths held there while it
	// lasts: a long delete (a huge tree on a slow disk) as much as a push.
	// Stopped before the confirmation, or on any return (calling it again
	// is harmless).
	x.stopAnnouncing = s.announceWhileRunning(ctx, x.id, paths)
	defer x.stopAnnouncing()
	rp, err := s.replayOrWait(ctx, x.id, x.b, log)
	defer s.pushed(x.b)
	if err != nil {
		x.r.Err, x.r.Class, x.r.peerFailed = fmt.Errorf("replay renames to %s: %w", s.Peer, err), rsync.Retry, true
		return x.r
	}
	x.b.notRenamedIn(rp)
	x.outOf = renamedOutOf(rootfd, rp.outOf)
	// Gone on the peer with the directory that a file replaced there.
	x.replaced = slices.Clone(x.b.replacedBefore)
	if len(x.b.sends)+len(x.outOf) > 0 {
		stopProgress := x.push(ctx)
		defer stopProgress()
	}
	x.tPushed = time.Now()
	x.delete(ctx, rp)
	pushed()
	done, again := x.done()
	entries := 0
	x.b.each(func(journal.Entry) { entries++ })
	if entries >= gatherAfter {
		// A burst's run confirms once the other peers' runs have pushed,
		// for at most as long as its own push took (see Pushing).
		s.Pushing.othersPushed(ctx, pushing, min(x.tPushed.Sub(x.tAnnounced), maxConfirmWait))
	}
	if s.Client != nil {
		done = x.confirm(ctx, done)
	}
	tConfirmed := time.Now()
	if err := s.Journal.Done(s.Peer, done); err != nil {
		// Still pending in the journal, so sent again and counted then:
		// not counted as synced now.
		x.r.Err = err
	} else {
		x.r.Sent = done
	}
	s.Log.V(1).Info("run phases", "links", len(x.b.links), "announce", x.tAnnounced.Sub(x.start).String(), "push", x.tPushed.Sub(x.tAnnounced).String(),
		"confirm", tConfirmed.Sub(x.tPushed).String(), "journal", time.Since(tConfirmed).String())
	x.r.Failures = failures(x.b.entries(), slices.Concat(done, again), x.r.Changed, x.r.reasons, x.r.raced)
	x.r.Duration = time.Since(x.start)
	return x.r
}

// runState is one run's work in progress (Sender.run), phase by phase.
type runState struct {
	s      *Sender
	rootfd int
	b      batch
	// w is the push client prepared for the run, until its push takes it.
	w     *rsync.Warm
	id    string
	start time.Time
	r     Run
	// replayedUpTo is the journal's sequence number up to which the run
	// replays the rename log.
	replayedUpTo uint64
	// announced: the peer may hold the run's paths; confirmedThere: it
	// took the run's confirmation.
	announced, confirmedThere bool
	stopAnnouncing            func()
	tAnnounced, tPushed       time.Time
	// outOf are the directories that renames took paths out of, pushed
	// for their times (renamedOutOf).
	outOf []string
	// What else the runs did on the peer, which the confirmation names
	// (named): the directories above listed paths that rsync made or
	// changed there (rsync.Result.Implied; not named, the peer took a new
	// mode of one for a change of its own and sent the directory to every
	// member, over a file the writer had made under that name since),
	// paths a delete sent instead (made again here meanwhile), paths a
	// push itemized without confirming them, and what a push deleted
	// there (rsync.Result.Removed: a directory that a listed file replaced
	// there, with its tree, deleted even when the file then vanished here
	// and never arrived; not named, the peer took the deletion for its
	// own, and its implied directories came back on the writer, which had
	// removed them). The stress test found each.
	told          named
	sent, deleted []journal.Entry
	// replaced are gone on the peer with the directory that a file
	// replaced there.
	replaced  []journal.Entry
	linksSent []string
	// keptThere are the removals the peer refused, holding a newer
	// version (Sender.kept).
	keptThere []journal.Entry
	changed   map[string]bool // sends whose files changed during the run
	mates     []string        // other names of those (linkMates): they go again
	staleDirs []string        // directories a newer list set first (impliedDirs)
	// noState are the paths the peer records as it holds them.
	noState map[string]bool
}

// closeWarm closes the prepared client if no push took it.
func (x *runState) closeWarm() {
	if x.w != nil {
		x.w.Close()
	}
}

// startClient starts the push client of a run that has none prepared,
// before the run's announcement, so that the client's start, connection
// and authentication (22 ms of a one-file push's 27 on loopback,
// rsync.Warm) go on during the announcement's round trip instead of after
// it; the client waits for its list (and sends nothing) until push gives
// it. Only for a run that a prepared client could serve (sends, not
// large: a large run's options differ); otherwise, or when the client
// does not start, push starts its own, as before.
func (x *runState) startClient() {
	s := x.s
	if x.w != nil || len(x.b.sends) == 0 || x.b.large() {
		return
	}
	w, err := rsync.Prepare(s.rsyncRoot(), s.Target, s.runOptions(x.b))
	if err != nil {
		s.Log.V(1).Info("push client not started before the announcement; the push starts its own", "error", err)
		return
	}
	x.w = w
}

// takeClient hands the run's client, prepared or started before the
// announcement, to its push: nil when there is none, or when it is no
// longer fit (takeFit: it exited, or a replay that waited for a run in
// flight kept it waiting too long); the push then starts a fresh one.
func (x *runState) takeClient() *rsync.Warm { return takeFit(&x.w) }

// announce tells the peer the run's paths; it reports whether the run
// goes on (x.r says why not).
func (x *runState) announce(ctx context.Context, paths []string) bool {
	s := x.s
	if s.Client != nil {
		ended := s.endedRuns()
		if err := s.Client.Incoming(ctx, s.Endpoint, s.Group, x.id, paths, ended, s.replayed()); err != nil {
			x.announced = mayHaveArrived(err)
			x.r.Err, x.r.Class, x.r.peerFailed = fmt.Errorf("announce run to %s: %w", s.Peer, err), rsync.Retry, true
			return false
		}
		x.announced = true
		s.toldEnded(ended)
	}
	x.tAnnounced = time.Now()
	return true
}

// push sends the run's files (and the directories renames took paths out
// of), confirms each from rsync's itemized output, sends again by
// checksum what rsync's quick check passed over, and re-checks the sources
// after the run. It returns what ends the run's share of the sender's
// progress, to be called once the run's entries are done.
//
// The list goes on the client's standard input, whatever its length.
// Handed to the peer for its daemon to read (from the twenty-fifth to
// the twenty-ninth session, docs/design.md: the client reads
// its standard input one byte per system call, a tenth of a burst's
// push), the names the client sent came from the peer: a peer that
// answered with a list of its own, naming a path through a symlink in
// this root (one it sent here, munge symlinks = no), had this member's
// client read and send it any file of the host (found by a review).
func (x *runState) push(ctx context.Context) (stopProgress func()) {
	s, b := x.s, &x.b
	stopProgress = func() {}
	o := s.runOptions(*b)
	if b.large() {
		// A large file takes long enough to watch: what it has
		// carried counts as progress until its entries are done.
		var last int64
		o.Progress = func(n int64) {
			s.transferring.Add(n - last)
			last = n
		}
		stopProgress = func() { s.transferring.Add(-last) }
	}
	push := func(ctx context.Context, files []string) (rsync.Result, error) {
		return rsync.Push(ctx, s.rsyncRoot(), files, s.Target, o)
	}
	if w := x.takeClient(); w != nil {
		push = w.Push // used up by its push
	}
	res, err := s.listing(x.rootfd, slices.Concat(pathsOf(b.sends), b.links, x.outOf), &x.staleDirs, func(files []string) (rsync.Result, error) {
		return push(ctx, files)
	})
	if v := s.Log.V(4); v.Enabled() {
		// For tracing a path through a run (the stress test): what
		// rsync itemized of each listed path, and what became of it.
		v.Info("run itemized", "run", x.id, "paths", itemized(res))
	}
	x.sent = confirmed(b.sends, res)
	x.told.push(res)
	// A directory pushed for its times that rsync read as a file or
	// symlink (swapped with one, or replaced, since renamedOutOf
	// looked) replaced the peer's directory there with it: the peer
	// records what the path holds (peer.FileState.Replaced), and it
	// goes again by content (overtaken, below). Told it was a
	// directory, the peer kept its old entry and took its
	// directory's removal for its own (the stress test, seed 591 of
	// the fifty-sixth session).
	notDirs := sentAsNotDirs(x.outOf, res)
	x.told.replaced = append(x.told.replaced, notDirs...)
	outOfDirs := slices.DeleteFunc(slices.Clone(x.outOf), func(p string) bool { return slices.Contains(notDirs, p) })
	x.told.implied = append(x.told.implied, confirmedPaths(outOfDirs, res)...)
	x.told.madeForDelete = append(x.told.madeForDelete, madeForOutOf(outOfDirs, slices.Concat(pathsOf(b.sends), b.links), res)...)
	x.replaced = append(x.replaced, b.confirmedUnderFiles(res)...)
	x.linksSent = confirmedPaths(b.links, res)
	var failedAgain []string // made or changed on the peer by the first push, failed by the second
	again := unchangedWrites(*b, res)
	if len(again) > 0 && isPeerFailure(res, err) {
		// Found the same by size and mtime only, and the run broke
		// off before they could go by checksum: not confirmed, they
		// go again in the next run.
		drop := pathSet(again)
		x.sent = slices.DeleteFunc(x.sent, func(e journal.Entry) bool { return drop[e.Path] })
	} else if len(again) > 0 {
		s.account(&x.r, res, err)
		res, failedAgain, err = x.pushByChecksum(ctx, o, again, res)
	}
	x.recheckSent(failedAgain)
	s.account(&x.r, res, err)
	// Before s.pushed: a replay of a rename above these paths waits
	// for that.
	var unchanged, written []string
	for _, p := range slices.Concat(pathsOf(b.sends), b.links, x.outOf) {
		if x.changed[p] {
			written = append(written, p)
		} else {
			unchanged = append(unchanged, p)
		}
	}
	// The parents rsync sent as files (rsync.Result.NotDirs, Unmade;
	// the delete's below) go as a push's paths, by content.
	written = append(written, x.told.replaced...)
	s.overtaken.add(unchanged, change.Attrib, x.replayedUpTo, overtakenGrace, s.Journal.Seq)
	s.overtaken.add(written, change.Write, x.replayedUpTo, overtakenGrace, s.Journal.Seq)
	return stopProgress
}

// pushByChecksum sends again, compared by checksum, the files of again
// that rsync's quick check (size and mtime) found the same on the peer
// though they were written: a write that kept both (touch -r, cp -p, an
// archive extracted over it) is only seen by its content. first is the
// first push's result. It returns the second push's, and the paths the
// first push made or changed on the peer that the second failed on or
// never spoke of (failedAgain).
func (x *runState) pushByChecksum(ctx context.Context, o rsync.Options, again []journal.Entry, first rsync.Result) (_ rsync.Result, failedAgain []string, _ error) {
	s, b := x.s, &x.b
	oc := o
	oc.Checksum, oc.Progress = true, nil
	// Checked again: the first push gave a directory on their way
	// time to become a symlink out of the root.
	oc.Checked = false
	// With their other names, or the peer would write a file
	// anew and leave them on the old inode.
	files := b.withOtherNames(x.rootfd, pathsOf(again))
	changedThere := changedOnPeer(first)
	res, err := s.listing(x.rootfd, files, &x.staleDirs, func(files []string) (rsync.Result, error) {
		return rsync.Push(ctx, s.rsyncRoot(), files, s.Target, oc)
	})
	x.told.push(res)
	ok := confirmedSet(res)
	recheck := make(map[string]bool, len(files))
	for _, p := range files {
		recheck[p] = true
	}
	// Gone here by the second push (renamed or removed since),
	// or dropped by its check (a directory on its path became a
	// symlink since), a path the first push made or changed on
	// the peer keeps that outcome: the peer holds what it put
	// there, and not told so, it took that for a change of its
	// own and sent it to every member, an old version over the
	// writer's newer one (the stress test: other names of a
	// hard-linked file, renamed away between the pushes,
	// replaced the writer's files under those names and its
	// directory made since; seed 717 of the fifty-seventh
	// session, dropped, sent the file's other name back with
	// the peer's times of its directory).
	for _, p := range res.Paths {
		if (p.Outcome == rsync.Vanished || p.Outcome == rsync.Dropped) && changedThere[p.Path] {
			ok[p.Path] = true
		}
	}
	// So does one the second push failed on, or never spoke of
	// (rsync.Failed: a directory on its path became a symlink
	// loop after the check; rsync.Unconfirmed), and it goes
	// again as a file that changed while it was sent
	// (failedAgain): the peer records what it holds, and the
	// next run brings it to its state here. Dropped from the
	// confirmation, a hard link the first push made read on the
	// peer as its own and went to every member (the stress
	// test's Kill9 seed 47 of the sixtieth session, unconfirmed
	// by the second push).
	for p := range recheck {
		if changedThere[p] && !ok[p] {
			ok[p] = true
			failedAgain = append(failedAgain, p)
		}
	}
	x.sent = slices.DeleteFunc(x.sent, func(e journal.Entry) bool { return recheck[e.Path] && !ok[e.Path] })
	x.linksSent = slices.DeleteFunc(x.linksSent, func(p string) bool { return recheck[p] && !ok[p] })
	return res, failedAgain, err
}

// recheckSent re-checks the sources after the run: a file that changed
// while rsync read it stays in the journal (the peer holds some version
// of it, which the next run replaces). The peer is still told it arrived,
// so that it records what it holds and never takes it for a change of its
// own. So does each of failedAgain.
func (x *runState) recheckSent(failedAgain []string) {
	s, b := x.s, &x.b
	x.changed = b.changedSince(x.rootfd, pathsOf(x.sent))
	for _, p := range failedAgain {
		if x.changed == nil {
			x.changed = make(map[string]bool, len(failedAgain))
		}
		x.changed[p] = true
	}
	x.changed, x.mates = b.linkMates(x.rootfd, x.changed)
	if f := b.skewedBy(x.rootfd, x.changed); f != "" {
		// Any path of the run may hold other attributes on the peer
		// than here (batch.skewedBy): each goes again, as the other
		// names of a file written anew do, and so do the directories
		// the run set there.
		x.mates = withEvery(x.mates, x.changed, pathsOf(x.sent), x.linksSent)
		x.staleDirs = append(x.staleDirs, x.told.implied...)
		s.Log.V(1).Info("a file with other names changed while rsync listed it; every path of the run goes again", "file", f, "paths", len(x.mates))
	}
	x.changed = s.crossing(x.changed, pathsOf(x.sent))
	if len(x.changed) > 0 {
		for _, e := range x.sent {
			if x.changed[e.Path] {
				x.r.Changed = append(x.r.Changed, e)
			}
		}
		s.Log.V(1).Info("files changed while they were sent; they go again once finished", "files", len(x.r.Changed),
			"paths", pathsOf(x.r.Changed[:min(len(x.r.Changed), 20)])) // the first 20: enough to follow a crossing
	}
}

// delete deletes the run's removals on the peer, but for those the peer
// refused (keptThere) or applied in the run's replay (rp), and re-checks
// them after the run.
func (x *runState) delete(ctx context.Context, rp replayed) {
	s, b := x.s, &x.b
	if s.KeepDeletes {
		x.deleted = b.covered // confirmed without a run
	}
	// The removals the peer refused because it holds a newer version
	// there (keptThere): done, not deleted there, and not named as gone
	// in the confirmation. The removals below one go with it.
	if x.keptThere, b.deletes = s.kept.take(b.deletes); len(x.keptThere) > 0 {
		x.keptThere = append(x.keptThere, coveredBy(b.covered, x.keptThere)...)
		s.Log.V(1).Info("removals the peer refused, holding a version this member never had: not deleted there, that version comes here",
			"paths", pathsOf(x.keptThere[:min(len(x.keptThere), 20)]))
	}
	// The removals the peer applied in this run's replay: done there, not
	// deleted again, and confirmed as deleted, with the removals below
	// them.
	var removedThere []journal.Entry
	if removedThere, b.deletes = rp.removedThere(b.deletes); len(removedThere) > 0 {
		removedThere = append(removedThere, coveredBy(b.covered, removedThere)...)
	}
	if len(b.deletes) > 0 && x.r.Class != rsync.FatalPeer {
		res, err := s.deleteRun(ctx, x.rootfd, *b, pathsOf(b.deletes), &x.staleDirs)
		x.deleted = confirmed(b.deletes, res)
		x.told.implied = append(x.told.implied, res.Implied...)
		x.told.madeForDelete = append(x.told.madeForDelete, res.Made...)
		instead := sentByDelete(res)
		x.told.sentInstead = append(x.told.sentInstead, instead...)
		x.told.replacedBy(res)
		// What rsync sent instead was made here while it read the list:
		// most often by a rename (a swap, a directory moved over the
		// path's parent), which the peer has ahead of it and which takes
		// that copy along when replayed. As a push's paths (overtaken),
		// by content: the same test, seed 156, the fifty-first session,
		// a file written into a swapped-in directory that the swap's
		// replay then took to where nothing of it was here.
		s.overtaken.add(slices.Concat(instead, res.NotDirs, res.Unmade), change.Write, x.replayedUpTo, overtakenGrace, s.Journal.Seq)
		// Each removal below a deleted directory with that directory: one
		// deletion left undone (an old name found here again, Present)
		// held back every other's, and they failed, backing off (the
		// sender's random operations test).
		x.deleted = append(x.deleted, coveredBy(b.covered, x.deleted)...)
		s.account(&x.r, res, err)
	}
	x.deleted = append(x.deleted, removedThere...)
	if len(x.deleted) > 0 && !s.KeepDeletes {
		x.recheckDeleted()
	}
}

// recheckDeleted re-checks the deleted paths after the run, as sends are:
// a path that is back here was made again while rsync deleted it on the
// peer (or the replay removed it there), most often by a peer's version
// that arrived here (which journals nothing). The peer has lost it and
// this member holds it, so the entry stays and goes again (Crossed);
// confirmed, the members ended apart for good: a third member's version
// deleted on the peer and kept here
// (TestStandalone_CrossingWritesEndIdentical).
func (x *runState) recheckDeleted() {
	s := x.s
	deletedPaths := pathsOf(x.deleted)
	back := s.crossing(backSince(x.rootfd, deletedPaths), deletedPaths)
	if len(back) == 0 {
		return
	}
	if x.changed == nil {
		x.changed = make(map[string]bool, len(back))
	}
	var again []journal.Entry
	for _, e := range x.deleted {
		if back[e.Path] {
			x.changed[e.Path] = true
			again = append(again, e)
		}
	}
	x.r.Changed = append(x.r.Changed, again...)
	s.Log.V(1).Info("paths deleted on the peer are here again; they go again once settled", "paths", pathsOf(again[:min(len(again), 20)]))
}

// done returns the entries the run is done with once the peer takes its
// confirmation, and the entries of the other names of files written anew
// while the run sent them (again: neither done nor failed, planned again
// at once); it sets the paths the peer records as it holds them
// (noState), and pushes again the directories a newer list set first.
func (x *runState) done() (done, again []journal.Entry) {
	s, b := x.s, &x.b
	// Not the directories made only for a removal: the peer removes
	// them (peer.FileState.ForDelete), and pushed again they would stay.
	x.staleDirs = slices.DeleteFunc(x.staleDirs, func(d string) bool { return slices.Contains(x.told.madeForDelete, d) })
	s.againDirs(x.rootfd, x.staleDirs)
	done = slices.Concat(x.sent, x.deleted, x.replaced, b.skipped, x.keptThere)
	if len(x.changed) > 0 {
		done = slices.DeleteFunc(done, func(e journal.Entry) bool { return x.changed[e.Path] })
	}
	x.noState = x.changed
	if len(x.mates) == 0 {
		return done, nil
	}
	x.noState = make(map[string]bool, len(x.changed)+len(x.mates))
	maps.Copy(x.noState, x.changed)
	for _, p := range x.mates {
		x.noState[p] = true
	}
	entry := make(map[string]bool, len(x.mates))
	done = slices.DeleteFunc(done, func(e journal.Entry) bool {
		if slices.Contains(x.mates, e.Path) {
			entry[e.Path] = true
			again = append(again, e) // planned again at once, not held as failed
			return true
		}
		return false
	})
	// A name not journaled (links) goes again only if journaled now.
	var names []string
	for _, p := range x.mates {
		if !entry[p] {
			names = append(names, p)
		}
	}
	if err := s.Journal.Again([]string{s.Peer}, change.Write, names); err != nil {
		s.Log.Error(err, "cannot journal again other names of a file written anew while the run sent it", "paths", names)
	}
	s.Log.V(1).Info("other names of files written anew while they were sent go again", "paths", x.mates)
	return done, again
}

// confirm tells the peer what the run did there, and returns what of done
// is done: all of it once the peer took the confirmation, and otherwise
// only what never involved the peer.
func (x *runState) confirm(ctx context.Context, done []journal.Entry) []journal.Entry {
	s, b := x.s, &x.b
	sentPaths := append(pathsOf(x.sent), x.linksSent...)
	c := confirmationOf(sentPaths, b.sentStates(x.rootfd, sentPaths, x.noState), pathsOf(slices.Concat(x.deleted, x.replaced)), x.told)
	sentPaths, states, gone := c.sent, c.states, c.gone
	told := x.told
	if v := s.Log.V(2); v.Enabled() {
		v.Info("run confirmed", "run", x.id, "sent", len(sentPaths), "gone", gone, "links", x.linksSent,
			"unconfirmed", told.unconfirmed, "unspoken", told.unspoken, "vanished", told.vanished, "sentInstead", told.sentInstead, "replaced", told.replaced,
			"implied", told.implied, "madeForDelete", told.madeForDelete, "changed", len(x.noState))
	}
	if v := s.Log.V(4); v.Enabled() {
		// For tracing a path through a run (the stress test): what
		// the peer is told of each.
		told := make([]string, len(sentPaths))
		for i, p := range sentPaths {
			var st peer.FileState
			if i < len(states) {
				st = states[i]
			}
			told[i] = fmt.Sprintf("%q: %+v", p, st)
		}
		v.Info("run confirmation", "run", x.id, "sent", told, "gone", gone)
	}
	// A run stopped on shutdown still tells the peer what arrived
	// (briefly, within the agent's 10 s), or the peer would take it
	// for its own change once its hold expires.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(confirmAfterStop, cancel) })
	// No announcement after the confirmation: one still on its way
	// would hold the run's paths on the peer again, for nothing.
	x.stopAnnouncing()
	// Tried again under the same run id, which the peer releases
	// whole (a new run would leave this one's paths held there until
	// their hold expires).
	err := s.Client.Received(cctx, s.Endpoint, s.Group, x.id, sentPaths, states, gone)
	for _, wait := range []time.Duration{confirmRetry, 4 * confirmRetry} {
		if err == nil || sleep(cctx, wait) != nil {
			break
		}
		err = s.Client.Received(cctx, s.Endpoint, s.Group, x.id, sentPaths, states, gone)
	}
	stopGrace()
	cancel()
	x.confirmedThere = err == nil
	if err == nil {
		return done
	}
	// Unconfirmed there, the files would read on the peer as
	// changes of its own once their hold expires (or at its next
	// start) and go out from it, over newer versions: they stay
	// pending here and go again, and their next run's confirmation
	// records them there. Only what never involved the peer is done.
	if x.r.Err == nil {
		x.r.Err = fmt.Errorf("confirm run to %s: %w", s.Peer, err)
	}
	x.r.Class, x.r.peerFailed = max(x.r.Class, rsync.Retry), true
	unlisted := pathSet(b.skipped)
	return slices.DeleteFunc(done, func(e journal.Entry) bool { return !unlisted[e.Path] })
}
