package sender

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// maxReplay bounds the renames of one replay request.
const maxReplay = 4096

// replayed is what a replay did on the peer (Sender.replay).
type replayed struct {
	// at are the names the applied renames put their objects at.
	at map[string]bool
	// outOf are the directories they took names out of.
	outOf []string
	// removed are the removals the peer applied (each path with its
	// sequence number in the rename log): their path entries are done
	// without a deletion there (removedThere).
	removed map[string]uint64
}

// removedThere returns the entries of deletes whose removal the peer
// applied when it replayed rp (its Seq at or below the removal's: no
// change of the path here since), and the others. Such a removal is done
// there: the replay removed what the peer held at the name, and recorded
// it. Deleted again by its path entry (rsync --delete-missing-args, in the
// run's delete step, milliseconds later), the name lost whatever the
// peer had made there since: a directory made again with a file being
// written in it, unlinked under its writer
// (TestStandalone_RemovalReplayedThenMadeAgainKeepsTheWrite), or a third
// member's newer version that had just arrived. What is there now is the
// peer's own change or another member's, and goes by its own run; the
// confirmation still names the path deleted, so that the peer records
// anything made there since as its own (receiver.Receiver.Received).
func (rp replayed) removedThere(deletes []journal.Entry) (removed, others []journal.Entry) {
	if len(rp.removed) == 0 {
		return nil, deletes
	}
	for _, e := range deletes {
		if seq, ok := rp.removed[e.Path]; ok && e.Seq <= seq {
			removed = append(removed, e)
		} else {
			others = append(others, e)
		}
	}
	return removed, others
}

// asPaths turns entries into paths to bring to their state here: a
// rename's new name goes as that name alone, not its tree (the rename
// goes from the rename log, replay), and its old name has an entry of its
// own (a removal, journal.Journal.Record). The Rename bit stays: the push
// then knows the new name was made here, and one that no replayed rename
// put on the peer (notRenamed) is checked by content where rsync's quick
// check finds it unchanged (unchangedWrites).
func asPaths(entries []journal.Entry) []journal.Entry {
	for i, e := range entries {
		if e.Op.Has(change.Rename) {
			entries[i].Op &^= change.Subtree
		}
	}
	return entries
}

// replay asks the peer for log (the rename log's oldest, read by the
// run run, which announced their names; live are the other runs under
// way), in the order they were made, and
// drops them from the log once asked: one refused leaves its new name to
// go as content, and its old name to be deleted, by the path entries.
//
// It returns where the applied renames put their objects on the peer (a
// later applied rename of the replay followed), and the directories they
// took names out of.
func (s *Sender) replay(ctx context.Context, run string, live []string, log []journal.LoggedRename) (rp replayed, _ error) {
	at := make(map[string]bool)
	rp.at = at
	if len(log) == 0 {
		return rp, nil
	}
	last := log[len(log)-1].Seq
	if s.KeepDeletes {
		// spec.deletes: Keep: the peer keeps its copies of what was
		// removed here; the renames go, in their order.
		log = slices.DeleteFunc(log, func(r journal.LoggedRename) bool { return r.New == "" })
	}
	if s.Client == nil || len(log) == 0 {
		// Nothing to ask (without a Client, every rename goes as its
		// paths).
		if err := s.Journal.DoneRenames(s.Peer, last); err != nil {
			return rp, fmt.Errorf("drop renames: %w", err)
		}
		return rp, nil
	}
	res, err := s.Client.Replay(ctx, s.Endpoint, s.Group, peer.ReplayRequest{Journal: s.Journal.ID(), Run: run, Live: live, Renames: replayRequest(log)})
	if err != nil {
		return rp, err
	}
	done := s.replayResults(&rp, log, res.Results)
	// Before the renames leave the log: journaled after, a crash in
	// between would lose them.
	if err := s.againAfterReplay(log, done, last, res.Verify); err != nil {
		return rp, err
	}
	if err := s.Journal.DoneRenames(s.Peer, last); err != nil {
		return rp, fmt.Errorf("drop replayed renames: %w", err)
	}
	return rp, nil
}

