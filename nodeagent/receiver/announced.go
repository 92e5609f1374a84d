package receiver

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// bucketIncoming holds the runs announced here and not yet confirmed, by
// sender and run id (the key of Receiver.runs): when each was announced
// (8 bytes, Unix ns), since the sixtieth session its sender's boot
// (peer.PathsRequest.Boot) between two NULs when it was given, and its
// paths, NUL-separated (a path holds no NUL, and is never empty: a value
// written before has no NUL right after the time).
//
// Written before an announcement is answered, so that it is durable before
// rsync puts any file of the run in place. An agent killed between a
// file's arrival and the run's confirmation finds the run here at its next
// start (Restore) and holds its paths again, as it did before it died:
// its start scan must not take the received files for its own changes and
// send them on, maybe over newer versions; the sender still has them
// pending (an unconfirmed run is not done), sends them again, and that
// run's confirmation records them.
var bucketIncoming = []byte("incoming")

func encodeAnnounced(a announced) []byte {
	n := 8
	for _, p := range a.paths {
		n += len(p) + 1
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, n+len(a.boot)+2), uint64(a.at.UnixNano()))
	if a.boot != "" {
		v = append(append(append(v, 0), a.boot...), 0)
	}
	for _, p := range a.paths {
		v = append(append(v, p...), 0)
	}
	return v
}

func decodeAnnounced(v []byte) (announced, error) {
	if len(v) < 8 {
		return announced{}, fmt.Errorf("announced run: %d bytes", len(v))
	}
	a := announced{at: time.Unix(0, int64(binary.BigEndian.Uint64(v)))}
	rest := string(v[8:])
	if boot, ok := strings.CutPrefix(rest, "\x00"); ok {
		var found bool
		a.boot, rest, found = strings.Cut(boot, "\x00")
		if !found {
			return announced{}, fmt.Errorf("announced run: its sender's boot has no end")
		}
	}
	if rest != "" {
		a.paths = strings.Split(strings.TrimSuffix(rest, "\x00"), "\x00")
	}
	return a, nil
}

// persist records an announced run (Incoming), and drops the stale ones.
func (r *Receiver) persist(key string, a announced, stale []string) error {
	v := encodeAnnounced(a)
	return r.Index.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketIncoming)
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return b.Put([]byte(key), v)
	})
}

// forget drops a confirmed run within the transaction that records it.
func forget(tx *bolt.Tx, key string) error {
	if b := tx.Bucket(bucketIncoming); b != nil {
		return b.Delete([]byte(key))
	}
	return nil
}

