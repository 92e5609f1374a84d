// Package journal is the crash-safe record of what every peer of a group
// still needs from this member, kept in the bbolt database that holds the
// index so that both commit in one transaction.
//
// Record journals a batch of ready changes for every peer and records each
// path's current lstat in the index, durably, before it returns: after a
// crash at any moment, a change is either in the journal, or the index
// still holds the path's previous state and the start-up scan (a stat-only
// compare against the index) finds it again. Nothing unchanged is sent
// again, because what was journaled is in the index.
//
// Entries are kept per peer twice: by path (one entry per path, merging
// later changes) and by sequence number (oldest first, for fair batching and
// lag). Done removes an entry only when no later change touched its path.
//
// # Caveats
//
// The journal says that a path needs sending, not what to send: the sender
// reads the file as it is when the run starts (lstat decides between send
// and delete), and re-checks it after the run.
package journal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// ErrUnknownPeer is returned for a peer the journal has no buckets for.
var ErrUnknownPeer = errors.New("unknown peer")

var bucketJournal = []byte("journal")

// Entry is what one peer needs for one path.
type Entry struct {
	// Path is root-relative.
	Path string
	// Op is every op journaled for the path since it was last confirmed.
	Op change.Op
	// Seq is the sequence number of the latest change to the path; Done
	// keeps an entry whose Seq changed while it was sent.
	Seq uint64
	// Order is the sequence number of the first unconfirmed change: entries
	// are sent oldest first, and a path changed again keeps its place.
	Order uint64
	// Since is when the oldest unconfirmed change to the path was journaled.
	Since time.Time
	// Size is the file's size when journaled (for pending bytes).
	Size int64
	// Version is reserved for multi-master version data.
	Version []byte
}

// Journal holds the pending entries of every peer.
//
// Its methods are safe for concurrent use. bbolt runs one write
// transaction at a time; mu guards only the counts and the sequence
// number below, which a commit updates after it is durable, so that a
// sender that asks for them does not wait for another's commit (a
// sender's loop waited 3.5 ms at the median for the start of a lone
// file's run while the others' commits held the lock, measured; 0.03 ms
// without). Record and Done commit through the index's Batch: what the
// senders confirm while a change is journaled goes in one commit with it
// (on 200 single files, the writer's agent and its rsync clients took
// 3.99 against 4.25 CPU-s, the machine 7.48 against 7.91, medians of 5
// interleaved runs).
type Journal struct {
	db  *bolt.DB
	idx *index.Index // its Batch commits Record and Done
	id  string       // ID

	// RacyWindow is how close to its ctime an entry must be recorded to
	// be racy (see racy): about twice the filesystem's timestamp tick
	// (index.TimestampTick). Zero turns the rule off, where every write
	// gets a new ctime. Set it before use.
	RacyWindow time.Duration
	// Unreadable, when set, is told of every change that Record left out
	// because its path could not be looked at (an I/O error, a descriptor
	// limit): the index keeps what it held, so a later scan finds the
	// change again. Called after the commit.
	Unreadable func(path string, err error)
	// Logged, when set, is told of the renames and removals Record logged
	// (the rename log, in order). Called after the commit.
	Logged func([]LoggedRename)

	mu    sync.Mutex
	stats map[string]*PeerStats
	seq   uint64 // the last sequence number committed
	// racy holds the regular files whose entry was recorded within
	// RacyWindow of their ctime, with that ctime (ns): a write of the same
	// size within the same timestamp tick, after the lstat that made the
	// entry, leaves size, mtime and ctime as recorded, and only its event
	// says that it happened. While the entry is the one recorded so (same
	// ctime), a change of the path is journaled even though the index
	// holds it as it is (Record, Racy); journaled again with an entry
	// recorded later than the window, the path leaves the set, and so it
	// does racyHold after its ctime (an event of a write in that tick has
	// been read by then: the coalescer holds one for 30 s at most). This is
	// git's "racily clean" problem (Documentation/technical/racy-git.txt);
	// FreeBSD stamps files at 1/HZ by default (vfs.timestamp_precision),
	// Linux at a jiffy where the filesystem has no multigrain timestamps.
	racy       map[string]int64
	racyPruned time.Time
}

// racyHold is how long after its ctime a racy entry stays racy.
const racyHold = time.Minute

// racyPruneAt is the size of the racy set past which expired entries are
// dropped, at most once a second.
const racyPruneAt = 4096

// racyMark is what a commit learnt of a path for the racy set.
type racyMark struct {
	path  string
	ctime int64
	racy  bool
}

// Racy reports whether c is a local write or creation of a file whose
// entry may hide a write of the same size in the same timestamp tick (see
// Journal.racy): it must not be dropped as already held by the index, and
// Record decides by the entry (stillRacy).
func (j *Journal) Racy(c change.Change) bool {
	_, ok := j.racyCtime(c)
	return ok
}

