// Package receiver is what a member does for a peer that pushes to it: it
// holds its own events for the paths a run announces, records in the index
// what arrived (so those events are recognised as echoes and never sent
// on), and applies renames locally so that their content is not sent again.
// It implements peer.Handler for one group.
package receiver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// Receiver serves one group's peers.
type Receiver struct {
	// RootFD is the data root, open.
	RootFD int
	// Root, when set, is the root's path, which the rsync daemon resolves
	// for each connection: a confirmation is refused unless it still names
	// RootFD's directory (checkRoot).
	Root string
	// Index is the root's index.
	Index *index.Index
	// Held is shared with the group's detector (detect.Detector.Incoming).
	Held *detect.Incoming
	// Exclude, when set, reports the paths the group does not sync here
	// (exclude.Matcher.Match): a rename from or to one is refused, and the
	// sender sends the content (or deletes the old name) instead.
	Exclude func(rel string, isDir bool) bool
	// Rescan, when set, asks the detector to compare a path with the index
	// (detect.Detector.Rescan).
	Rescan func(path string)
	// Pending, when set, reports whether this member changed something
	// at or below a path and has not sent it to every peer yet
	// (journal.Journal.PendingAt): a replay does not remove or replace
	// it, since what it would delete is newer here.
	Pending func(rel string) bool
	// Renames, when set, is this member's journal: a run that a sender
	// listed before it replayed this member's renames is mapped through
	// them (doneRename, landed).
	Renames RenameLog
	// PendingBelow, when set, returns the paths below a directory that
	// this member changed and has not sent to every peer yet
	// (journal.Journal.PendingBelow): a replayed rename of the directory
	// carries them on, and they go again under the new name.
	PendingBelow func(rel string, max int) []string
	// PendingFor, when set, returns the paths at or below a name that
	// this member changed and has not sent to one peer yet, at most max
	// (journal.Journal.PendingFor): a replayed removal of the name from
	// that peer takes a version it never had (newerHere). Nil: never.
	PendingFor func(peer, rel string, max int) []string
	// Self is this member's node name.
	Self string
	// KeepDeletes (spec.deletes: Keep) keeps this member's copies of what
	// a replaying member removed: its replayed removals are refused, and a
	// refused rename's names are never cleared (clearName).
	KeepDeletes bool
	// Modes and Owners say that this member's filesystem keeps a file's
	// mode, and its numeric owner and group, exactly as rsync sets them
	// (KeepsAttrs): only then does a confirmed file whose mode or owner
	// differs from the sent one count as changed here. Elsewhere (FAT's
	// fixed masks, NFS with root_squash, an agent not running as root)
	// every received file would, and its attributes would go back to
	// every member.
	Modes, Owners bool
	// Log receives what the receiver does.
	Log logr.Logger

	mu sync.Mutex
	// runs are the runs announced and not yet confirmed, by sender and run
	// id, with when each was last announced and the paths it holds; one
	// whose sender died is forgotten a day later (its holds expired long
	// before: detect.Incoming's TTL).
	runs map[string]announced
	// confirmed are the runs confirmed lately (or being confirmed), by the
	// same key: a confirmation the sender sends again (its answer was lost,
	// or came after the sender's timeout) changes nothing, and an
	// announcement of it that comes late holds nothing. Either would
	// release, or hold, paths of another run. One sent again while the
	// first is still being recorded waits for its outcome: answered at
	// once, the sender would take the run as done before it was recorded,
	// and for good if that record then failed.
	confirmed map[string]*confirmation
	// movedAway are the names that replayed renames and removals took
	// away here (an applied rename's old name, a removed name), each with
	// when it was applied, kept while a run announced before then is
	// live (noteMovedAway): what such a run put there and the replay
	// carried off is not this member's to send (movedAwaySince).
	movedAway map[string]time.Time
	// done are the renames and removals made here (NoteRenames) and
	// replayed here from the other members' logs (noteMovedAway), in the
	// order made, for doneFor: a run of a sender that had not replayed one
	// of them may put its files under its old name (unreplayed).
	done []doneRename
}

// maxMovedAway bounds movedAway; past it the names are forgotten, and a
// confirmation takes a path gone below one of them for this member's
// removal, as before the sixty-second session.
const maxMovedAway = 100_000