// Restore holds again the paths of the runs announced before this agent
// started and never confirmed, for a hold's TTL from now (the sender goes
// on with them, or they expire as any hold does), and drops those older
// than a day. Call it before the detector runs, and before the endpoint
// serves.
func (r *Receiver) Restore() (held int, err error) {
	now := time.Now()
	runs := make(map[string]announced)
	err = r.Index.Batch(func(tx *bolt.Tx) error {
		clear(runs) // afresh: Batch may call again
		b := tx.Bucket(bucketIncoming)
		if b == nil {
			return nil
		}
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			a, err := decodeAnnounced(v)
			if err != nil || now.Sub(a.at) > 24*time.Hour {
				stale = append(stale, k)
				return nil
			}
			a.at, a.restored = now, true
			runs[string(k)] = a
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("restore announced runs: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = make(map[string]announced)
	}
	for k, a := range runs {
		a.holds = []detect.Hold{r.Held.Add(a.paths...)}
		r.runs[k] = a
		held += len(a.paths)
		// For tracing what a restart holds back (the stress test): the
		// start scan defers a change at or below these paths.
		if v := r.Log.V(1); v.Enabled() {
			from, run, _ := strings.Cut(k, "\x00")
			v.Info("run restored", "from", from, "run", run, "boot", a.boot, "paths", a.paths[:min(len(a.paths), 50)], "of", len(a.paths))
		}
	}
	return held, nil
}

// releasedRun is what one confirmation takes of another run of its sender
// (takeCovered): the paths it releases, and the run as it stays.
type releasedRun struct {
	key   string
	paths []string
	kept  announced // no paths: the run is forgotten
}

// persistTaken records, within the transaction of the confirmation (or
// settle, or adopt) that took from it, what rr's run keeps, unless the
// run's own confirmation is under way or done by now (and the run not
// restored): that one forgets it, and may have committed first, since
// this was taken from it; written back after that, the run was restored
// at the next start, and held its paths for good (see takeCovered).
// Looked at within the commit: a confirmation is marked before its own
// commit is asked for.
func (r *Receiver) persistTaken(tx *bolt.Tx, rr releasedRun) error {
	r.mu.Lock()
	mine := r.confirmsItself(rr.key, rr.kept)
	r.mu.Unlock()
	if mine {
		return nil
	}
	return rr.persist(tx)
}

// confirmsItself reports whether the run key, announced as ra, is one whose
// own confirmation is under way or done, and which that confirmation
// forgets whole (it was not restored): no other confirmation takes from
// it or writes it (takeCovered, persistTaken). The caller holds r.mu.
func (r *Receiver) confirmsItself(key string, ra announced) bool {
	_, confirming := r.confirmed[key]
	return confirming && !ra.restored
}

// persist records, within the confirmation's transaction, what the run
// keeps (or forgets it).
func (rr releasedRun) persist(tx *bolt.Tx) error {
	if len(rr.kept.paths) == 0 {
		return forget(tx, rr.key)
	}
	b, err := tx.CreateBucketIfNotExists(bucketIncoming)
	if err != nil {
		return err
	}
	return b.Put([]byte(rr.key), encodeAnnounced(rr.kept))
}

// takeCovered takes from the runs of sender from that take accepts the
// paths that one of its confirmations records (sent, or deleted or below
// a deleted directory), or that its replayed renames name (deleted: at or
// below those names, Receiver.adopt), and returns them; the caller holds
// r.mu. A confirmation takes from the runs announcedBefore it.
//
// The runs restored at the start (Restore): their transfers died with the
// daemon of the agent before. And, since the fifty-ninth session, the
// runs announced to this agent that their sender never confirmed: it died
// (kill -9) after the announcement, with its rsync clients (Pdeathsig),
// or gave up confirming. Held until their hold expired
// (detect.DefaultIncomingTTL, 10 minutes), such a run's paths took this
// member's own writes for received ones: the stress test's Kill9 seed 1
// of the fifty-ninth session, where n2 died 100 ms after its run to n3
// had put f22 there, n2's next runs confirmed f22 gone, and n3's own f22,
// written 9 s later, went to no member. A live sender never has two runs
// to one peer with a path in common, or one below another's
// (sender.inflight: a run's paths leave it once its confirmation is
// over), so a path its confirmation records is no other run's of it that
// is still under way. A run announced after this one (a confirmation
// that arrives late, after its sender gave up on it and started the
// next) is left alone (TestReceiver_IncomingAgain).
//
// Only those paths: a restored run's files arrived here and were never recorded,
// so a path released without a record is compared with an index that does
// not hold it, and goes out as this member's new file. The sender still has
// each of them pending (its run was never confirmed) and names it in a
// later confirmation, or the hold expires (detect.DefaultIncomingTTL).
// Before, the sender's next confirmation released them all: a run whose
// push failed (this member's daemon not yet up after its restart)
// confirmed nothing and released them, and files deleted on the sender
// meanwhile came back to every member (TestStandalone_PeerDownCatchesUp,
// TestReceiver_RestoredRunReleasedOnlyByWhatIsRecorded).
//
// A sender may confirm several runs at once (its lanes); each takes its
// paths under r.mu, so no path is released twice. Left (docs/design.md):
// where one's commit fails after another's recorded the run's remainder,
// the paths given back are held in memory but not on disk.
func (r *Receiver) takeCovered(from string, take func(key string, ra announced) bool, sent, deleted []string) []releasedRun {
	var recorded map[string]bool
	var gone map[string]bool
	covered := func(p string) bool {
		if recorded == nil {
			recorded, gone = make(map[string]bool, len(sent)), make(map[string]bool, len(deleted))
			for _, s := range sent {
				recorded[s] = true
			}
			for _, d := range deleted {
				gone[d] = true
			}
		}
		return recorded[p] || underAny(p, gone)
	}
	var out []releasedRun
	for k, ra := range r.runs {
		if !strings.HasPrefix(k, from+"\x00") || !take(k, ra) {
			continue
		}
		if r.confirmsItself(k, ra) {
			// Its own confirmation is being recorded (or was: it is
			// forgotten then), and releases all of it. Taken from
			// here as well, the run's remainder was written back to
			// disk by this commit, which may come after that
			// confirmation's commit forgot the run: restored at this
			// agent's next start, it held paths that no confirmation
			// named again (the stress test's Kill9 seed 78 of the
			// sixty-first session: two runs of n1 confirmed to n2
			// within 3 ms, and n2, killed 6 s later, held 66 paths of
			// the first after its restart, f21 among them, and kept
			// n2's own removals near them from every member).
			continue
		}
		var released, kept []string
		for _, p := range ra.paths {
			if covered(p) {
				released = append(released, p)
			} else {
				kept = append(kept, p)
			}
		}
		if len(released) == 0 {
			continue
		}
		rr := releasedRun{key: k, paths: released, kept: ra}
		rr.kept.paths = kept
		if len(kept) == 0 {
			delete(r.runs, k)
		} else {
			r.runs[k] = rr.kept
		}
		out = append(out, rr)
	}
	return out
}

// announcedBefore is takeCovered's choice for a confirmation of a run
// announced here at at (zero when it was not): a run of this agent's life
// is taken from only when it was announced before that, so never the
// confirmed run itself (nor any when that was not announced); a restored
// run always, the confirmed one included.
func announcedBefore(at time.Time) func(string, announced) bool {
	return func(_ string, ra announced) bool { return ra.restored || ra.at.Before(at) }
}

// adopt records, for the sender's, what the sender's runs that are over
// and were never confirmed left at the names of its replayed renames
// (those past done), or below them, and releases those paths from the
// runs. The runs it takes from are all of from's but req.Run, the one
// whose announcement carries the names, and req.Live, those its sender
// still has under way: the others died with their sender (kill -9, with
// their rsync clients: Pdeathsig) or their sender gave up on them. What
// such a run put in place here came from the sender, and the sender's
// rename then moved it: it is the sender's to rename. Left as the index
// held it before the run, it read as this member's own change in every
// comparison of the replay: the renamed file or tree was taken for a
// change of this member's (recordRenames), journaled and sent to every
// member, over the sender's newer copies (the stress test's Kill9, seeds
// 7, 10 and 11 of the fifty-ninth session: d6/f12, a directory the run
// had made in place of a file and filled, went back to every member under
// its new name after n2's restart); a rename whose old file the run had
// changed was refused (AsHeld found it changed here), and its old name
// stayed here for good. Released, the paths no longer take this member's
// own later writes for received ones (takeCovered). It returns the paths
// it recorded, which the renames may then move (toVerify).
//
// A path that this member changed and has not sent yet (Pending) is
// released but not recorded: the index keeps what it holds, and the
// detector's comparison decides. A write of this member's own to one of
// the others while the dead run held it (the detector defers it, and
// compares it with the index once the hold ends) is recorded as the
// sender's: a write that crossed the sender's, resolved as the sender's,
// whose path entries bring its version here as to every member. So is a
// path that is gone (its entry is deleted), since the sixty-first session:
// most often the dead run's own replay removed it (what the new name of
// a rename refused here held), and its sender died before the record of
// that, or before its answer. Left as the index held it, it read as this
// member's own removal once the holds ended, and went to every member,
// the sender's newer file under that name deleted with it (the stress
// test's Kill9 seed 111 of the sixty-first session: #0, written on n3
// after its atomic rename's replay to n1 was cut by n1's kill -9). A
// removal of this member's own there resolves as the sender's, like a
// write. A sender that predates peer.ReplayRequest.Run takes nothing, as
// before.
//
// The run that carries the names may have been announced before this
// agent's restart (restored): it waited to replay for the push of a run
// that this member's kill cut (Sender.replayOrWait), and that push ended
// only when the restart stopped the old daemon's connection. It takes as
// any other: the runs its sender has under way are in req.Live, and the
// others' rsync is over, their connections here stopped at the start
// (rsyncd: stopStale) or ended with their client. Until the seventy-first
// session such a replay took nothing, and what the dead run had put below
// a renamed directory read as this member's new file: held as a change
// of its own, it refused the sender's next replayed removal of a
// directory above it, and the directory came back on every member (the
// stress test's Kill9 seed 571 of the seventieth session).
func (r *Receiver) adopt(from string, req peer.ReplayRequest, done uint64) (taken []string) {
	if req.Run == "" {
		return nil
	}
	var names []string
	for _, rn := range req.Renames {
		if rn.Seq <= done {
			continue
		}
		names = append(names, string(rn.Old))
		if len(rn.New) > 0 {
			names = append(names, string(rn.New))
		}
	}
	if len(names) == 0 {
		return nil
	}
	own := from + "\x00" + req.Run
	live := make(map[string]bool, len(req.Live))
	for _, run := range req.Live {
		live[from+"\x00"+run] = true
	}
	r.mu.Lock()
	if _, ok := r.runs[own]; !ok {
		r.mu.Unlock()
		return nil
	}
	released := r.takeCovered(from, func(k string, _ announced) bool { return k != own && !live[k] }, nil, names)
	r.mu.Unlock()
	if len(released) == 0 {
		return nil
	}
	// Looked at before the commit: Pending reads the journal, which
	// shares the index's database.
	var there []string
	for _, p := range withImpliedParents(released, names) {
		if !r.pending(p) {
			there = append(there, p)
		}
	}
	if err := r.commitTaken(released, there); err != nil {
		r.Log.Error(err, "record what a sender's unconfirmed runs left at the names of its replayed renames", "from", from, "paths", len(there))
		return nil
	}
	r.Log.V(1).Info("replayed renames take what their sender's unconfirmed runs left at their names for the sender's", "from", from, "run", req.Run, "paths", there)
	return there
}

// withImpliedParents returns the released runs' paths and, for each, the
// directories above it that lie at or below one of names: a push sends
// every directory above a listed path (rsync --relative's implied
// directories) and sets it as the sender has it, replacing what is there
// when the sender's is not a directory (--force). What a run that died
// left at those names came from its sender as much as its paths did.
// Left as the index held them, a directory the dead run had replaced with
// the sender's symlink read as this member's change: the replay refused
// the sender's renames of that name ("changed here and not sent yet"),
// then moved its parent with it, and the symlink went from this member to
// every member under the parent's new name, where the writer had renamed
// it away (the stress test's Kill9 seed 487 of the sixty-eighth session:
// n3 swapped d8/d14, a directory, with a symlink and renamed the symlink
// away while its run that listed d8/d14/d4 pushed to n2, killed just
// after).
func withImpliedParents(released []releasedRun, names []string) []string {
	named := make(map[string]bool, len(names))
	for _, n := range names {
		named[n] = true
	}
	seen := make(map[string]bool)
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	var above []string
	for _, rr := range released {
		for _, p := range rr.paths {
			add(p)
			// The directories above p, up to the top-most named one.
			above = above[:0]
			top := -1
			for q := p; ; {
				i := strings.LastIndexByte(q, '/')
				if i < 0 {
					break
				}
				q = q[:i]
				above = append(above, q)
				if named[q] {
					top = len(above) - 1
				}
			}
			for _, q := range above[:top+1] {
				add(q)
			}
		}
	}
	return out
}

// underAny reports whether p or a directory above it is in set.
func underAny(p string, set map[string]bool) bool {
	for q := p; ; {
		if set[q] {
			return true
		}
		i := strings.LastIndexByte(q, '/')
		if i < 0 {
			return false
		}
		q = q[:i]
	}
}

// settle releases, from the runs of sender from that are over, the paths
// that are as the index holds them (a directory with its times: one the
// run set them on is the run's). A run is over when its sender announced
// it in an earlier life (a boot of its client other than boot, restored
// here or not: that agent restarted, and its rsync clients died with it,
// Pdeathsig, and with them the daemon's processes that received from
// them), or when its sender names it in over (peer.PathsRequest.Over):
// it ended unconfirmed, its rsync clients exited, and the daemon's
// processes that received from them end with their connections. Each is
// settled once, at its sender's next announcement or hello (Hello).
//
// Until the sixty-first session a run restored here from a sender that
// lives on was not settled, for fear of the daemon of this agent's
// earlier life, which a kill -9 leaves running and which may take its
// files until this agent's daemon stops it (rsyncd.Daemon.Run). Its
// sender now names it once its client has exited, and held until its
// hold expired (10 minutes) it deferred this member's own changes near
// its paths: the stress test's Kill9 seed 69 of the sixtieth session,
// where n3's run to n1 was announced just before n1 was killed, its push
// and confirmation failed, and its three paths (m16/m5 among them), held
// again at n1's restart, held back n1's removal of m16 and every
// removal and type change under D1 and f13 that n1's writer made while
// n1 was down (detect.Incoming.HoldsAround), for the rest of the test.
//
// What such a run delivered and did not confirm differs from the index,
// and stays held until a confirmation records it (takeCovered; the sender
// still has it pending) or the hold expires.
// What it never changed, or what a replay it carried applied and
// recorded (its names), has nothing to take for this member's own. Held
// on until the hold's TTL (10 minutes), such a path deferred this
// member's own writes there for that long: the stress test's Kill9 seed
// 17 of the sixtieth session, where n2 died with a run to n1 that had
// replayed a rename of h7 away; n1 wrote h7 again 16 s later, and no
// member got it in the test's minute. A directory goes too: a run pushes
// one without its content (rsync --dirs), and lists each path below it
// that it sends, which keeps its own hold until it is settled.
func (r *Receiver) settle(from, boot string, ended []string) {
	prefix := from + "\x00"
	over := make(map[string]bool)
	var paths []string
	r.mu.Lock()
	for k, ra := range r.runs {
		if ra.settled || !strings.HasPrefix(k, prefix) {
			continue
		}
		if boot != "" && ra.boot != "" && ra.boot != boot || slices.Contains(ended, k[len(prefix):]) {
			over[k] = true
			paths = append(paths, ra.paths...)
			ra.settled = true
			r.runs[k] = ra
		}
	}
	r.mu.Unlock()
	if len(over) == 0 {
		return
	}
	var asHeld []string
	err := r.Index.View(func(tx *index.Tx) error {
		for _, p := range paths {
			if same, err := tx.Unchanged(r.RootFD, p, true); err == nil && same {
				asHeld = append(asHeld, p)
			}
		}
		return nil
	})
	if err != nil || len(asHeld) == 0 {
		return
	}
	r.mu.Lock()
	released := r.takeCovered(from, func(k string, _ announced) bool { return over[k] }, asHeld, nil)
	r.mu.Unlock()
	if err := r.commitTaken(released, nil); err != nil {
		r.Log.Error(err, "release the paths of a sender's runs that are over", "from", from, "paths", len(asHeld))
		return
	}
	r.Log.V(1).Info("runs of a sender that are over give up the paths held as the index holds them", "from", from, "runs", len(over), "paths", len(asHeld), "of", len(paths))
}

// SenderQuiet releases what the runs of from that are over still hold:
// the runs restored here (announced before this agent started) and those
// settled (their sender named them over, or a later life of its client
// announced). It is called when from asks for this member's tree (the
// anti-entropy compare), which a member asks only when it is quiet:
// nothing pending for any member, so every run it announced here has
// ended, and what such a run put here and never confirmed it will never
// confirm (it would still have it pending). A run not over yet (announced
// after the asker found itself quiet, in the moment before its request
// came) is neither restored nor settled, and keeps its paths.
//
// Held on, those paths waited out the hold's TTL (10 minutes), and with
// them every change of this member's at, above or below them: the stress
// test's Kill9 seed 341 of the sixty-fifth session, where n1, restarted,
// restored a run of n2's that n2's kill -9 had cut and whose paths n2
// never named again (its later renames took them elsewhere); n1's
// removal of a directory above them (rm -r D20, made just before n1's own
// kill) stayed held (detect.Incoming.HasBelow), and every member but n1
// kept D20, while n1 read as busy to every compare. Released without a
// record: each is compared with the index as any change of this member's
// once its hold ends (detect: held changes are passed again), which is
// how D20's removal went out.
func (r *Receiver) SenderQuiet(from string) {
	prefix := from + "\x00"
	over := make(map[string]bool)
	var paths []string
	r.mu.Lock()
	for k, ra := range r.runs {
		if strings.HasPrefix(k, prefix) && (ra.restored || ra.settled) && len(ra.paths) > 0 {
			over[k] = true
			paths = append(paths, ra.paths...)
		}
	}
	released := r.takeCovered(from, func(k string, _ announced) bool { return over[k] }, paths, nil)
	r.mu.Unlock()
	if len(released) == 0 {
		return
	}
	if err := r.commitTaken(released, nil); err != nil {
		r.Log.Error(err, "release the paths of a quiet sender's runs that are over", "from", from, "paths", len(paths))
		return
	}
	r.Log.V(1).Info("a sender that asks for a compare is quiet: its runs that are over give up what they still held", "from", from, "runs", len(over), "paths", paths[:min(len(paths), 20)], "of", len(paths))
}

// commitTaken records, in one commit, what the runs that takeCovered took
// from keep, and records the paths record as they are; then it releases
// what was taken. When the commit fails, the runs get their paths back.
func (r *Receiver) commitTaken(released []releasedRun, record []string) error {
	err := r.Index.Batch(func(btx *bolt.Tx) error {
		for _, rr := range released {
			if err := r.persistTaken(btx, rr); err != nil {
				return err
			}
		}
		tx := index.Within(btx)
		for _, p := range record {
			if err := r.record(tx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.mu.Lock()
		r.giveBack(released)
		r.mu.Unlock()
		return err
	}
	for _, rr := range released {
		rr.kept.release(r.Held, rr.paths...)
	}
	return nil
}

// giveBack undoes takeCovered after the confirmation failed; the caller
// holds r.mu.
func (r *Receiver) giveBack(rrs []releasedRun) {
	for _, rr := range rrs {
		a, ok := r.runs[rr.key]
		if !ok {
			a = rr.kept
			a.paths = nil
		}
		a.paths = append(slices.Clone(a.paths), rr.paths...)
		// Announced again since takeCovered took it whole, it holds its
		// paths anew: the paths given back are still the earlier hold's,
		// released with the run's.
		for _, h := range rr.kept.holds {
			if !slices.Contains(a.holds, h) {
				a.holds = append(slices.Clone(a.holds), h)
			}
		}
		r.runs[rr.key] = a
	}
}