// stillRacy reports whether c is such a change and e is still the entry
// recorded racily for its path.
func (j *Journal) stillRacy(c change.Change, e index.Entry) bool {
	ct, ok := j.racyCtime(c)
	return ok && ct == e.Ctime.UnixNano()
}

// racyCtime returns the ctime of the racy entry of c's path, when c is a
// local write or creation and the entry has not expired.
func (j *Journal) racyCtime(c change.Change) (int64, bool) {
	if c.Echo || c.Op&(change.Write|change.Create) == 0 {
		return 0, false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	ct, ok := j.racy[c.Path]
	return ct, ok && time.Since(time.Unix(0, ct)) < racyHold
}

// markRacy applies a commit's marks to the racy set.
func (j *Journal) markRacy(now time.Time, marks []racyMark) {
	if len(marks) == 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, m := range marks {
		switch {
		case m.racy:
			if j.racy == nil {
				j.racy = make(map[string]int64)
			}
			j.racy[m.path] = m.ctime
		default:
			delete(j.racy, m.path)
		}
	}
	if len(j.racy) > racyPruneAt && now.Sub(j.racyPruned) > time.Second {
		j.racyPruned = now
		expired := now.Add(-racyHold).UnixNano()
		for p, ct := range j.racy {
			if ct < expired {
				delete(j.racy, p)
			}
		}
	}
}

// PeerStats is what is pending for one peer.
type PeerStats struct {
	Files, Bytes int64
}

// Open returns the journal stored in idx's database, with buckets for peers
// (a departed peer's entries are dropped).
func Open(idx *index.Index, peers []string) (*Journal, error) {
	j := &Journal{db: idx.DB(), idx: idx, stats: make(map[string]*PeerStats)}
	err := j.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketJournal)
		if err != nil {
			return err
		}
		keep := make(map[string]bool)
		for _, p := range peers {
			keep[p] = true
			pb, err := root.CreateBucketIfNotExists([]byte(p))
			if err != nil {
				return err
			}
			for _, name := range [][]byte{bucketByPath, bucketBySeq, bucketRenames} {
				if _, err := pb.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
		}
		var gone [][]byte
		_ = root.ForEachBucket(func(k []byte) error {
			if !keep[string(k)] {
				gone = append(gone, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range gone {
			if err := root.DeleteBucket(k); err != nil {
				return err
			}
		}
		j.seq = storedSeq(root)
		if j.id, err = journalID(root); err != nil {
			return err
		}
		for _, p := range peers {
			st := &PeerStats{}
			err := root.Bucket([]byte(p)).Bucket(bucketByPath).ForEach(func(_, v []byte) error {
				e, err := unmarshal(v)
				st.Files++
				st.Bytes += e.Size
				return err
			})
			if err != nil {
				return fmt.Errorf("journal of %s: %w", p, err)
			}
			j.stats[p] = st
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return j, nil
}

var (
	bucketByPath = []byte("path")
	bucketBySeq  = []byte("seq")
	// bucketRenames is the rename log: every rename made here, by its
	// sequence number, until the peer was asked for it (RenameLog).
	bucketRenames = []byte("renames")
	// keySeq holds the last sequence number; '#' cannot start a peer
	// (node) name, so it never collides with a peer's bucket.
	keySeq = []byte("#seq")
	// keyID holds the journal's random identity (Journal.ID).
	keyID = []byte("#id")
)

// holdGoneNew keeps the index's place for p, a rename's new name gone
// here when the rename is logged (mv s d/m; rm d/m, read after both), and
// for the directories above it that are gone too and that the index does
// not hold (made and removed before the record: mkdir q; mv s q/m; rm -r
// q): Moved entries, which match nothing. A peer replays the rename, and
// holds the object there (it makes the directories: MakeParents); the
// removal of each, read later, finds the entry and is logged after the
// rename (Record), and so does a scan's compare after a restart, where
// the removal's event was lost. A directory renamed in between takes the
// entry along (mv s d/m; mv d e; rm e/m: its removal comes as e/m), and a
// later rename of the name itself moves it on. Dropped, the removal found
// nothing in the index and the peer kept the file or directory, which a
// later rename of a directory above it carried beyond any deletion of its
// path (the stress test: seed 32 of the forty-eighth session, and seed 38
// for a made directory).
//
// p itself may hold an entry already: a directory's rename moves the
// tree's entries to the new name first (recordOldName), and the
// directories above it are looked at all the same. Stopped at p, a
// directory made only to rename a tree into and removed once the tree
// had moved on (mkdir q; mv d q/m; mv q/m t; rmdir q, read together) was
// never logged removed, and every peer, which made q to replay the first
// rename, kept it: a stray that later renames of directories above it
// carried along (the stress test, seed 506 of the fifty-fifth session).
func holdGoneNew(itx *index.Tx, rootfd int, p string) error {
	for d := p; d != "." && d != "/"; d = path.Dir(d) {
		_, held, err := itx.Get(d)
		if err != nil {
			return err
		}
		if held && d == p {
			continue
		}
		var st unix.Stat_t
		if held || !index.IsGone(beneath.Lstat(rootfd, d, &st)) {
			return nil
		}
		if err := itx.Put(d, index.Moved()); err != nil {
			return err
		}
	}
	return nil
}

// maxOtherNames bounds the other names of one hard-linked file that a
// change of it journals (otherNames).
const maxOtherNames = 1000

// otherNames returns the changes to journal for the other names of e, the
// hard-linked regular file that c changed (just recorded): each that the
// index holds, exists here as the same inode, and differs from its index
// entry in more than its ctime and link count. A write or chmod through
// one name changes every name, and the detector reports only the one
// written: journaled alone, the others were sent only while that name
// lasted (sender.addLinks looks them up from it), and a file written
// through a name that was then removed or renamed away kept its old
// content and mode on the peers under every other name (the stress test).
// A name made or removed (ln, rm) moves only the others' ctime and link
// count, and journals nothing for them. Names already in the batch
// (seen) are not returned again.
func otherNames(itx *index.Tx, rootfd int, c change.Change, e index.Entry, seen map[string]bool) []change.Change {
	op := c.Op & (change.Write | change.Attrib)
	if op == 0 {
		op = change.Attrib
	}
	var out []change.Change
	_ = itx.OtherNames(rootfd, e.Ino, c.Path, maxOtherNames, func(n string, was, now index.Entry) error {
		// Replaced (another inode): its own event says so.
		if seen[n] || now.Ino != e.Ino || was.LinksMatch(now) {
			return nil
		}
		seen[n] = true
		out = append(out, change.Change{Path: n, Op: op, Finished: c.Finished, Time: c.Time})
		return nil
	})
	return out
}

// storedSeq is the last sequence number the journal's root bucket holds.
// journalID returns the journal's identity, made at its first open: a
// peer replaying its rename log keeps the last sequence number it applied
// with it, and a journal made anew (its sequence numbers start again) is
// told apart by it.
func journalID(root *bolt.Bucket) (string, error) {
	if v := root.Get(keyID); len(v) > 0 {
		return string(v), nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("journal identity: %w", err)
	}
	id := hex.EncodeToString(b)
	return id, root.Put(keyID, []byte(id))
}

// ID is the journal's random identity (see journalID).
func (j *Journal) ID() string { return j.id }

func storedSeq(root *bolt.Bucket) uint64 {
	if v := root.Get(keySeq); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// openPeerBuckets returns peer's buckets within tx.
func openPeerBuckets(tx *bolt.Tx, peer string) (peerBuckets, error) {
	pb, err := peerBucket(tx, peer)
	if err != nil {
		return peerBuckets{}, err
	}
	byPath := pb.Bucket(bucketByPath)
	return peerBuckets{byPath: byPath, bySeq: pb.Bucket(bucketBySeq), renames: pb.Bucket(bucketRenames), paths: byPath.Cursor()}, nil
}

// plus is s and d added up.
func (s PeerStats) plus(d PeerStats) PeerStats {
	return PeerStats{Files: s.Files + d.Files, Bytes: s.Bytes + d.Bytes}
}

// counted takes in a committed transaction's last sequence number (0 when
// it took none) and what it changed of each peer's pending counts.
func (j *Journal) counted(last uint64, delta map[string]PeerStats) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq = max(j.seq, last)
	for p, d := range delta {
		*j.stats[p] = j.stats[p].plus(d)
	}
}

// movedOnLater reports whether a rename after the i-th change of a batch
// takes p, or a directory above it, on (renamedFrom: where each rename of
// the batch takes its object from, the last one's index).
func movedOnLater(renamedFrom map[string]int, p string, i int) bool {
	for {
		if k, ok := renamedFrom[p]; ok && k > i {
			return true
		}
		j := strings.LastIndexByte(p, '/')
		if j < 0 {
			return false
		}
		p = p[:j]
	}
}

// recordOldName settles the index's entry of a rename's old name (of a
// rename to newName). When
// the old name exists again as another object than the index holds (`mv a
// a~` and a new `a` written, as editors save and logs rotate; `mv d d.old;
// mkdir d`), that entry is not recorded from the new object: recorded so,
// the new object's own change, which may come after this rename, would
// compare as already held and never go. Left out of the index (a file),
// or marked as matching nothing (a directory), that change is journaled
// when it is ready, once its writer is done, and not before (it may still
// be being written now). Below a directory, the entries of the renamed
// tree are dropped, and those of objects made in the new directory whose
// changes came first (the same inode there now) kept. When the index
// already holds the object that is there (its own change came first), it
// stays.
//
// A directory renamed away, its old name gone or another object now,
// leaves its tree's entries under the new name as Moved ones (moveTree),
// and recordOldName returns the paths of that tree gone already, for the
// caller to journal as removals. movesOn says that a later rename of the
// same batch takes newName, or a directory above it, on (mv d e; mv e f,
// or mv d p/e; mv p q, read together): a tree gone from both names then
// moves to newName without being journaled as removed under old.
func recordOldName(itx *index.Tx, rootfd int, old, newName string, movesOn bool) (gone []string, err error) {
	prev, had, err := itx.Get(old)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	lerr := beneath.Lstat(rootfd, old, &st)
	oldGone := lerr != nil && index.IsGone(lerr)
	switch {
	case !had:
		return nil, itx.Delete(old)
	case lerr != nil && !oldGone:
		// Cannot be looked at now (an I/O error, a descriptor limit):
		// the index keeps what it held, and a scan compares it later.
		// Dropped, a tree there would be sent again whole.
		return nil, nil
	case prev.IsMoved() && !itx.HasBelow(old):
		// A placeholder and nothing below it (a name below a directory
		// renamed here, or a rename's gone new name: holdGoneNew): it
		// holds no state to move on. Moved onto the new name, it
		// replaced the entry recorded there just before (mv s d/m; mv
		// d/m x, read after both), which then matched nothing and went
		// again; where the new name is gone, the rename puts its own
		// (holdGoneNew). So where another object holds the old name now
		// (a swap: mv x t; mv d/m x; mv t d/m): x matched nothing, and a
		// peer's rename of x replayed here took it for this member's
		// own change and kept it (stress seed 768, the fifty-seventh
		// session). That object is recorded by its own change.
		return nil, itx.Delete(old)
	}
	var now index.Entry
	if !oldGone {
		now = index.FromStat(&st)
		if prev.Ino == now.Ino && prev.Mode.Type() == now.Mode.Type() {
			return nil, nil
		}
	}
	// The old name gone, or another object now (mv d d.old; mkdir d; rm
	// d.old/x: the removal needs d.old/x's entry as much as when d is
	// gone). An entry of the new d's own (its change came first) is copied
	// only where the same name exists below d.old; where it does not, its
	// removal there goes to the peer, which holds d.old/that name only if
	// the renamed tree had it.
	if prev.MayHaveChildren() {
		var nst unix.Stat_t
		switch {
		case beneath.Lstat(rootfd, newName, &nst) == nil && nst.Mode&unix.S_IFMT == unix.S_IFDIR:
			if gone, err = moveTree(itx, rootfd, old, newName); err != nil {
				return nil, err
			}
		case oldGone || !now.IsDir():
			return treeGoneFromBoth(itx, old, newName, oldGone, movesOn)
		default:
			return dirsSwapped(itx, rootfd, old, newName, prev)
		}
	}
	if oldGone || !now.IsDir() {
		return gone, itx.Delete(old)
	}
	return dirMadeAgain(itx, rootfd, old, gone)
}

// treeGoneFromBoth settles a renamed tree gone here from both its names,
// or whose old name another object than a directory holds now.
func treeGoneFromBoth(itx *index.Tx, old, newName string, oldGone, movesOn bool) (gone []string, err error) {
	// The renamed tree is gone from both names here (mv d e; rm -r e, or mv
	// d e; mv e f, read after both; or a swap of d with a file or symlink:
	// mv d t; mv s d; mv t s). Unless a later rename of the batch takes
	// newName on (movesOn), or another object holds the old name now (its
	// push replaces the peer's d, --force): its names' removals, under the
	// old name. The peer never gets the rename, and its d goes with the old
	// name's deletion; but where d is made again before that (mkdir d, read
	// later), only these remove the old tree's names below it there.
	if oldGone && !movesOn {
		err = itx.Children(old, func(name string, _ index.Entry) error {
			gone = append(gone, index.Join(old, name))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Either way its entries go to the new name, for a later rename (of this
	// batch, or of one read later) to move on and compare where the tree is
	// (moveTree). Dropped, a name removed there before the record (mv d e;
	// mv e f; rm f/x) was journaled under d only, where the peers, which
	// apply both renames first, hold nothing: they kept f/x (stress seeds 29
	// and 32, the forty-second session). Where no rename takes them on, the
	// new name's removal (rm -r e) or a scan drops them. Deleted with a
	// swap's old name (its new object's entry), they were lost the same way:
	// stress seed 21, the forty-third session, a symlink removed below a
	// tree swapped with a symlink stayed on the peers.
	return gone, itx.Move(old, newName)
}

// dirsSwapped settles a renamed tree whose old name another directory
// holds now, its new name none.
func dirsSwapped(itx *index.Tx, rootfd int, old, newName string, prev index.Entry) ([]string, error) {
	// Another directory holds the old name now, and the new name is none (a
	// swap of two directories: mv d t; mv e d; mv t e): the renamed tree's
	// entries, those that are not the new directory's own, go to the new
	// name as the tree went, for the rename that takes it on (of this batch
	// or a later one) to move on and compare. Deleted as stale, a name
	// removed below the tree's last name was journaled nowhere, and the
	// peers kept it (the forty-third session). The names the new directory
	// lacks are journaled removed under the old name, as dirMadeAgain's are.
	stale, missing, err := staleBelow(itx, rootfd, old)
	if err != nil {
		return nil, err
	}
	for _, p := range stale {
		if err := itx.Move(p, newName+strings.TrimPrefix(p, old)); err != nil {
			return nil, err
		}
	}
	if err := itx.Put(newName, prev); err != nil {
		return nil, err
	}
	return missing, itx.Put(old, index.Entry{Size: -1})
}

// dirMadeAgain settles the old name of a renamed tree that is a directory
// again here (mv d d.old; mkdir d), where the tree went to the new name
// (gone: what moveTree found gone of it).
func dirMadeAgain(itx *index.Tx, rootfd int, old string, gone []string) ([]string, error) {
	stale, missing, err := staleBelow(itx, rootfd, old)
	if err != nil {
		return nil, err
	}
	for _, p := range stale {
		if err := itx.Delete(p); err != nil {
			return nil, err
		}
	}
	// The renamed tree's names that the new directory does not hold: a peer
	// that does not get the rename (it refuses it, or it is never asked, its
	// new name gone here too: mv d e; mkdir d; rm -r e) keeps them under the
	// old name, which its push (--dirs) leaves as they are. Their removals
	// go to it (where it applied the rename, they find nothing). Dropped
	// without them, the members ended apart for good.
	return append(gone, missing...), itx.Put(old, index.Entry{Size: -1})
}

// staleBelow returns the entries indexed below dir, a directory made again
// under a renamed one's name, that are not what is there now (stale: the
// renamed tree's), and of those the top-most that nothing here holds
// (missing). Below a stale entry that is a directory here again, its own
// entries are looked at too; the stale entries are returned top-most only
// (Delete takes those below).
func staleBelow(itx *index.Tx, rootfd int, dir string) (stale, missing []string, err error) {
	type child struct {
		path string
		ino  uint64
	}
	var children []child
	err = itx.Children(dir, func(name string, e index.Entry) error {
		children = append(children, child{index.Join(dir, name), e.Ino})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, c := range children {
		var cst unix.Stat_t
		lerr := beneath.Lstat(rootfd, c.path, &cst)
		switch {
		case lerr == nil && cst.Ino == c.ino:
			continue
		case errors.Is(lerr, unix.ENOENT):
			missing = append(missing, c.path)
		case lerr == nil && cst.Mode&unix.S_IFMT == unix.S_IFDIR:
			_, m, err := staleBelow(itx, rootfd, c.path)
			if err != nil {
				return nil, nil, err
			}
			missing = append(missing, m...)
		}
		stale = append(stale, c.path)
	}
	return stale, missing, nil
}

// moveTree records the entries indexed below old, a directory renamed to
// newName, under newName as Moved entries, where newName is a directory
// now and the index holds nothing for the new path yet (a change there,
// or the scan of the new tree, came first). Without them, a path removed
// after the rename and before that scan recorded it (mv d e; rm e/x)
// matched no entry, and its removal never went, though the peer holds
// e/x once it applies the rename. It returns the new paths gone already
// (only the top-most of a gone tree), which no later event or scan
// reports. The entries under old are left for the caller to delete.
func moveTree(itx *index.Tx, rootfd int, old, newName string) (gone []string, err error) {
	var st unix.Stat_t
	if beneath.Lstat(rootfd, newName, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, nil
	}
	type moved struct {
		path     string
		children bool
	}
	var walk func(dir, to string) error
	walk = func(dir, to string) error {
		var below []moved
		err := itx.Children(dir, func(name string, e index.Entry) error {
			below = append(below, moved{name, e.MayHaveChildren()})
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range below {
			p := index.Join(to, m.path)
			var cst unix.Stat_t
			if err := beneath.Lstat(rootfd, p, &cst); index.IsGone(err) {
				gone = append(gone, p)
				continue
			}
			if _, ok, err := itx.Get(p); err != nil {
				return err
			} else if !ok {
				if err := itx.Put(p, index.Moved()); err != nil {
					return err
				}
			}
			if m.children && cst.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := walk(index.Join(dir, m.path), p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(old, newName); err != nil {
		return nil, fmt.Errorf("move the entries below %q to %q: %w", old, newName, err)
	}
	return gone, nil
}

// behindRename moves the entries pending for one peer at or below old, a
// name just renamed to newName, behind the rename in the journal's order
// (each gets the next sequence number, as its first and last change),
// with old's own as a removal (unless a scan found it; journaled where
// old has no entry, or only a rename's onto it). Renames among them keep
// their place.
//
// rm d/x; mv d e; mkdir d; echo > d/x: d/x's entry, its first change
// before the rename, went before it, into the peer's old d, which the
// rename then took to e/x. Behind the rename, d/x goes into the new d.
//
// Removals below old are not journaled again under newName: the rename
// log has the peer apply them before the rename, and one it refused (its
// own newer change there) is its to keep where the rename takes it
// (until the fortieth session they were, and such a change was deleted
// under the new name: mv d/f g; mv d e, with the peer's own d/f).
func behindRename(pb peerBuckets, old string, seq *uint64, now time.Time) (PeerStats, error) {
	var d PeerStats
	var below []Entry
	c := pb.byPath.Cursor()
	if v := index.SeekExact(c, index.Key(old)); v != nil {
		e, err := unmarshal(v)
		if err != nil {
			return d, err
		}
		below = append(below, e)
	}
	err := eachBelow(c, old, func(_, v []byte) (bool, error) {
		e, err := unmarshal(v)
		below = append(below, e)
		return true, err
	})
	if err != nil {
		return d, err
	}
	oldHeld := false // old's own entry moved behind, as a removal
	for _, e := range below {
		if e.Op.Has(change.Rename) {
			continue
		}
		oldHeld = oldHeld || e.Path == old
		key := index.Key(e.Path)
		if err := pb.bySeq.Delete(seqKey(e.Order)); err != nil {
			return d, err
		}
		*seq++
		e.Seq, e.Order = *seq, *seq
		if e.Path == old && !e.Op.Has(change.Found) {
			// Its object left with the rename: what is pending for the
			// name is that object's, and the name holds nothing now. A
			// removal, so that a later rename of a directory above it
			// removes it under the new name too (below): mv d/x m; mv d
			// e, with d/x's write sent before, left the peer e/x (the
			// stress test, seed 22). Not one a scan found (Found): a
			// removal there ended a scan's entry that renames had moved
			// on (random seed 119).
			e.Op |= change.Remove
		}
		if err := pb.bySeq.Put(seqKey(e.Order), key); err != nil {
			return d, err
		}
		if err := pb.byPath.Put(key, e.marshal()); err != nil {
			return d, err
		}
	}
	if !oldHeld {
		// The old name's removal, for a peer that does not apply the
		// rename (it refused it: another object there): the rename log
		// takes the object on where the peer applies it, and the name is
		// deleted where not.
		*seq++
		dd, err := put(pb, index.Key(old), change.Change{Path: old, Op: change.Remove}, *seq, 0, now)
		if err != nil {
			return d, err
		}
		d = d.plus(dd)
	}
	return d, nil
}

// eachBelow calls fn with the key and value of each entry of c's bucket
// (keyed by index.Key) below the directory dir, not dir itself, until fn
// reports no more or an error. Keys are "dir\x00name": dir's children,
// then the deeper ones ("dir/sub\x00name").
func eachBelow(c *bolt.Cursor, dir string, fn func(k, v []byte) (more bool, err error)) error {
	for _, prefix := range [][]byte{append([]byte(dir), 0), []byte(dir + "/")} {
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if more, err := fn(k, v); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// peerBuckets are one peer's journal buckets within a transaction, and a
// cursor on byPath for get (re-positioned by every Seek, so it stays valid
// across Puts).
type peerBuckets struct {
	byPath, bySeq, renames *bolt.Bucket
	paths                  *bolt.Cursor
}

// put merges c (whose path's key is key) into the peer's entry for its
// path and returns how the peer's pending counts changed.
func put(pb peerBuckets, key []byte, c change.Change, seq uint64, size int64, now time.Time) (PeerStats, error) {
	byPath, bySeq := pb.byPath, pb.bySeq
	e := Entry{Path: c.Path, Op: c.Op, Since: now}
	var d PeerStats
	if v := index.SeekExact(pb.paths, key); v != nil {
		old, err := unmarshal(v)
		if err != nil {
			return d, fmt.Errorf("journal entry %q: %w", c.Path, err)
		}
		e.Order = old.Order
		e.Op = old.Op.Merge(c.Op)
		e.Since = old.Since
		d.Bytes -= old.Size
	} else {
		d.Files++
		e.Order = seq
		if err := bySeq.Put(seqKey(seq), key); err != nil {
			return d, err
		}
	}
	e.Seq, e.Size = seq, size
	d.Bytes += size
	return d, byPath.Put(key, e.marshal())
}

// Again journals paths for peers with op, without comparing them with the
// index: what those peers hold of them is known, or feared, to differ from
// what the index holds (a directory whose times a run set from an older
// file list, after a newer run had set them: see sender.impliedDirs,
// change.Attrib; a file that holds a peer's version after two members
// wrote it at once, which other peers may hold this member's earlier
// version of: sender.Sender.Crossed, change.Write). Like Record, durable
// when it returns.
func (j *Journal) Again(peers []string, op change.Op, paths []string) error {
	if len(paths) == 0 || len(peers) == 0 {
		return nil
	}
	now := time.Now()
	var delta map[string]PeerStats
	var last uint64
	err := j.idx.Batch(func(tx *bolt.Tx) error {
		delta = make(map[string]PeerStats) // afresh: Batch may call again
		root := tx.Bucket(bucketJournal)
		seq := storedSeq(root)
		itx := index.Within(tx)
		// Each peer's buckets, looked up once (as in Record).
		buckets := make([]peerBuckets, len(peers))
		for i, peer := range peers {
			var err error
			if buckets[i], err = openPeerBuckets(tx, peer); err != nil {
				return err
			}
		}
		for _, p := range paths {
			size := int64(0)
			// A placeholder (index.Entry.IsPlaceholder: no state, a
			// Size below 0, its Mode 0 reading as a regular file's) has
			// no size: counted, a run's bytes went below 0, and the
			// agent died adding them to a Prometheus counter ("counter
			// cannot decrease in value": the stress test, seed 21, the
			// forty-eighth session).
			if e, ok, err := itx.Get(p); err != nil {
				return err
			} else if ok && !e.IsPlaceholder() && e.Mode.IsRegular() {
				size = e.Size
			}
			seq++
			for i, peer := range peers {
				dd, err := put(buckets[i], index.Key(p), change.Change{Path: p, Op: op}, seq, size, now)
				if err != nil {
					return err
				}
				delta[peer] = delta[peer].plus(dd)
			}
		}
		last = seq
		return root.Put(keySeq, binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return fmt.Errorf("journal %d paths again for %v: %w", len(paths), peers, err)
	}
	j.counted(last, delta)
	return nil
}

// Recorded reports whether the index holds path as it is now
// (index.Tx.Unchanged, the detector's own test for an echo, with a
// directory's times left out, as for any change but an attribute one;
// the sender asks it of files and of old names): every change
// of it that the detector found is journaled, or it is what a peer sent
// (or deleted) and the receiver recorded. A path that is gone and has no
// entry is as the index holds it.
func (j *Journal) Recorded(rootfd int, path string) (bool, error) {
	var recorded bool
	err := j.idx.View(func(tx *index.Tx) error {
		var err error
		recorded, err = tx.Unchanged(rootfd, path, false)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("is %q as the index holds it: %w", path, err)
	}
	return recorded, nil
}

// Next returns up to n of peer's entries, oldest first, skipping those for
// which skip is true (paths already in flight to the peer, or held).
func (j *Journal) Next(peer string, n int, skip func(Entry) bool) ([]Entry, error) {
	// Sized for what is pending (a burst's batch grew by doubling).
	out := make([]Entry, 0, max(0, min(int64(n), j.Stats(peer).Files)))
	err := j.db.View(func(tx *bolt.Tx) error {
		pb, err := peerBucket(tx, peer)
		if err != nil {
			return err
		}
		byPath := pb.Bucket(bucketByPath).Cursor()
		c := pb.Bucket(bucketBySeq).Cursor()
		for k, key := c.First(); k != nil && len(out) < n; k, key = c.Next() {
			v := index.SeekExact(byPath, key)
			if v == nil {
				continue
			}
			e, err := unmarshal(v)
			if err != nil {
				return err
			}
			if skip != nil && skip(e) {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// indexedBelow appends to out the paths the index holds below dir, until
// out holds limit paths.
func indexedBelow(itx *index.Tx, dir string, limit int, out []string) ([]string, error) {
	var dirs []string
	err := itx.Children(dir, func(name string, e index.Entry) error {
		if len(out) >= limit {
			return nil
		}
		p := index.Join(dir, name)
		out = append(out, p)
		if e.MayHaveChildren() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	for _, sub := range dirs {
		if out, err = indexedBelow(itx, sub, limit, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// maxRenamedTreeNames bounds the names renamedTreesIn reads.
const maxRenamedTreeNames = 100_000

// renamedTreesIn returns the paths the index holds below the new names of
// the renames pending for any peer (buckets) at or below dir, a path
// being removed, when the index holds a directory there (a file's removal
// costs one lookup). A peer that never gets such a rename keeps its tree
// under the old name; once dir's removal is recorded, the index no longer
// names it.
func renamedTreesIn(itx *index.Tx, buckets []peerBuckets, dir string) ([]string, error) {
	if old, ok, err := itx.Get(dir); err != nil || !ok || !old.MayHaveChildren() {
		return nil, err
	}
	news := make(map[string]bool)
	note := func(v []byte) error {
		e, err := unmarshal(v)
		if err == nil && e.Op.Has(change.Rename) {
			news[e.Path] = true
		}
		return err
	}
	for _, pb := range buckets {
		if v := pb.byPath.Get(index.Key(dir)); v != nil {
			if err := note(v); err != nil {
				return nil, err
			}
		}
		err := eachBelow(pb.byPath.Cursor(), dir, func(_, v []byte) (bool, error) { return true, note(v) })
		if err != nil {
			return nil, err
		}
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(news)) {
		var err error
		if out, err = indexedBelow(itx, n, maxRenamedTreeNames, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Done removes the entries that a run confirmed on peer, each only if its
// path was not journaled again since (its Seq is unchanged).
func (j *Journal) Done(peer string, done []Entry) error {
	var d PeerStats
	err := j.idx.Batch(func(tx *bolt.Tx) error {
		d = PeerStats{} // afresh: Batch may call again
		pb, err := peerBucket(tx, peer)
		if err != nil {
			return err
		}
		byPath, bySeq := pb.Bucket(bucketByPath).Cursor(), pb.Bucket(bucketBySeq).Cursor()
		for _, e := range done {
			key := index.Key(e.Path)
			v := index.SeekExact(byPath, key)
			if v == nil {
				continue
			}
			cur, err := unmarshal(v)
			if err != nil {
				return err
			}
			if cur.Seq != e.Seq {
				continue // changed again while it was sent
			}
			if err := byPath.Delete(); err != nil { // the entry get found
				return err
			}
			if index.SeekExact(bySeq, seqKey(cur.Order)) != nil {
				if err := bySeq.Delete(); err != nil {
					return err
				}
			}
			d.Files--
			d.Bytes -= cur.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("confirm %d entries for %s: %w", len(done), peer, err)
	}
	j.counted(0, map[string]PeerStats{peer: d})
	return nil
}

// Stats returns what is pending for peer.
func (j *Journal) Stats(peer string) PeerStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	if s, ok := j.stats[peer]; ok {
		return *s
	}
	return PeerStats{}
}

// peerBucket returns peer's bucket in the journal.
func peerBucket(tx *bolt.Tx, peer string) (*bolt.Bucket, error) {
	pb := tx.Bucket(bucketJournal).Bucket([]byte(peer))
	if pb == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, peer)
	}
	return pb, nil
}

// Entry returns peer's pending entry for path, if there is one.
func (j *Journal) Entry(peer, path string) (Entry, bool, error) {
	var e Entry
	var ok bool
	err := j.db.View(func(tx *bolt.Tx) error {
		pb, err := peerBucket(tx, peer)
		if err != nil {
			return err
		}
		v := pb.Bucket(bucketByPath).Get(index.Key(path))
		if v == nil {
			return nil
		}
		e, err = unmarshal(v)
		ok = err == nil
		return err
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("journal entry %q for %s: %w", path, peer, err)
	}
	return e, ok, nil
}

// ReplacedOn reports whether the non-directory at path here is one on peer
// too: nothing of path is pending for peer, and the index holds it as a
// non-directory, as lstat beneath rootfd shows it now. Its change from a
// directory was then journaled and confirmed on peer (a later write to it
// may still be on its way, but the peer holds no directory there). A path
// still being made here (a file whose close has not come) is not: the
// index still holds what was there before.
func (j *Journal) ReplacedOn(rootfd int, peer, path string) (bool, error) {
	var replaced bool
	err := j.db.View(func(tx *bolt.Tx) error {
		pb, err := peerBucket(tx, peer)
		if err != nil {
			return err
		}
		if pb.Bucket(bucketByPath).Get(index.Key(path)) != nil {
			return nil
		}
		e, ok, err := index.Within(tx).Get(path)
		// A placeholder says nothing of the type the peer holds: its
		// Mode is not the path's.
		if err != nil || !ok || e.IsDir() || e.IsPlaceholder() {
			return err
		}
		var st unix.Stat_t
		if err := beneath.Lstat(rootfd, path, &st); err != nil {
			return nil // gone, or below a non-directory itself
		}
		replaced = index.FromStat(&st).Mode.Type() == e.Mode.Type()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("is %q a non-directory on %s: %w", path, peer, err)
	}
	return replaced, nil
}

// Seq returns the sequence number of the last change journaled: how many
// changes Record has journaled, ever, in this database. Senders compare
// two readings to tell whether changes arrived in between.
func (j *Journal) Seq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq
}

// Oldest returns when the oldest pending entry for peer was journaled, and
// false when nothing is pending.
func (j *Journal) Oldest(peer string) (time.Time, bool) {
	es, err := j.Next(peer, 1, nil)
	if err != nil || len(es) == 0 {
		return time.Time{}, false
	}
	return es[0].Since, true
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