// checkPaths refuses paths that no sender sends: empty, absolute, not
// clean, with a NUL, or in the agent's reserved directory. The index takes
// "" for the root's parent (deleting it would delete every entry), and
// the holds and their record on disk split on NUL; a confirmation with
// such a path is refused whole. The root itself (".") passes: a run
// announces the root's own change that it confirms without sending it
// (sender's plan), and holding "." holds nothing below it.
func checkPaths(lists ...[]string) error {
	for _, l := range lists {
		for _, p := range l {
			if err := index.CheckPath(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// announced is a run announced and not yet confirmed.
type announced struct {
	at    time.Time
	paths []string
	// holds are its paths' holds in Receiver.Held: its own, and a
	// restored run's whose paths a failed confirmation gave back to it
	// (giveBack), when it had been announced again meanwhile.
	holds []detect.Hold
	// restored: announced before this agent started (Restore). Its
	// transfer died with the daemon of the agent before; the sender sends
	// its files again in runs of its own, and each path is released by the
	// first of the sender's confirmations that records it (takeCovered).
	restored bool
	// boot is the sender's client's life that announced it
	// (peer.PathsRequest.Boot; "" not given), and settled says that
	// settle has released what of it was as the index held it.
	boot    string
	settled bool
	// replayed are the sender's replay positions when it announced the
	// run (peer.PathsRequest.Replayed; nil: not sent). What the run puts
	// under a name that a rename made or replayed here, and not replayed
	// by the sender then, took away was listed there before that rename,
	// and moves on as the rename moved the rest (Receiver.unreplayed,
	// landed). Not kept on disk.
	replayed []peer.ReplayPos
}

// doneRename is a rename (or removal, new "") made here, or replayed here
// from member's rename log: its place in that log (journal, seq), and in
// this member's order: order is this member's journal sequence number when
// it was made or replayed, a replayed one after one made here at the same
// number, and otherwise as kept (unreplayed's stable sort).
type doneRename struct {
	member, journal string
	seq, order      uint64
	replayed        bool
	old, new        string
	at              time.Time // when it was kept (doneFor)
}

// RenameLog is this member's journal as the receiver reads it
// (journal.Journal): its identity and its last sequence number.
type RenameLog interface {
	ID() string
	Seq() uint64
}

// doneFor is how long the receiver keeps the renames made or replayed
// here (Receiver.done): a sender that has not replayed one within it is
// down, and its runs are held as long (detect.DefaultIncomingTTL).
// maxDone bounds them.
const (
	doneFor = detect.DefaultIncomingTTL
	maxDone = 100_000
)

// release ends a's holds of paths.
func (a announced) release(held *detect.Incoming, paths ...string) {
	for _, h := range a.holds {
		held.Done(h, paths...)
	}
}

var _ peer.Handler = (*Receiver)(nil)

// Incoming holds local events for the paths of a run. A run announced
// again (it lasts) holds its paths for longer. A new run settles the
// sender's runs that are over (settle): those of its client's earlier
// lives (boot is its life), and over, those of this life that it says
// ended unconfirmed.
func (r *Receiver) Incoming(_ context.Context, from, boot, run string, paths, over []string, replayed []peer.ReplayPos) error {
	if err := checkPaths(paths); err != nil {
		return fmt.Errorf("announced run %s from %s: %w", run, from, err)
	}
	key := from + "\x00" + run
	now := time.Now()
	r.mu.Lock()
	if _, done := r.confirmed[key]; done {
		r.mu.Unlock()
		return nil // a late announcement of a run confirmed already
	}
	if r.runs == nil {
		r.runs = make(map[string]announced)
	}
	a, again := r.runs[key]
	if !again {
		a.paths = paths
		a.holds = []detect.Hold{r.Held.Add(paths...)}
		a.boot = boot
		a.replayed = replayed
	}
	a.at = now
	r.runs[key] = a
	var stale []string
	for k, a := range r.runs {
		if now.Sub(a.at) > 24*time.Hour {
			delete(r.runs, k)
			stale = append(stale, k)
			defer a.release(r.Held, a.paths...)
		}
	}
	r.mu.Unlock()
	if again {
		for _, h := range a.holds {
			r.Held.Extend(h, paths...)
		}
		return nil
	}
	// Durable before the sender is answered, so before any file of the run
	// is in place (see bucketIncoming).
	if err := r.persist(key, a, stale); err != nil {
		r.mu.Lock()
		delete(r.runs, key)
		r.mu.Unlock()
		a.release(r.Held, paths...)
		return fmt.Errorf("record the announced run: %w", err)
	}
	r.settle(from, boot, over)
	return nil
}

// Hello settles the runs of from's earlier lives (settle): its client
// started the life boot.
func (r *Receiver) Hello(_ context.Context, from, boot string) error {
	r.settle(from, boot, nil)
	return nil
}

// checkRoot refuses a confirmation while Root names another directory
// than RootFD (mounted over, or replaced): the daemon put the run's files
// there, and what the receiver looks at through RootFD does not have them.
// Recorded so, a sent file would read as deleted here meanwhile, and its
// deletion would go to every member once the right root is back. Refused,
// the run stays pending on its sender, and the group stops at its next
// check of the root (detect.Detector's watchRoot).
func (r *Receiver) checkRoot() error {
	if r.Root == "" {
		return nil
	}
	return r.Index.CheckRootPath(r.RootFD, r.Root)
}

// createFresh creates name in the directory dfd as a new 0600 file open
// for writing. Whatever is there under that name (a file or a link that
// anyone who can write the directory left) is removed first, never opened
// or followed.
func createFresh(dfd int, name string) (int, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dfd, name, flags, 0o600)
	if errors.Is(err, unix.EEXIST) {
		if err := unix.Unlinkat(dfd, name, 0); err != nil {
			return -1, fmt.Errorf("remove what is there: %w", err)
		}
		fd, err = unix.Openat(dfd, name, flags, 0o600)
	}
	return fd, err
}

// record records p as it is now. A path that cannot be looked at (an I/O
// error) is recorded as an entry nothing matches, so that one path never
// fails the confirmation of a whole run (which the sender would send
// again and again); only an error of the index itself does.
func (r *Receiver) record(tx *index.Tx, p string) error {
	return r.unreadableAsUnknown(tx, p, tx.Record(r.RootFD, p))
}

// recordFound is record with p's lstat taken already (st, or its error
// lerr): what the confirmation found as the sender sent it is what is
// recorded (index.Tx.RecordFound).
func (r *Receiver) recordFound(tx *index.Tx, p string, st *unix.Stat_t, lerr error) error {
	return r.unreadableAsUnknown(tx, p, tx.RecordFound(p, st, lerr))
}

// unreadableAsUnknown records p as an entry nothing matches when err,
// recording it, says that it cannot be looked at, and returns any other
// err.
func (r *Receiver) unreadableAsUnknown(tx *index.Tx, p string, err error) error {
	if errors.Is(err, index.ErrUnreadable) {
		r.Log.Info("cannot look at a received path; recorded as unknown", "path", p, "error", err.Error())
		return tx.Put(p, index.Entry{Size: -1})
	}
	return err
}

// holds reports whether p, found in state st, is what the sender sent
// (sent), as rsync leaves it. A regular file: the same size, mode (where
// the filesystem keeps it, r.Modes), numeric owner and group (r.Owners),
// and the same mtime. rsync sets the mtime
// to the nanosecond (--modify-window=-1) where the filesystem keeps
// nanoseconds; where it keeps whole seconds (the mtime has none), within
// 2 s, so that a coarse filesystem (FAT keeps 2 s) never reads every
// received file as changed here and sends it back. A symlink: a symlink to
// the same target (its mode, times and owner are not compared: systems
// differ on which of them a link keeps). An unknown state holds.
func (r *Receiver) holds(p string, st *unix.Stat_t, sent peer.FileState) bool {
	switch {
	case sent.Symlink:
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return false
		}
		target, err := beneath.Readlink(r.RootFD, p)
		return err == nil && target == string(sent.Link)
	case !sent.Regular:
		return true
	case st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != sent.Size:
		return false
	case sent.Mode != 0 && (r.Modes && uint32(st.Mode) != sent.Mode || r.Owners && (st.Uid != sent.UID || st.Gid != sent.GID)):
		return false
	}
	mtime := st.Mtim.Nano()
	if mtime == sent.MtimeNs {
		return true
	}
	if mtime%int64(time.Second) != 0 {
		return false
	}
	d := mtime - sent.MtimeNs
	return -2*int64(time.Second) < d && d < 2*int64(time.Second)
}

// KeepsAttrs reports whether the filesystem of dir (beneath rootfd, the
// reserved temp directory) keeps a file's mode, and its numeric owner and
// group, exactly as set: a probe file is made there, chmodded and, when
// the agent runs as root (the only case in which rsync sets owners),
// chowned, then read back and removed. Only what the probe sees fail
// reads as not kept (a mode read back otherwise, a chown refused with
// EPERM or read back otherwise); where the probe itself cannot run (no
// space, no descriptor), the filesystem is taken to keep both, as most do.
func KeepsAttrs(rootfd int, dir string) (modes, owners bool) {
	modes, owners = true, os.Geteuid() == 0
	dfd, err := beneath.Open(rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return modes, owners
	}
	defer unix.Close(dfd)
	name := fmt.Sprintf(".attrs-probe-%d", os.Getpid())
	fd, err := createFresh(dfd, name) // one left by a killed agent of this pid is replaced
	if err != nil {
		return modes, owners
	}
	defer unix.Unlinkat(dfd, name, 0)
	defer unix.Close(fd)
	const mode, uid, gid = 0o751, 4242, 4243 // unlike what umask and the creator give
	var st unix.Stat_t
	if unix.Fchmod(fd, mode) == nil && unix.Fstat(fd, &st) == nil {
		modes = st.Mode&0o7777 == mode
	}
	if owners {
		switch err := unix.Fchown(fd, uid, gid); {
		case errors.Is(err, unix.EPERM):
			owners = false
		case err == nil && unix.Fstat(fd, &st) == nil:
			owners = st.Uid == uid && st.Gid == gid
		}
	}
	return modes, owners
}

// Replay replays a member's logged renames and removals (peer.ReplayRequest)
// locally, where this member's old file is the sender's: same size (and,
// for a file, mtime when given) and a new name that is free. Anything else
// is refused with the reason, and the sender sends the content. The
// renames are applied in order, then recorded in the index in one commit
// (one per rename took a sync each: thousands outlived the sender's
// timeout); once ctx ends, the rest are refused.
//
// It skips those at or below the last sequence
// number it replayed from that member's journal, and records the last one
// it decided on (applied or refused) in the commit that records what it
// applied. An agent stopped between applying them on disk and that
// commit replays them again at the next request: a rename whose old name
// is gone is refused then, and one whose old name holds another object
// (a swap's) is refused by its size and mtime, or by the index's entry.
//
// First it takes what the sender's runs that died unconfirmed left at the
// renames' names for the sender's (adopt), and it answers where the
// applied renames took those paths (peer.RenameResponse.Verify).
func (r *Receiver) Replay(ctx context.Context, from string, req peer.ReplayRequest) peer.RenameResponse {
	renames := req.Renames
	pos := replayPos{member: from, journal: req.Journal}
	if err := r.Index.DB().View(func(tx *bolt.Tx) error {
		pos.done = replayedUpTo(tx, from, req.Journal)
		return nil
	}); err != nil {
		out := make([]peer.RenameResult, len(renames))
		for i := range out {
			out[i].Reason = fmt.Sprintf("not tried: read the replay position: %v", err)
		}
		return peer.RenameResponse{Results: out}
	}
	taken := r.adopt(from, req, pos.done)
	// The holds of the run that carries the renames' names: a name held
	// by no other run is not being put here by a peer (keepsUnrecorded).
	r.mu.Lock()
	own := slices.Clone(r.runs[from+"\x00"+req.Run].holds)
	r.mu.Unlock()
	out, applied := r.rename(ctx, from, renames, &pos, own)
	return peer.RenameResponse{Results: out, Verify: toVerify(taken, applied)}
}

// toVerify returns the names where applied, the renames a request applied
// in their order, took the paths taken (adopt): those of the sender's
// runs that are over, which the renames moved (a removal leaves nothing
// to verify). Such a run read its files after its own replay, and a
// rename the sender made after that and before rsync read a file had it
// push the file's new object under its old name; replayed now, the rename
// took that copy on to where the sender has nothing of it (the stress
// test's Kill9 seed 32 of the sixtieth session: a directory pushed into
// d10 just after d10 was swapped with d23, taken by the swap's replay,
// after its sender's restart, to d23 and on to a name the writer never
// had). A live sender remembers such runs (sender.overtaken); a sender
// that died with them cannot, and the receiver tells it.
func toVerify(taken []string, applied []appliedRename) [][]byte {
	var out [][]byte
	for _, p := range taken {
		at := p
		for _, a := range applied {
			if a.removed && atOrBelowPath(at, a.old) {
				at = ""
				break
			}
			if to, ok := a.moves(at); ok {
				at = to
			}
		}
		if at != "" && at != p {
			out = append(out, []byte(at))
		}
	}
	return out
}

// rename applies renames (Replay) and records them, with pos, in one
// commit. It returns the results, and the renames applied, in order.
func (r *Receiver) rename(ctx context.Context, from string, renames []peer.Rename, pos *replayPos, own []detect.Hold) ([]peer.RenameResult, []appliedRename) {
	out := make([]peer.RenameResult, len(renames))
	var applied []appliedRename
	var madeDirs []string // made for renames that then failed
	defer func() {
		for _, a := range applied {
			r.Held.Done(a.hold, a.paths()...)
		}
	}()
	for i, rn := range renames {
		if err := ctx.Err(); err != nil {
			out[i].Reason = fmt.Sprintf("not tried: %v", err)
			continue
		}
		if rn.Seq <= pos.done {
			out[i] = peer.RenameResult{Applied: true, Reason: "replayed before"}
			continue
		}
		pos.last = rn.Seq
		var more []appliedRename
		var made []string
		if k, ok := unapplied(rn.After, i, out); ok {
			out[i], more = r.notApplied(rn, k, applied)
		} else if rn.Remove {
			out[i], more = r.replayRemoval(from, rn, applied, own)
		} else {
			out[i], more, made = r.replayRename(rn, applied)
		}
		applied = append(applied, more...)
		madeDirs = append(madeDirs, made...)
	}
	if len(applied)+len(madeDirs) == 0 && pos.last == 0 {
		return out, applied
	}
	r.recordReplayed(from, applied, madeDirs, pos)
	return out, applied
}

// notApplied answers rn, which follows the rename k that was not
// applied, and returns what it removed here (applied: the renames applied
// before it).
func (r *Receiver) notApplied(rn peer.Rename, k int, applied []appliedRename) (res peer.RenameResult, cleared []appliedRename) {
	res.Reason = fmt.Sprintf("not tried: it follows rename %d, not applied", k)
	// The writer's object left the old name here in the log's
	// order; what this member holds there is another (a refused
	// rename's) and would go by the old name's path entry. But
	// that entry comes after the whole request, and a later
	// rename of the request, of a directory above it, carried
	// it along first: a directory made here for a rename of the
	// writer's (made) below a tree whose own rename was refused
	// stayed under that tree's next name for good (the stress
	// test, seed 40 of the forty-eighth session). Removed now,
	// as the refused renames' names are (clearName: what
	// changed here stays).
	if rn.AsHeld && !r.KeepDeletes && !rn.Remove && r.nameError(string(rn.Old), rn.Dir) == nil {
		if cleared = r.clearName(string(rn.Old), applied, true); len(cleared) > 0 {
			res.Reason += "; its old name here was removed"
		}
	}
	return res, cleared
}

// replayRemoval applies rn, a removal, unless this member keeps what it
// would remove, and returns what it removed here (applied: the renames
// applied before it; own: the replaying run's holds).
func (r *Receiver) replayRemoval(from string, rn peer.Rename, applied []appliedRename, own []detect.Hold) (res peer.RenameResult, removed []appliedRename) {
	switch {
	case r.KeepDeletes:
		res.Reason = "deletes are kept here (spec.deletes: Keep)"
		return res, nil
	case r.pending(string(rn.Old)):
		res.Reason = errNewerHere.Error()
		res.Newer = r.newerHere(from, rn)
		// A directory kept for what changed below it: what else the
		// remover removed goes (clearName: what is as the index holds
		// it and not pending; the directories left empty), as its
		// own removals would have taken it. A removal found by a
		// scan (the directory gone when the remover's agent started)
		// logs nothing below it, and the directory's whole old tree
		// stayed here, for the compare to bring back to the remover.
		if res.Newer && rn.Dir && r.nameError(string(rn.Old), true) == nil {
			if removed = r.clearName(string(rn.Old), applied, true); len(removed) > 0 {
				res.Reason += "; what else was below it was removed here"
			}
		}
		return res, removed
	case rn.MtimeNs != 0 && r.keepsUnrecorded(rn, applied, own):
		// The remover says what it removed: a file here that is
		// neither as this member's index holds it nor that stays.
		res.Reason, res.Newer = errUnrecorded.Error(), true
		return res, nil
	}
	if c, kept := r.keepsWrittenBelow(string(rn.Old), applied, own); kept {
		// A file written here below the directory, not journaled
		// yet: it stays, with the directories above it; what
		// else was below it goes.
		res.Reason, res.Newer = errWrittenBelow.Error(), true
		return res, c
	}
	a := appliedRename{old: string(rn.Old), removed: true}
	a.hold = r.Held.Add(a.old)
	// Its lstat, for its other names (recordRenames); a
	// directory's tree goes whole.
	if beneath.Lstat(r.RootFD, a.old, &a.st) == nil {
		a.dir = a.st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	if err := r.removeReplayed(a.old); err != nil {
		r.Held.Done(a.hold, a.old)
		res.Reason = err.Error()
		return res, nil
	}
	a.seq = rn.Seq
	res.Applied = true
	return res, []appliedRename{a}
}

// replayRename applies rn, a rename (applied: the renames applied before
// it), and returns what it did here: the rename applied, or what it
// removed here once refused, and the directories made for it when it then
// failed (made).
func (r *Receiver) replayRename(rn peer.Rename, applied []appliedRename) (res peer.RenameResult, more []appliedRename, made []string) {
	if rn.Dir && rn.MakeParents && checkPaths([]string{string(rn.Old), string(rn.New)}) == nil {
		// A directory made there and renamed before it was sent:
		// made here under its new name, where later renames find it
		// (its content comes with the path entries).
		var st unix.Stat_t
		if err := beneath.Lstat(r.RootFD, string(rn.Old), &st); errors.Is(err, unix.ENOENT) {
			a := appliedRename{new: string(rn.New), made: true}
			a.hold = r.Held.Add(a.new)
			made, err := r.makeParents(a.new)
			if err != nil {
				r.Held.Done(a.hold, a.new)
				res.Reason = err.Error()
				return res, nil, made
			}
			a.parents = slices.DeleteFunc(made, func(d string) bool { return d == a.new })
			res.Applied = true
			return res, []appliedRename{a}, nil
		}
	}
	a, err := r.apply(string(rn.Old), string(rn.New), rn, applied)
	if err == nil {
		a.seq = rn.Seq
		res.Applied = true
		return res, []appliedRename{a}, nil
	}
	res.Reason = err.Error()
	made = a.parents
	switch {
	case !rn.AsHeld || r.KeepDeletes:
	case errors.Is(err, errOldGone):
		if more = r.clearName(string(rn.New), applied, false); len(more) > 0 {
			res.Reason += "; what its new name held here was removed"
		}
	default:
		// Refused with the object here (its new name's directory
		// is a file here, the new name is a full directory here
		// or changed here): it left its old name there, and
		// comes by content at its new one. Left, the later
		// renames of the log carried it along (a swap's
		// temporary name left under a renamed tree: stress seed
		// 34; a tree into a directory a swap moved: seed 25).
		// So does an object of another type than the writer's
		// (errOtherType): the old name's path entry would delete
		// it as gone on the writer, but found nothing once a
		// later rename of a directory above it had moved it (a
		// file left under a renamed tree: the forty-fifth
		// session's seed 29). clearName removes only what is
		// as the index holds it and not pending: a change of
		// this member's own stays, as it would against that
		// deletion.
		if more = r.clearName(string(rn.Old), applied, true); len(more) > 0 {
			res.Reason += "; its old name here was removed"
		}
	}
	return res, more, made
}

// recordReplayed records, in one commit, the renames and removals applied
// here (and the directories made for renames that failed) with pos, and
// has what they carried of this member's own compared again.
func (r *Receiver) recordReplayed(from string, applied []appliedRename, madeDirs []string, pos *replayPos) {
	carried := r.pendingCarried(applied) // read before the write transaction
	var local, why []string
	err := r.Index.DB().Update(func(btx *bolt.Tx) error {
		var err error
		tx := index.Within(btx)
		local, why, err = recordRenames(tx, r.RootFD, applied, madeDirs)
		if err == nil {
			// What this member had pending under an old name goes again
			// under the new one: recorded as an entry nothing matches,
			// and compared (Rescan, below). Left as moved, it read as
			// sent, and its pending entry at the old name went as a
			// removal: a peer that had not had it never got it (n2
			// renamed d, n1's files written into d just before went to
			// no member:
			// TestStandalone_WritesCrossingARenameOfTheirDirectoryEndIdentical).
			for _, p := range carried {
				if e, ok, err := tx.Get(p); err != nil {
					return err
				} else if ok && !e.IsDir() {
					if err := tx.Put(p, index.Entry{Size: -1}); err != nil {
						return err
					}
					local, why = append(local, p), append(why, "pending here under its old name")
				}
			}
		}
		if err == nil && pos.last != 0 {
			err = setReplayed(btx, pos.member, pos.journal, pos.last)
		}
		return err
	})
	if err != nil {
		// Applied here, not recorded: their events read as this member's
		// own changes, and go back to the peers as what they already hold.
		r.Log.Error(err, "record renames applied at a peer's request", "from", from, "renames", len(applied))
		// The detector drops this agent's own renames and asks for no
		// scan of their trees (recordTree compares them, here not run):
		// asked for here, the scans find them under their new names.
		if r.Rescan != nil {
			for _, a := range applied {
				if !a.removed {
					r.Rescan(a.new)
				}
			}
		}
		return
	}
	r.noteMovedAway(from, pos.journal, applied)
	if v := r.Log.V(2); v.Enabled() {
		for _, a := range applied {
			v.Info("replayed", "from", from, "old", a.old, "new", a.new, "removed", a.removed, "made", a.made)
		}
	}
	if len(local) > 0 {
		r.Log.V(1).Info("replayed renames hold changes of this member's own; compared again", "from", from, "paths", local, "why", why)
	}
	if r.Rescan != nil {
		// What this member made or changed and had not sent yet: its
		// entries match nothing now, and the scan journals it under its
		// new name (under the old one it is gone).
		for _, p := range local {
			r.Rescan(p)
		}
	}
}

// pendingCarried returns where the renames applied (not removals) carried
// the paths this member had pending under their old names (PendingBelow),
// followed through the later renames of the request.
func (r *Receiver) pendingCarried(applied []appliedRename) []string {
	if r.PendingBelow == nil {
		return nil
	}
	var out []string
	for i, a := range applied {
		if a.removed || a.made || !a.dir {
			continue
		}
		for _, p := range r.PendingBelow(a.old, maxCarried) {
			to, ok := a.moves(p)
			if !ok {
				continue
			}
			if to, ok = whereAfter(to, applied[i+1:]); ok {
				out = append(out, to)
			}
		}
	}
	return out
}

// maxCarried bounds the pending paths one renamed directory carries on
// (pendingCarried); past it, the rest read as sent until a scan.
const maxCarried = 100_000

// noteMovedAway remembers the names that the renames and removals of a
// replay, applied and recorded, took away here (movedAway), and forgets
// those taken before every live run was announced: no confirmation asks
// about them.
//
// It also keeps the replayed renames and removals (done), with
// their place in from's log (journal) and in this member's journal order,
// for the runs of other senders announced after them (unreplayed).
func (r *Receiver) noteMovedAway(from, journal string, applied []appliedRename) {
	now := time.Now()
	var order uint64
	if r.Renames != nil {
		order = r.Renames.Seq()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := now
	for _, ra := range r.runs {
		if ra.at.Before(oldest) {
			oldest = ra.at
		}
	}
	maps.DeleteFunc(r.movedAway, func(_ string, at time.Time) bool { return at.Before(oldest) })
	for _, a := range applied {
		if a.made || a.old == "" {
			continue
		}
		if r.movedAway == nil {
			r.movedAway = make(map[string]time.Time)
		}
		r.movedAway[a.old] = now
		if journal != "" && a.seq != 0 {
			d := doneRename{member: from, journal: journal, seq: a.seq, order: order, replayed: true, old: a.old, at: now}
			if !a.removed {
				d.new = a.new
			}
			r.keepDone(d, now)
		}
	}
	if len(r.movedAway) > maxMovedAway {
		clear(r.movedAway)
	}
}

// NoteRenames keeps the renames and removals this member's journal logged
// (journal.Journal.Logged), for the runs of senders that have not
// replayed them yet (unreplayed).
func (r *Receiver) NoteRenames(logged []journal.LoggedRename) {
	if r.Renames == nil {
		return
	}
	id, now := r.Renames.ID(), time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range logged {
		r.keepDone(doneRename{member: r.Self, journal: id, seq: l.Seq, order: l.Seq, old: l.Old, new: l.New, at: now}, now)
	}
}

// keepDone appends d to r.done, forgetting what is older than doneFor
// and, past maxDone, the oldest; the caller holds r.mu.
func (r *Receiver) keepDone(d doneRename, now time.Time) {
	i := 0
	for i < len(r.done) && (now.Sub(r.done[i].at) > doneFor || len(r.done)-i >= maxDone) {
		i++
	}
	r.done = append(r.done[i:], d)
}

// unreplayed returns the renames made or replayed here (done) that from
// had not replayed when it announced a run (its replay positions,
// replayed), in the order they were made here, when one of them took a
// name at or above one of paths; nil when none did. A rename of from's
// own is never among them: from made it before it listed the run.
func (r *Receiver) unreplayed(from string, paths []string, replayed []peer.ReplayPos) []doneRename {
	at := func(journal string) uint64 {
		for _, p := range replayed {
			if p.Journal == journal {
				return p.Seq
			}
		}
		return 0
	}
	var out []doneRename
	r.mu.Lock()
	for _, d := range r.done {
		if d.member != from && d.seq > at(d.journal) {
			out = append(out, d)
		}
	}
	r.mu.Unlock()
	slices.SortStableFunc(out, func(a, b doneRename) int {
		if c := cmp.Compare(a.order, b.order); c != 0 {
			return c
		}
		switch {
		case a.replayed == b.replayed:
			return 0
		case a.replayed:
			return 1
		}
		return -1
	})
	for _, d := range out {
		for _, p := range paths {
			if atOrBelowPath(p, d.old) {
				return out
			}
		}
	}
	return nil
}

// landed returns where p, listed by a sender before the renames
// unreplayed (in their order), lies now that they were made here: p
// itself when none took a name at or above it, "" when a removal took it;
// and top, the old name of the first of them that took p ("" for none):
// what rsync made for p here lies at or below it.
func landed(p string, unreplayed []doneRename) (to, top string) {
	for _, d := range unreplayed {
		if !atOrBelowPath(p, d.old) {
			continue
		}
		if top == "" {
			top = d.old
		}
		if d.new == "" {
			return "", top
		}
		p = d.new + p[len(d.old):]
	}
	return p, top
}

// moveAllLanded moves each file and symlink that rep's run put
// here under a name that renames it listed before (unreplayed) took away
// to where they took the rest (landed, moveLanded). Directories stay:
// their files move, and what the run made above them is the run's.
func (r *Receiver) moveAllLanded(rep runReport, mine []string, unreplayed []doneRename) {
	from, run, states := rep.from, rep.run, rep.states
	var moved, stayed, why []string
	left := make(map[string]bool) // directories the moves may have left empty
	for i, p := range rep.sent {
		if i >= len(states) || !states[i].Regular && !states[i].Symlink || slices.Contains(mine, p) {
			continue
		}
		to, top := landed(p, unreplayed)
		if to == "" || to == p {
			continue
		}
		if err := r.moveLanded(p, to); err != nil {
			stayed, why = append(stayed, p), append(why, err.Error())
			continue
		}
		moved = append(moved, p+" -> "+to)
		// The directories rsync made for p under the old name, up to it:
		// the rename had taken the old name away here.
		for d, _ := split(p); atOrBelowPath(d, top); d, _ = split(d) {
			left[d] = true
		}
	}
	if len(moved) > 0 {
		r.Log.V(1).Info("paths a run listed before renames made here, moved on as the renames moved the rest", "from", from, "run", run, "paths", moved)
	}
	if removed := r.removeLeft(slices.Collect(maps.Keys(left))); len(removed) > 0 {
		r.Log.V(1).Info("directories made for paths moved on, removed where empty", "from", from, "run", run, "dirs", removed)
	}
	if len(stayed) > 0 {
		r.Log.V(1).Info("paths a run listed before renames made here, left where they landed", "from", from, "run", run, "paths", stayed, "why", why)
	}
}

// removeLeft removes each of dirs, deepest first, where it is an empty
// directory, and its index entry (held meanwhile): what rsync made there
// for paths that moved on (moveAllLanded). One not empty stays.
func (r *Receiver) removeLeft(dirs []string) (removed []string) {
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		h := r.Held.Add(d)
		if beneath.RemoveEmptyDirKeepingTimes(r.RootFD, d) == nil {
			if err := r.Index.Update(func(tx *index.Tx) error { return tx.Delete(d) }); err == nil {
				removed = append(removed, d)
			}
		}
		r.Held.Done(h, d)
	}
	return removed
}

// moveLanded moves what a run put at p, a name that a rename here (or
// one replayed here) had taken away before the run's sender replayed it,
// to where that rename took the rest (to), as the sender's replay of it
// moves the sender's copy: never over anything, beneath the root, held.
// It is recorded there as it was at p. What stops it (to's directory is
// not there, to is taken, p changed) leaves p as it is.
func (r *Receiver) moveLanded(p, to string) error {
	h := r.Held.Add(p, to)
	defer r.Held.Done(h, p, to)
	pd, pn := split(p)
	td, tn := split(to)
	pfd, err := beneath.Open(r.RootFD, pd, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	tfd, err := beneath.Open(r.RootFD, td, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	return r.Index.Update(func(tx *index.Tx) error {
		if same, err := tx.Unchanged(r.RootFD, p, false); err != nil || !same {
			return fmt.Errorf("%q is not as the run left it", p)
		}
		if err := renameNoReplace(pfd, pn, tfd, tn); err != nil {
			return err
		}
		if err := tx.Move(p, to); err != nil {
			return err
		}
		return tx.Record(r.RootFD, to) // the rename moved its ctime
	})
}

// movedAwaySince reports whether a replayed rename or removal applied at
// or after since took p, or a directory above it, away here (movedAway).
func (r *Receiver) movedAwaySince(p string, since time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for q := p; q != "."; q, _ = split(q) {
		if at, ok := r.movedAway[q]; ok && !at.Before(since) {
			return true
		}
	}
	return false
}

// unapplied returns one of after, the indices of the renames that the
// request's i-th follows from (peer.Rename.After), that was not applied
// (or is not an earlier rename of the request).
func unapplied(after []int, i int, out []peer.RenameResult) (int, bool) {
	for _, k := range after {
		if k < 0 || k >= i || !out[k].Applied {
			return k, true
		}
	}
	return 0, false
}

// appliedRename is a rename done on disk, with the old name's lstat from
// before it; its names are held until it is recorded.
type appliedRename struct {
	old, new string
	// removed: a replayed removal of old (or a name cleared, clearName);
	// made: a directory made at new for a replayed rename of one the
	// writer made and had not sent.
	removed, made bool
	hold          detect.Hold // of old and new in Receiver.Held
	// seq is the replayed rename's place in its sender's log
	// (peer.Rename.Seq).
	seq uint64
	// parents are the directories made here for new (makeParents): the
	// index records them with the request, or their events, read once
	// its hold ends, were this member's own changes, and went back to
	// the writer with this member's times (the stress test).
	parents []string
	st      unix.Stat_t
	dir     bool
	// replaced is the inode of the file or symlink that the rename
	// replaced at new (0 for none): its other names' link count changed.
	replaced uint64
}

// scanAt is what a scan reads to find what this member changed in a:
// a scan reads directories, and a file's is its directory.
func (a appliedRename) scanAt() string {
	if a.dir {
		return a.new
	}
	d, _ := split(a.new)
	return d
}

// nameError says why a replay never renames or removes p here (the root,
// the agent's reserved directory, a path outside the root, one excluded
// here; dir: the writer's object is a directory), or nil.
func (r *Receiver) nameError(p string, dir bool) error {
	switch {
	case p == "." || index.InReserved(p):
		return fmt.Errorf("%q is the root or the agent's reserved directory, never renamed", p)
	case checkPaths([]string{p}) != nil:
		return fmt.Errorf("%q is not a path below the data root", p)
	case r.Exclude != nil && r.Exclude(p, dir):
		return fmt.Errorf("%q is excluded here", p)
	}
	return nil
}

// apply checks one rename and does it on disk, its names held.
func (r *Receiver) apply(oldRel, newRel string, rn peer.Rename, before []appliedRename) (appliedRename, error) {
	a := appliedRename{old: oldRel, new: newRel}
	if err := r.checkOld(&a, rn, before); err != nil {
		return a, err
	}
	var nst unix.Stat_t
	replace, err := r.checkNew(&a, &nst, rn, before)
	if err != nil {
		return a, err
	}
	return a, r.renameOnDisk(&a, &nst, replace, rn.MakeParents)
}

// checkOld checks a's names, and its old name's object against rn's (the
// writer's, as it was before the rename; before: the renames of the
// request applied already). It fills in a's lstat of the old name and
// whether it is a directory.
func (r *Receiver) checkOld(a *appliedRename, rn peer.Rename, before []appliedRename) error {
	for _, p := range []string{a.old, a.new} {
		if err := r.nameError(p, rn.Dir); err != nil {
			return err
		}
	}
	if err := beneath.Lstat(r.RootFD, a.old, &a.st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("old name: %w (%w)", err, errOldGone)
		}
		return fmt.Errorf("old name: %w", err)
	}
	a.dir = a.st.Mode&unix.S_IFMT == unix.S_IFDIR
	if a.dir != rn.Dir {
		return errOtherType
	}
	if !a.dir && (a.st.Size != rn.Size || (rn.MtimeNs != 0 && a.st.Mtim.Nano() != rn.MtimeNs)) && !(rn.AsHeld && r.heldAsIs(recordedAt(a.old, before), &a.st)) {
		return errors.New("old file differs here")
	}
	return nil
}

// checkNew checks what a's new name holds here, its lstat into nst: free,
// or, for a replayed rename (rn.AsHeld), something the rename replaces
// (true; a.replaced is the inode of a file or symlink it replaces).
func (r *Receiver) checkNew(a *appliedRename, nst *unix.Stat_t, rn peer.Rename, before []appliedRename) (bool, error) {
	switch err := beneath.Lstat(r.RootFD, a.new, nst); {
	case err == nil && rn.AsHeld && nst.Mode&unix.S_IFMT != unix.S_IFDIR:
		// A replayed rename onto a file or symlink: replaced. A file's
		// rename over one (an atomic write's) replaced it there; a
		// directory's could not have, so what the name holds here left it
		// there before, by a rename the log lacks (a swap's first, read
		// after the swap's others). Refused, the object stayed at its
		// old name and the later renames of the log carried it away (an
		// extra file, or tree, under a renamed tree: stress seeds 21, 37).
		// The new name's content would replace what is here anyway, as a
		// refused rename's does; not what was changed here since.
		if r.pending(a.new) {
			return false, fmt.Errorf("new name: %w", errNewerHere)
		}
		if !r.heldAsIs(recordedAt(a.new, before), nst) {
			return false, fmt.Errorf("new name: %w", errNewerHere) // not journaled yet
		}
		a.replaced = uint64(nst.Ino)
		return true, nil
	case err == nil && rn.AsHeld && a.dir && nst.Mode&unix.S_IFMT == unix.S_IFDIR:
		// A replayed rename of a directory onto a directory: rename(2)
		// replaces an empty one, as it did for the writer, and refuses
		// (ENOTEMPTY) one that holds anything here.
		return true, nil
	case err == nil:
		return false, errors.New("new name exists here")
	case !errors.Is(err, unix.ENOENT):
		// Only a name that is not there is free: one that cannot be
		// looked at may be a file (renameat replaces it on FreeBSD).
		return false, fmt.Errorf("new name: %w", err)
	}
	return false, nil
}

// renameOnDisk renames a's old name to its new one, making the new name's
// parents first where the writer asked (makeParents), and holds both names
// (a.hold) once it has both directories open; a failed rename releases the
// hold. nst is the new name's lstat (checkNew) where replace.
func (r *Receiver) renameOnDisk(a *appliedRename, nst *unix.Stat_t, replace, makeParents bool) error {
	oldRel, newRel := a.old, a.new
	oldDir, oldName := split(oldRel)
	newDir, newName := split(newRel)
	if makeParents {
		made, err := r.makeParents(newDir)
		a.parents = made
		if err != nil {
			return fmt.Errorf("new name's directory: %w", err)
		}
	}
	ofd, err := beneath.Open(r.RootFD, oldDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, err := beneath.Open(r.RootFD, newDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("new name's directory: %w", err)
	}
	defer unix.Close(nfd)
	a.hold = r.Held.Add(oldRel, newRel)
	rename := renameNoReplace
	if replace {
		rename = unix.Renameat
	}
	if replace && a.dir && nst.Mode&unix.S_IFMT != unix.S_IFDIR {
		// rename(2) moves a directory onto a directory only.
		if err := unix.Unlinkat(nfd, newName, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			r.Held.Done(a.hold, oldRel, newRel)
			return fmt.Errorf("new name: %w", err)
		}
	}
	if replace && !a.dir && nst.Ino == a.st.Ino && nst.Dev == a.st.Dev {
		// Both names are the same file here (a run put the new name
		// there as a hard link of it before this replay). rename(2)
		// then does nothing and succeeds (POSIX rename; FreeBSD's
		// kern_renameat in sys/kern/vfs_syscalls.c: "links to the same
		// vnode ... nothing to do"), and the old name stayed: read as a
		// create of this member's own, it went to every member, the
		// writer too (stress seed 180, the fifty-first session). The
		// writer's rename left the file at its new name alone: so does
		// removing the old name.
		if err := unix.Unlinkat(ofd, oldName, 0); err != nil {
			r.Held.Done(a.hold, oldRel, newRel)
			return &os.LinkError{Op: "rename", Old: oldRel, New: newRel, Err: err}
		}
		return nil
	}
	if err := rename(ofd, oldName, nfd, newName); err != nil {
		r.Held.Done(a.hold, oldRel, newRel)
		return &os.LinkError{Op: "rename", Old: oldRel, New: newRel, Err: err}
	}
	return nil
}

// recordRenames records the renames of one request, applied here in
// order, and returns where a scan reads what this member changed in them
// (appliedRename.scanAt), and for each why (for the log: the rename, and
// how what it moved differed from the index's entry). The index moves each rename's entries from its
// old name to its new one first (index.Tx.Move), in order, as the disk
// did; then each is recorded where its object is now, which a later
// rename of the request may have moved on (a swap's temporary name, a
// directory renamed again), against those entries. Recorded at its new
// name, a directory gone from there failed the whole commit, and a name
// renamed out of a directory renamed before it matched no entry (the
// stress test).
//
// The new name is the sender's copy only where the index held the old one
// so: what the index held of the old name, before the rename (a file, or
// the directory itself), changed here and not sent yet, even in what the
// sender's size and mtime do not show (chmod, chown, touch -r, cp -p), is
// this member's own change, recorded as an entry nothing matches (mine).
func recordRenames(tx *index.Tx, rootfd int, applied []appliedRename, madeDirs []string) (local, why []string, err error) {
	rec := renameRecord{
		tx:       tx,
		rootfd:   rootfd,
		applied:  applied,
		mine:     make([]bool, len(applied)),
		mineWhy:  make([]string, len(applied)),
		relinked: make(map[uint64]bool),
	}
	for i, a := range applied {
		if err := rec.move(i, a); err != nil {
			return nil, nil, err
		}
	}
	for i, a := range applied {
		if err := rec.recordWhereItIs(i, a); err != nil {
			return nil, nil, err
		}
	}
	for _, a := range applied {
		madeDirs = append(madeDirs, a.parents...)
	}
	for _, p := range madeDirs {
		if err := recordIfThere(tx, rootfd, p); err != nil {
			return nil, nil, err
		}
	}
	return rec.local, rec.why, nil
}

// renameRecord is what recordRenames keeps while it records one request's
// renames in tx: for each applied rename (by its index), whether what it
// moved was this member's own change (mine) and how it differed from the
// index's entry (mineWhy); and what it found, for the log (local, why).
type renameRecord struct {
	tx      *index.Tx
	rootfd  int
	applied []appliedRename
	mine    []bool
	mineWhy []string
	// relinked are the inodes of the files whose ctime (and link count) a
	// rename, removal or replacement of the request moved, the sender's:
	// a later rename of the same file (a swap's last, or a chain's), or
	// of another of its names, finds it as the index held it but for its
	// ctime and link count (index.Entry.LinksMatch), and so does
	// recordTree below a renamed directory. Compared in full, a hard link
	// of a file removed before it was renamed read as this member's
	// change and went back to every peer (rm m; mv h c: stress seed 24,
	// the forty-sixth session); RefreshLinks cannot mend the entry first,
	// as it records the names that are there after the whole request, and
	// the renamed one is not. A file this member changed (mine) is not
	// among them: its later renames compare it in full again, and stay
	// its own.
	relinked   map[uint64]bool
	local, why []string
}

// move is recordRenames' first pass for the i-th rename, a: it decides
// whether what a moved was this member's own (mine), and moves its
// entries from the old name to the new one (index.Tx.Move); a removal's
// entries go.
func (rec *renameRecord) move(i int, a appliedRename) error {
	tx := rec.tx
	if a.removed {
		return rec.removed(a)
	}
	if a.made {
		return nil // recorded where it ends (recordWhereItIs)
	}
	was, ok, err := tx.Get(a.old)
	if err != nil {
		return err
	}
	now := index.FromStat(&a.st)
	switch {
	case !a.dir && rec.relinked[uint64(a.st.Ino)]:
		rec.mine[i] = !ok || !was.LinksMatch(now)
	case a.dir:
		// A directory the index holds no entry for is taken as the
		// sender's: rsync makes a listed path's parents without their
		// own record here (an implied directory), and taken for this
		// member's own, the tree went back to every peer, racing the
		// sender's next changes to it. One the index holds with
		// another inode was made again here (mv d d.old; mkdir d, its
		// events not journaled yet): this member's, as index.same
		// says.
		rec.mine[i] = ok && !was.DirMatches(now)
	default:
		rec.mine[i] = !ok || !was.Matches(now) && !linkedSince(was, now)
	}
	if rec.mine[i] {
		rec.mineWhy[i] = "not indexed"
		if ok {
			rec.mineWhy[i] = was.Diff(now)
		}
	}
	if err := tx.Move(a.old, a.new); err != nil {
		return err
	}
	if a.replaced != 0 {
		// The file it replaced lost a link: its other names' entries
		// are recorded again, or they read as this member's changes
		// (recordTree took one under a renamed tree for such and sent
		// it back: stress seed 22, the forty-first session).
		if err := tx.RefreshLinks(rec.rootfd, a.replaced, ""); err != nil {
			return err
		}
		rec.relinked[a.replaced] = true
	}
	if !a.dir && !rec.mine[i] {
		rec.relinked[uint64(a.st.Ino)] = true // a rename moves the ctime
	}
	return nil
}

// removed deletes the entries of a replayed removal, a.
func (rec *renameRecord) removed(a appliedRename) error {
	if err := rec.tx.Delete(a.old); err != nil {
		return err
	}
	if !a.dir && a.st.Nlink > 1 {
		rec.relinked[uint64(a.st.Ino)] = true
		// Its other names' link count changed (index.Tx.RefreshLinks).
		if err := rec.tx.RefreshLinks(rec.rootfd, uint64(a.st.Ino), ""); err != nil {
			return err
		}
	}
	return nil
}

// recordWhereItIs is recordRenames' second pass for the i-th rename, a: it
// records what a moved where it is after the whole request, against the
// entries move put there, and notes what this member changed in it
// (local, why).
func (rec *renameRecord) recordWhereItIs(i int, a appliedRename) error {
	tx, rootfd := rec.tx, rec.rootfd
	if a.removed {
		return nil
	}
	at := a
	var there bool
	if at.new, there = whereAfter(a.new, rec.applied[i+1:]); !there {
		// A later removal of the request took it (its entries went
		// with it in the first pass).
		return nil
	}
	if a.made {
		return recordIfThere(tx, rootfd, at.new)
	}
	changedHere, reason := rec.mine[i], rec.mineWhy[i]
	switch {
	case at.dir:
		l, err := recordTree(tx, rootfd, at.new, rec.relinked)
		if errors.Is(err, unix.ENOENT) {
			// Removed here since (its entry, moved, stays as it was:
			// the detector reports the removal as this member's).
			l, err = "", nil
		}
		if err != nil {
			return err
		}
		if l != "" && !changedHere {
			changedHere, reason = true, l
		}
	case !rec.mine[i]:
		if err := recordIfThere(tx, rootfd, at.new); err != nil {
			return err
		}
	}
	if rec.mine[i] {
		if err := tx.Put(at.new, index.Entry{Size: -1}); err != nil {
			return err
		}
	}
	if changedHere {
		rec.local = append(rec.local, at.scanAt())
		rec.why = append(rec.why, a.old+" -> "+a.new+": "+reason)
	}
	// A rename moves the inode's ctime: its other names' entries are
	// recorded again (index.Tx.RefreshLinks).
	if !a.dir && a.st.Nlink > 1 {
		if err := tx.RefreshLinks(rootfd, uint64(a.st.Ino), ""); err != nil {
			return err
		}
	}
	return nil
}

// recordIfThere records p, unless it is gone: removed here since the
// request applied it, the entry moved to it stays as it was, and the
// detector reports the removal as this member's. Failing the whole record
// instead left every name of the request unrecorded, and their events
// went out as this member's renames, back to the writer (stress seed 25).
func recordIfThere(tx *index.Tx, rootfd int, p string) error {
	if err := tx.Record(rootfd, p); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// moves returns where a puts p: at or below its old name, p is at or
// below its new name then.
func (a appliedRename) moves(p string) (string, bool) {
	if a.removed || a.made {
		return p, false
	}
	if rest, ok := strings.CutPrefix(p, a.old); ok && (rest == "" || rest[0] == '/') {
		return a.new + rest, true
	}
	return p, false
}

// whereAfter follows p through later, renames applied in their order
// (moves): where they left it, and false when a removal among them took
// it.
func whereAfter(p string, later []appliedRename) (string, bool) {
	for _, l := range later {
		if l.removed && atOrBelowPath(p, l.old) {
			return "", false
		}
		if to, ok := l.moves(p); ok {
			p = to
		}
	}
	return p, true
}

// recordTree records a directory whose entries were moved to it
// (index.Tx.Move) and everything below it. A file that is not as the index
// held it under its old name was made or changed here, and not sent yet:
// it is recorded as an entry nothing matches (local names the first, and
// how it differs, for the log; "" when there is none), so that
// it goes out as this member's own change, not pass for the renamed copy
// of the sender's file. What the index holds below dir that is gone from
// it (a later rename of the request moved its entry already) was removed
// by a run or here since the rename: its entry goes, as the entries under
// the old name went before index.Tx.Move. Left, a run's deletion recorded
// under the old name (the rename moved it first) kept it indexed for
// good, and a full scan took it for a deletion of this member's own.
//
// relinked are the inodes of the sender's files whose ctime and link
// count renames and removals of the request moved (recordRenames): one
// moved into dir by a later rename of the request has its entry moved with
// it and another ctime, and is still the sender's where only its ctime and
// link count differ. Taken for this member's, dir was compared again for
// nothing (stress seed 22). So is another name of a file whose hard link
// the request removed (rm y; mv d e, y a hard link of d/w).
func recordTree(tx *index.Tx, rootfd int, dir string, relinked map[uint64]bool) (local string, err error) {
	if err := tx.Record(rootfd, dir); err != nil {
		return "", err
	}
	here := make(map[string]bool)
	err = eachChildAt(rootfd, dir, func(name string, st *unix.Stat_t) error {
		here[name] = true
		p := index.Join(dir, name)
		var l string
		var err error
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			l, err = recordTree(tx, rootfd, p, relinked)
		} else {
			l, err = recordMoved(tx, p, st, relinked)
		}
		if local == "" {
			local = l
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return local, recordGoneFrom(tx, rootfd, dir, here)
}

// recordMoved records p, found as st in a directory whose entries were
// moved to it (recordTree), as it is where it is the sender's, and
// otherwise as an entry nothing matches. local says how it differs then
// ("" when it is the sender's).
func recordMoved(tx *index.Tx, p string, st *unix.Stat_t, relinked map[uint64]bool) (local string, err error) {
	now := index.FromStat(st)
	e, ok, err := tx.Get(p)
	switch {
	case err != nil:
		return "", err
	case ok && e.Matches(now) && e.Nlink == now.Nlink:
		return "", nil // held as it is (BenchmarkReceiver_RenameTree: 0.67x the time)
	case ok && e.Matches(now), ok && relinked[uint64(st.Ino)] && e.LinksMatch(now), ok && linkedSince(e, now):
		// Its link count, or its ctime by the request's rename or
		// by a link made or removed since it was recorded
		// (linkedSince): recorded as it was compared.
		return "", tx.RecordFound(p, st, nil)
	}
	if err := tx.Put(p, index.Entry{Size: -1}); err != nil {
		return "", err
	}
	if ok {
		return p + " differs in " + e.Diff(now), nil
	}
	return p + " not indexed", nil
}

// recordGoneFrom records the entries the index holds in dir that are not
// among the names here: gone, their entries go (recordTree).
func recordGoneFrom(tx *index.Tx, rootfd int, dir string, here map[string]bool) error {
	var gone []string
	err := tx.Children(dir, func(name string, _ index.Entry) error {
		if !here[name] {
			gone = append(gone, index.Join(dir, name))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range gone {
		if err := tx.Record(rootfd, p); err != nil {
			return err
		}
	}
	return nil
}

// linkedSince reports whether now, a regular file that a replayed rename
// moved, differs from was, its entry, as links of the file made, removed
// or renamed since it was recorded leave it: in its ctime and link count
// alone (index.Entry.LinksOnly), or, while it has other names, in its
// ctime alone (one name made and another removed, by a peer's runs with
// rsync -H and their deletions, or another name renamed: the link count
// is back where it was). Nothing of the file is this member's then.
// Taken for its own, the receiver sent its copy back to every member,
// and an older version replaced the writer's newer one there (the stress
// test, the forty-seventh session: six files of one run of seed 25
// differed in ctime and links, eleven in five seeds in ctime alone). A
// write here that keeps size and mtime, to a file with other names,
// between the record and the rename, is taken for the links so; one to a
// file of one name still counts.
func linkedSince(was, now index.Entry) bool {
	return was.LinksOnly(now) || now.Mode.IsRegular() && now.Nlink > 1 && was.LinksMatch(now)
}

func split(rel string) (dir, name string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return ".", rel
}

// makeParents makes dir and its missing parents beneath the root.
func (r *Receiver) makeParents(dir string) (made []string, _ error) {
	if dir == "" || dir == "." {
		return nil, nil
	}
	var st unix.Stat_t
	switch err := beneath.Lstat(r.RootFD, dir, &st); {
	case err == nil:
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, fmt.Errorf("%q is not a directory here", dir)
		}
		return nil, nil
	case !errors.Is(err, unix.ENOENT):
		return nil, err
	}
	parentDir, name := split(dir)
	made, err := r.makeParents(parentDir)
	if err != nil {
		return made, err
	}
	pfd, err := beneath.Open(r.RootFD, parentDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return made, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return made, fmt.Errorf("mkdir %q: %w", dir, err)
	}
	return append(made, dir), nil
}

// heldAsIs reports whether the index holds rel as st is (content, mode,
// owner and inode; ctime and link count aside).
func (r *Receiver) heldAsIs(rel string, st *unix.Stat_t) bool {
	ok := false
	_ = r.Index.View(func(tx *index.Tx) error {
		was, found, err := tx.Get(rel)
		ok = err == nil && found && was.LinksMatch(index.FromStat(st))
		return nil
	})
	return ok
}

// errNewerHere refuses a replayed removal or replacement of a name this
// member changed and has not sent yet (Receiver.Pending).
var errNewerHere = errors.New("changed here and not sent yet: kept")

// maxNewerBelow bounds the pending paths below a directory that newerHere
// looks at; past it, the directory is kept.
const maxNewerBelow = 1024

// newerHere reports whether a replayed removal from from, refused because
// a change of this member's own is pending at or below its name
// (errNewerHere), would take a version that from never had, so that its
// path entry must not delete the name either (peer.RenameResult.Newer). It
// would where a change of this member's is pending for from at or below
// the name (a change pending for other members alone, from had: its run
// confirmed it, and whatever from did after is no older), and the name
// holds here a file or symlink that is not what from removed (its size
// and mtime, as from's index held them; not known, it is taken to
// differ), or a directory with such a pending file or symlink below it.
// Modify beats delete: that change goes to from by content. What is gone
// here, or a directory below which only removals and directories are
// pending, keeps nothing. A file here that is the one from removed is no
// newer: from removed this member's version, which it had received, in
// the moment before its run was confirmed.
//
// A directory's check cannot tell a file this member sent from that
// landed there and is not confirmed yet (a removal within milliseconds of
// its arrival): that directory is kept, and comes back on from by the
// compare. Found by the sixty-fourth session's stress test (Kill9 seed
// 282) and shown by TestStandalone_RemovalCrossingAWriteKeepsTheWrite.
func (r *Receiver) newerHere(from string, rn peer.Rename) bool {
	old := string(rn.Old)
	var st unix.Stat_t
	if r.PendingFor == nil || checkPaths([]string{old}) != nil || beneath.Lstat(r.RootFD, old, &st) != nil {
		return false
	}
	mine := r.PendingFor(from, old, maxNewerBelow)
	if len(mine) == 0 {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return !r.removedHere(old, &st, rn)
	}
	if len(mine) >= maxNewerBelow {
		return true
	}
	for _, p := range mine {
		var pst unix.Stat_t
		if beneath.Lstat(r.RootFD, p, &pst) == nil && pst.Mode&unix.S_IFMT != unix.S_IFDIR {
			return true
		}
	}
	return false
}

// errUnrecorded refuses a replayed removal of what this member holds in
// another state than its index records and than the remover removed.
var errUnrecorded = errors.New("changed here since it was last recorded, and not what the remover removed: kept")

// keepsUnrecorded is a replayed removal's check of the file or symlink its
// name holds here, where the remover said what it removed (peer.Rename:
// a file's size and mtime): one that is neither as this member's index
// holds it nor what the remover removed, and that no peer's run is
// putting here (detect.Incoming.CarriedByOther: held by another run than
// own, the one whose announcement carries the replay's names), is a write of this member's own not
// journaled yet: the file is still open for writing (a file a writer holds
// is journaled once it is let go, however long that takes), or was closed
// a moment ago. Removed, that write was lost; kept (the caller refuses the
// removal, peer.RenameResult.Newer), it goes to the remover by content once
// journaled.
//
// Not a file a peer's run holds here: a restarted member's copy that a run
// cut by its restart put there (restored, Receiver.Restore) differs from
// its index, and is most often the remover's older version; kept, it came
// back on every member. Nor a directory: its tree goes whole, as before,
// and a file being written below a removed directory is lost with it.
// Both came from the stress test (Kill9 seed 371 of the sixty-fifth
// session, a first version that kept trees not all as recorded: n1,
// restarted, kept the empty directories of n3's rm -r d5, and they came
// back on n3).
func (r *Receiver) keepsUnrecorded(rn peer.Rename, before []appliedRename, own []detect.Hold) bool {
	old := string(rn.Old)
	var st unix.Stat_t
	if rn.Dir || r.KeepDeletes || r.nameError(old, false) != nil || beneath.Lstat(r.RootFD, old, &st) != nil || r.Held.CarriedByOther(old, own) {
		return false
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR || r.removedHere(old, &st, rn) {
		return false
	}
	return !r.heldAsIs(recordedAt(old, before), &st)
}

// errWrittenBelow refuses a replayed removal of a directory below which this
// member holds a file or symlink that it wrote and has not recorded yet.
var errWrittenBelow = errors.New("a file below it was changed here since it was last recorded: kept, with the directories above it; what else was below it was removed")

// keepsWrittenBelow is a replayed removal's check of the directory its
// name holds here, the directory's counterpart of keepsUnrecorded: a file
// or symlink below it that is not as this member's index holds it, and
// that no peer's run is putting here (detect.Incoming.CarriedByOther, own
// left out), is a write of this member's own not journaled yet (a file
// still open for writing, or closed a moment ago). Removed with the
// directory, that write was lost: a log file a process here was
// appending to went, under its writer, with an rm -r of its directory
// on a peer (TestStandalone_RemovalOfADirectoryWithAFileBeingWrittenKeepsTheWrite).
// Such files stay, with the directories above them, and kept is true (the
// caller refuses the removal, peer.RenameResult.Newer: the remover's path
// entry does not delete the directory either); what else is below the
// directory goes (clear), and cleared is what went. The writes go to the
// remover by content once journaled.
//
// The remover's own removals of the files it held below the directory
// came first in its log, each checked on its own (keepsUnrecorded), so
// what is left here is what the remover did not have or did not log (a
// removal found by a scan logs only the directory). Unlike
// keepsUnrecorded it needs no state from the remover: what the remover
// removed, file by file, went before. Not kept: a file a peer's run holds
// here (a restarted member's copy that a run cut by its restart put
// there: the stress test's Kill9 seed 371 of the sixty-fifth session),
// nor an excluded file (never recorded, never sent: it held the
// directory here for good), nor an empty directory, nor one made here and not recorded; what is
// below the directory is all as recorded in the common case, and the
// tree then goes whole.
func (r *Receiver) keepsWrittenBelow(rel string, before []appliedRename, own []detect.Hold) (cleared []appliedRename, kept bool) {
	var st unix.Stat_t
	if r.KeepDeletes || r.nameError(rel, true) != nil || beneath.Lstat(r.RootFD, rel, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, false
	}
	written := func(p string, st *unix.Stat_t) bool {
		return r.nameError(p, false) == nil && !r.Held.CarriedByOther(p, own) && !r.heldAsIs(recordedAt(p, before), st)
	}
	if r.treeGoes(rel, written) {
		return nil, false
	}
	return r.clear(rel, &st, written, true), true
}

// removedHere reports whether rel, a file or symlink here (st), is what the
// remover of a replayed removal removed (rn: its size and mtime, as the
// remover's index held them). A directory removed, or no state given (a
// sender that predates it, a placeholder), is not.
func (r *Receiver) removedHere(rel string, st *unix.Stat_t, rn peer.Rename) bool {
	switch {
	case rn.Dir || rn.MtimeNs == 0:
		return false
	case st.Mode&unix.S_IFMT == unix.S_IFREG:
		return r.holds(rel, st, peer.FileState{Regular: true, Size: rn.Size, MtimeNs: rn.MtimeNs})
	}
	// A symlink (its size is its target's length), or a special file.
	return st.Size == rn.Size && st.Mtim.Nano() == rn.MtimeNs
}

// pending reports Receiver.Pending(rel), false without it.
func (r *Receiver) pending(rel string) bool { return r.Pending != nil && r.Pending(rel) }

// errOtherType refuses a rename whose old name holds here an object of
// another type than the writer's.
var errOtherType = errors.New("old name is of another type here")

// errOldGone marks a rename refused because its old name is not here.
var errOldGone = errors.New("not here")

// clearName removes what rel holds here for a replayed rename that was
// refused, where the writer's history says the name no longer holds it:
// the new name of one whose old name is not here (the writer made the
// object and renamed it before it was sent: an atomic write's temporary
// file; its rename replaced whatever the new name held), or the old name
// of one refused otherwise (the object left it). What the name held comes
// by content where the writer has it. Left, the later renames of the log
// carried this member's object along (an extra file under a renamed
// tree: stress seed 23, an atomic write's rename over h3, then mv h3
// elsewhere, then a rename of h3's directory; seed 25, a directory whose
// rename was refused, carried into another by a swap).
//
// Only what is as the index holds it goes (a local change goes out, and
// its content decides), and never what this member has pending. A new
// name's directory goes only empty (rename(2) replaced no other for the
// writer); with tree, an old name's directory goes with everything below
// it that may go, and what may not stays, with the directories above it.
// It returns what it removed, each the top of what went.
func (r *Receiver) clearName(rel string, before []appliedRename, tree bool) []appliedRename {
	var st unix.Stat_t
	if checkPaths([]string{rel}) != nil || beneath.Lstat(r.RootFD, rel, &st) != nil {
		return nil
	}
	return r.clear(rel, &st, r.changedHere(before), tree)
}

// stays reports whether rel, a file or symlink here (st), stays where the
// tree around it is cleared (Receiver.clear).
type stays func(rel string, st *unix.Stat_t) bool

// changedHere is clearName's stays: what is not as the index holds it
// (where the renames applied before left it), or is pending.
func (r *Receiver) changedHere(before []appliedRename) stays {
	return func(rel string, st *unix.Stat_t) bool {
		return r.pending(rel) || !r.heldAsIs(recordedAt(rel, before), st)
	}
}

// clear is clearName's, for rel, which is st here; what keep says stays,
// stays.
func (r *Receiver) clear(rel string, st *unix.Stat_t, keep stays, tree bool) []appliedRename {
	a := appliedRename{old: rel, removed: true, st: *st, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}
	switch {
	case !a.dir && keep(rel, st):
		return nil
	case !a.dir:
		return r.unlink(a)
	case !tree && r.pending(rel):
		return nil
	case !tree:
		return r.unlink(a) // an empty one only
	case !r.pending(rel) && r.treeGoes(rel, keep):
		a.hold = r.Held.Add(rel)
		if err := r.removeReplayed(rel); err != nil {
			r.Held.Done(a.hold, rel)
			return nil
		}
		return []appliedRename{a}
	}
	// Some of it stays: what may go below it goes, one by one.
	var out []appliedRename
	_ = r.eachChild(rel, func(name string, cst *unix.Stat_t) {
		out = append(out, r.clear(rel+"/"+name, cst, keep, true)...)
	})
	return append(out, r.unlink(a)...) // empty now, or it stays
}

// unlink removes a.old, a file or an empty directory, held; it returns a,
// or nothing where it could not.
func (r *Receiver) unlink(a appliedRename) []appliedRename {
	d, name := split(a.old)
	dfd, err := beneath.Open(r.RootFD, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(dfd)
	a.hold = r.Held.Add(a.old)
	flags := 0
	if a.dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(dfd, name, flags); err != nil {
		r.Held.Done(a.hold, a.old)
		return nil
	}
	return []appliedRename{a}
}

// treeGoes reports whether no file or symlink below the directory rel
// stays (keep).
func (r *Receiver) treeGoes(rel string, keep stays) bool {
	ok := true
	err := r.eachChild(rel, func(name string, st *unix.Stat_t) {
		p := rel + "/" + name
		switch {
		case !ok:
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			ok = r.treeGoes(p, keep)
		default:
			ok = !keep(p, st)
		}
	})
	return ok && err == nil
}

// eachChild calls fn with each name in the directory rel and its lstat.
func (r *Receiver) eachChild(rel string, fn func(name string, st *unix.Stat_t)) error {
	return eachChildAt(r.RootFD, rel, func(name string, st *unix.Stat_t) error {
		fn(name, st)
		return nil
	})
}

// eachChildAt calls fn with each name in the directory rel, opened
// beneath rootfd, and its lstat (taken in the open directory: one system
// call a name), until fn fails. A name gone before its lstat is skipped.
func eachChildAt(rootfd int, rel string, fn func(name string, st *unix.Stat_t) error) error {
	fd, err := beneath.Open(rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return err
		}
		if err := fn(n, &st); err != nil {
			return err
		}
	}
	return nil
}

// recordedAt is where the index holds p, which the renames applied before
// in the same request (not recorded yet) may have moved.
func recordedAt(p string, before []appliedRename) string {
	for i := len(before) - 1; i >= 0; i-- {
		a := before[i]
		if p == a.new {
			p = a.old
		} else if strings.HasPrefix(p, a.new+"/") {
			p = a.old + p[len(a.new):]
		}
	}
	return p
}

// removeReplayed removes rel, a tree all of it, for a replayed removal;
// the caller holds rel, and records the removal (recordRenames).
func (r *Receiver) removeReplayed(rel string) error {
	if rel == "." || index.CheckPath(rel) != nil {
		return fmt.Errorf("%q is not removed here", rel)
	}
	dir, name := split(rel)
	dfd, err := beneath.Open(r.RootFD, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return beneath.RemoveAllAt(dfd, name)
}

// paths are the names a holds.
func (a appliedRename) paths() []string {
	switch {
	case a.removed:
		return []string{a.old}
	case a.made:
		return []string{a.new}
	}
	return []string{a.old, a.new}
}

func atOrBelowPath(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