// replayRequest is the request that replays log on the peer: a rename
// with its old object as the writer held it, or a removal.
func replayRequest(log []journal.LoggedRename) []peer.Rename {
	req := make([]peer.Rename, len(log))
	for i, r := range log {
		req[i] = peer.Rename{Old: []byte(r.Old), New: []byte(r.New), Dir: r.Dir, Size: r.Size, MtimeNs: r.MtimeNs, MakeParents: true, AsHeld: true, Seq: r.Seq}
		if r.New == "" {
			req[i] = peer.Rename{Old: []byte(r.Old), Remove: true, Seq: r.Seq, Dir: r.Dir, Size: r.Size, MtimeNs: r.MtimeNs}
			continue
		}
		// It follows the latest rename that put its old name (or a
		// directory above it) where it is: refused, the peer holds
		// another object there. A later rename or removal of that name
		// (or above it) made it another object, which came by content
		// or not at all: no rename before it counts.
		for j := i - 1; j >= 0; j-- {
			if log[j].New != "" && atOrBelow(r.Old, log[j].New) {
				req[i].After = []int{j}
				break
			}
			if atOrBelow(r.Old, log[j].Old) {
				break
			}
		}
	}
	return req
}

// replayResults takes the peer's results of replaying log: where the applied
// renames put their objects (rp.at), the removals it applied
// (rp.removed), the directories they took names out of (rp.outOf, sorted);
// a removal refused for a newer version there is kept (Sender.kept). It
// returns which of log the peer applied.
func (s *Sender) replayResults(rp *replayed, log []journal.LoggedRename, results []peer.RenameResult) (done []bool) {
	at := rp.at
	outOf := make(map[string]bool)
	applied := 0
	done = make([]bool, len(log))
	var newer []journal.LoggedRename
	for i, x := range results {
		done[i] = x.Applied
		if !x.Applied {
			if x.Newer && log[i].New == "" {
				s.kept.add(log[i].Old, log[i].Seq)
				newer = append(newer, log[i])
			}
			s.Log.V(1).Info("replayed rename refused", "old", log[i].Old, "new", log[i].New, "reason", x.Reason, "newer", x.Newer)
			continue
		}
		applied++
		r := log[i]
		if r.New == "" {
			if rp.removed == nil {
				rp.removed = make(map[string]uint64)
			}
			rp.removed[r.Old] = max(rp.removed[r.Old], r.Seq)
		}
		for p := range at {
			if atOrBelow(p, r.Old) {
				delete(at, p)
				if r.New != "" {
					at[r.New+p[len(r.Old):]] = true
				}
			}
		}
		if r.New != "" {
			at[r.New] = true
		}
		if d := parent(r.Old); d != "" {
			outOf[d] = true
		}
	}
	rp.outOf = slices.Sorted(maps.Keys(outOf))
	s.doneKept(newer)
	s.Log.V(1).Info("renames replayed", "renames", len(log), "applied", applied)
	return done
}

// againAfterReplay journals again the paths that the replayed renames of
// log (done: applied) moved on the peer away from where this member's
// runs had put them: those of the runs they overtook (Sender.overtaken),
// and those the peer names in verify, of runs that died with this member.
func (s *Sender) againAfterReplay(log []journal.LoggedRename, done []bool, last uint64, verify [][]byte) error {
	for op, moved := range s.overtaken.replayed(log, done, last) {
		s.Log.V(1).Info("renames moved paths of runs they overtook; their new names go again",
			"paths", len(moved), "op", op.String(), "first", moved[:min(len(moved), 20)])
		if err := s.Journal.Again([]string{s.Peer}, op, moved); err != nil {
			return fmt.Errorf("journal paths renames moved: %w", err)
		}
	}
	if len(verify) > 0 {
		// Where the renames took the files of this member's runs that
		// died with it (kill -9) on the peer (peer.RenameResponse.Verify):
		// brought to their state here, by content, as overtaken's are;
		// and remembered as overtaken's, for the renames of the log that
		// this replay did not ask for yet.
		paths := make([]string, 0, len(verify))
		for _, p := range verify {
			if belowRoot(string(p)) {
				paths = append(paths, string(p))
			}
		}
		s.Log.V(1).Info("renames took paths of runs that died with this member; they go again",
			"paths", len(paths), "first", paths[:min(len(paths), 20)])
		if err := s.Journal.Again([]string{s.Peer}, change.Write, paths); err != nil {
			return fmt.Errorf("journal paths renames moved: %w", err)
		}
		s.overtaken.add(slices.Clone(paths), change.Write, last, 0, s.Journal.Seq)
	}
	return nil
}

// replayOrWait replays log for b's run, run (replay), once no rename of it
// has a name in flight in a run past its own replay (pushing), at, above
// or below it, and then counts b's paths among those. Applied while
// another run pushed below its old name, a rename left that push to make
// the name again on the peer beside the tree it moved (implied
// directories: the stress test, seed 23); left for later instead, it
// came after content pushed to its new name, and put the peer's older
// copy over it. Runs that wait here are not counted, so none waits for
// another that waits.
func (s *Sender) replayOrWait(ctx context.Context, run string, b batch, log []journal.LoggedRename) (replayed, error) {
	busy := func(r journal.LoggedRename) bool {
		return s.pushing.overlaps(r.Old) || r.New != "" && s.pushing.overlaps(r.New)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for waited := false; ; waited = true {
		select {
		case <-ctx.Done():
			return replayed{}, ctx.Err()
		case <-t.C:
		}
		s.replayMu.Lock()
		if !slices.ContainsFunc(log, busy) {
			rp, err := s.replay(ctx, run, s.othersUnderWay(run), log)
			for _, p := range b.inFlight {
				s.pushing.add(p)
			}
			s.replayMu.Unlock()
			return rp, err
		}
		s.replayMu.Unlock()
		if !waited {
			s.Log.V(1).Info("renames wait for a run in flight", "renames", len(log))
		}
		t.Reset(replayWait)
	}
}

// belowRoot reports whether p, a name a peer gave, is a path below the
// data root outside the agent's reserved directory (index.CheckPath), and
// not the root itself.
func belowRoot(p string) bool {
	return p != "." && index.CheckPath(p) == nil
}

// underWay counts run among the runs under way (Sender.live) until the
// returned function is called.
func (s *Sender) underWay(run string) func() {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	if s.live == nil {
		s.live = make(map[string]bool)
	}
	s.live[run] = true
	return func() {
		s.replayMu.Lock()
		defer s.replayMu.Unlock()
		delete(s.live, run)
	}
}

// othersUnderWay returns the runs under way but run; the caller holds
// replayMu.
func (s *Sender) othersUnderWay(run string) []string {
	var out []string
	for r := range s.live {
		if r != run {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// replayWait is how often a run whose renames wait (replayOrWait) looks
// again.
const replayWait = 10 * time.Millisecond

// pushed takes b's paths out of pushing (replayOrWait): its run is over.
func (s *Sender) pushed(b batch) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	for _, p := range b.inFlight {
		if s.pushing.paths[p] > 0 {
			s.pushing.remove(p)
		}
	}
}

// replayNames are the names of log's renames and removals, announced with
// the run that replays them: held on the peer until the run's
// confirmation, their events there (read after the replay's own hold
// ended) are not taken for changes of the peer's own and sent back.
func replayNames(log []journal.LoggedRename) []string {
	out := make([]string, 0, 2*len(log))
	for _, r := range log {
		out = append(out, r.Old)
		if r.New != "" {
			out = append(out, r.New)
		}
	}
	return out
}

// notRenamedIn sets b.notRenamed: the new names among b's sends that no
// rename the peer applied put there (rp).
func (b *batch) notRenamedIn(rp replayed) {
	b.notRenamed = make(map[string]bool)
	for _, e := range b.sends {
		if e.Op.Has(change.Rename) && !rp.at[e.Path] {
			b.notRenamed[e.Path] = true
		}
	}
}

// doneKept marks done, at once, the path entries of the removals the peer
// refused as newer there (keptThere) that no change here followed: durable
// before the replay's renames leave the log. Remembered only in memory,
// such an entry deleted the path by its path after a restart in between
// (the run's push failed, and the agent restarted while it backed off).
// A run that holds one of them drops it all the same (keptThere), and
// confirms it again, which changes nothing.
func (s *Sender) doneKept(removals []journal.LoggedRename) {
	var done []journal.Entry
	for _, lr := range removals {
		e, ok, err := s.Journal.Entry(s.Peer, lr.Old)
		if err == nil && ok && e.Seq <= lr.Seq {
			done = append(done, e)
		}
	}
	if len(done) == 0 {
		return
	}
	if err := s.Journal.Done(s.Peer, done); err != nil {
		s.Log.Error(err, "cannot mark done the removals the peer holds newer versions of; this run drops them, and after a restart they would delete there", "paths", pathsOf(done))
	}
}
