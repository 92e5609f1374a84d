package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// Record journals changes for every peer and records each path's current
// lstat (resolved beneath rootfd) in the index, in one transaction that is
// durable when Record returns. Rescan changes are not journaled, nor a
// change (other than a rename) whose path the index already holds as it is
// now: another change of the path, journaled after the detector compared
// this one with the index, carried it (the events of one write, read in
// two parts: a file's creation and then its close), or the receiver
// recorded it (index.Tx.RecordChanged, by the detector's own comparison:
// the detector passes a change when its path differed from the index,
// which may have caught up since). A local write or creation of a file
// whose entry was recorded racily (Journal.racy) is journaled all the same.
func (j *Journal) Record(rootfd int, peers []string, changes []change.Change) error {
	now := time.Now()
	window := j.RacyWindow
	var b *batchRecord
	err := j.idx.Batch(func(tx *bolt.Tx) error {
		var err error
		if b, err = newBatchRecord(j, tx, rootfd, peers, changes, now, window); err != nil { // afresh: Batch may call again
			return err
		}
		// b.queue grows while it is walked: the other names of
		// hard-linked files that changes changed (otherNames).
		for i := 0; i < len(b.queue); i++ {
			if err := b.change(i); err != nil {
				return err
			}
		}
		return b.root.Put(keySeq, binary.BigEndian.AppendUint64(nil, b.seq))
	})
	if err != nil {
		return fmt.Errorf("journal %d changes: %w", len(changes), err)
	}
	if j.Unreadable != nil {
		for _, u := range b.skipped {
			j.Unreadable(u.path, u.err)
		}
	}
	j.markRacy(now, b.marks)
	j.counted(b.seq, b.delta)
	if j.Logged != nil && len(b.logs) > 0 {
		j.Logged(b.logs)
	}
	return nil
}

// batchRecord is one Record's work within its transaction.
type batchRecord struct {
	j       *Journal
	rootfd  int
	peers   []string
	now     time.Time
	window  time.Duration // Journal.RacyWindow
	root    *bolt.Bucket
	itx     *index.Tx
	buckets []peerBuckets // each peer's, looked up once for the batch
	seq     uint64        // the last sequence number taken
	// queue holds the changes, and the other names of hard-linked files
	// they changed (otherNames), appended as they are found.
	queue []change.Change
	// renamedFrom says where each rename of the batch takes its object
	// from, last first: a rename whose new name a later one of the batch
	// takes on (recordOldName, movesOn).
	renamedFrom map[string]int
	linked      map[string]bool // names otherNames found already
	delta       map[string]PeerStats
	marks       []racyMark
	skipped     []unreadable
	logs        []LoggedRename
}

// unreadable is a change's path that could not be looked at, and why.
type unreadable struct {
	path string
	err  error
}

func newBatchRecord(j *Journal, tx *bolt.Tx, rootfd int, peers []string, changes []change.Change, now time.Time, window time.Duration) (*batchRecord, error) {
	root := tx.Bucket(bucketJournal)
	b := &batchRecord{
		j: j, rootfd: rootfd, peers: peers, now: now, window: window,
		root: root, itx: index.Within(tx), seq: storedSeq(root),
		buckets:     make([]peerBuckets, len(peers)),
		queue:       changes[:len(changes):len(changes)],
		renamedFrom: make(map[string]int),
		linked:      make(map[string]bool),
		delta:       make(map[string]PeerStats),
	}
	for i, p := range peers {
		var err error
		if b.buckets[i], err = openPeerBuckets(tx, p); err != nil {
			return nil, err
		}
	}
	for i, c := range changes {
		if c.Op.Has(change.Rename) && c.OldPath != "" {
			b.renamedFrom[c.OldPath] = i
		}
	}
	return b, nil
}

// change records the i-th change of the queue in the index and journals
// it for every peer (see Record).
func (b *batchRecord) change(i int) error {
	c := b.queue[i]
	if c.Op.Has(change.Rescan) {
		return nil
	}
	itx := b.itx
	// A directory removed with trees that pending renames moved
	// into it: their names, read before the record drops them.
	var renamedGone []string
	if c.Op&(change.Remove|change.Rmdir) != 0 {
		var err error
		if renamedGone, err = renamedTreesIn(itx, b.buckets, c.Path); err != nil {
			return err
		}
	}
	e, was, exists, changed, err := itx.RecordChanged(b.rootfd, c.Path, c.Op.Has(change.Attrib))
	if errors.Is(err, index.ErrUnreadable) {
		// One path that cannot be looked at must not fail the
		// changes of the others (and stop the group).
		b.skipped = append(b.skipped, unreadable{c.Path, err})
		return nil
	}
	if err != nil {
		return err
	}
	b.queueOtherNames(c, e, was, exists, changed)
	if !changed && !c.Op.Has(change.Rename) && !(exists && b.j.stillRacy(c, e)) {
		return nil // the index holds it as it is (see Record)
	}
	if exists && changed && e.Mode.IsRegular() && e.Nlink > 1 {
		if err := b.linkedNames(c, e); err != nil {
			return err
		}
	}
	b.mark(c, e, exists)
	return b.journalChange(i, c, e, was, exists, renamedGone)
}

// linkedNames queues the other names of e, the hard-linked file that c
// changed, and records those whose ctime and link count alone moved.
func (b *batchRecord) linkedNames(c change.Change, e index.Entry) error {
	b.linked[c.Path] = true
	b.queue = append(b.queue, otherNames(b.itx, b.rootfd, c, e, b.linked)...)
	// The other names whose ctime and link count alone moved
	// (ln here): recorded as they are, not journaled. Left,
	// a name read after the link was removed again (its
	// count back, its ctime moved) as changed in its ctime
	// alone, which a receiver cannot tell from a write that
	// kept size and mtime: a member that had written them
	// took such a file, when it replayed a later writer's
	// rename of it, for its own change (the stress test,
	// seed 74, the forty-ninth session, where the link was
	// made and removed before either was recorded: that
	// case is still read so).
	return b.itx.RefreshLinks(b.rootfd, e.Ino, c.Path)
}

// journalChange journals c, the i-th change of the queue, for every peer, with
// what the index holds at its path now (e, exists) and held before (was),
// and the removals that come with it: renamedGone, the names of trees that
// pending renames moved into a directory c removes.
func (b *batchRecord) journalChange(i int, c change.Change, e, was index.Entry, exists bool, renamedGone []string) error {
	renamed := c.Op.Has(change.Rename) && c.OldPath != ""
	var goneBelow []string
	var oldEntry index.Entry // the old name's, before the rename is recorded
	oldHeld := false
	if renamed {
		var err error
		if oldEntry, oldHeld, goneBelow, err = b.oldName(c, i); err != nil {
			return err
		}
	}
	size := int64(0)
	if exists && e.Mode.IsRegular() {
		size = e.Size
	}
	b.seq++
	// The rename log's record of this change, if any: a removal,
	// or a rename (which takes its place where a change is both).
	//
	// A path gone here that the index held (other than a rename's
	// new name) is a removal, whatever change found it gone: a
	// scan's find or a write read after rm had it out of the
	// index, and the removal's own event, read later, found
	// nothing there and was dropped (change). Left to the path
	// entry alone, which goes after the renames logged after
	// it, the removal found nothing on the peer once a rename
	// of a directory above it had moved the file on, and the
	// peer kept it (the stress test, seed 50, the forty-ninth
	// session).
	var logged *LoggedRename
	if !exists {
		logged = removalOf(c.Path, b.seq, was)
	}
	if renamed {
		lr := renameOf(c, b.seq, e, exists, oldEntry, oldHeld)
		logged = &lr
		if !exists {
			if err := holdGoneNew(b.itx, b.rootfd, c.Path); err != nil {
				return err
			}
		}
	}
	if logged != nil {
		if err := b.log(*logged); err != nil {
			return err
		}
	}
	if err := b.put(index.Key(c.Path), c, b.seq, size); err != nil {
		return err
	}
	// What is pending at and below the old name goes behind the
	// rename, and the old name is removed (behindRename).
	if renamed {
		if err := b.putBehindRename(c.OldPath); err != nil {
			return err
		}
	}
	// Paths of the renamed tree gone before the rename was
	// recorded (mv d e; rm e/x, or rm d/x read as e/x): the
	// peer holds them once it applies the rename. Journaled
	// after the rename, so planned with or after it. And the
	// names of trees that pending renames moved into a
	// directory removed now (mv c D/D11; mkdir c; rm -r D):
	// a peer that never gets such a rename keeps the tree
	// under its old name, a directory here again, and the
	// sender deletes these names there; dropped from the
	// index with D, nothing named them (the stress test).
	//
	// The rename's own (not the removed directory's) go into the
	// rename log too, in order: a later rename of a directory
	// above them (mv d e; rm -r e/x; mv e f) leaves their path
	// entries where they are (behindRename), and the peer,
	// which applies the renames first, found nothing there and
	// kept f/x (the stress test, seed 25, the forty-third
	// session). Replayed between the two renames, the removal
	// finds e/x.
	return b.removeGone(goneBelow, renamedGone, exists)
}

// oldName reads what the index holds at the old name of c, the i-th
// change of the queue and a rename, and settles it (recordOldName): gone
// are the paths of the renamed tree gone already.
func (b *batchRecord) oldName(c change.Change, i int) (old index.Entry, held bool, gone []string, err error) {
	if old, held, err = b.itx.Get(c.OldPath); err != nil {
		return index.Entry{}, false, nil, err
	}
	gone, err = recordOldName(b.itx, b.rootfd, c.OldPath, c.Path, movedOnLater(b.renamedFrom, c.Path, i))
	return old, held, gone, err
}

// putBehindRename puts what is pending at and below old, a rename's old
// name, behind the rename for every peer (behindRename).
func (b *batchRecord) putBehindRename(old string) error {
	return b.eachPeer(func(pb peerBuckets) (PeerStats, error) { return behindRename(pb, old, &b.seq, b.now) })
}

// eachPeer calls f with every peer's buckets and adds what f changed there
// to that peer's stats.
func (b *batchRecord) eachPeer(f func(pb peerBuckets) (PeerStats, error)) error {
	for i, p := range b.peers {
		d, err := f(b.buckets[i])
		if err != nil {
			return err
		}
		b.delta[p] = b.delta[p].plus(d)
	}
	return nil
}

// queueOtherNames queues the other names of a hard-linked file that c
// wrote (or chmodded) through a name gone or replaced since: e (exists) is
// what the name holds now, was what the index held there, changed whether
// they differ.
func (b *batchRecord) queueOtherNames(c change.Change, e, was index.Entry, exists, changed bool) {
	if c.WrittenIno != 0 && (!exists || e.Ino != c.WrittenIno) {
		// Written through a name gone since: the file's other
		// names hold the write (change.Change.WrittenIno).
		w := c
		w.Op = change.Write
		b.queue = append(b.queue, otherNames(b.itx, b.rootfd, w, index.Entry{Ino: c.WrittenIno}, b.linked)...)
	} else if changed && c.Op&(change.Write|change.Attrib) != 0 && was.Mode.IsRegular() && was.Nlink > 1 && (!exists || e.Ino != was.Ino) {
		// Written (or chmodded) through a name that was still
		// there when the source read the event, and gone or
		// replaced by now (rm, mv): the index's entry of that
		// name, as it was, names the file, whose other names hold
		// the change. Left, nothing named them, and a peer whose
		// run did not catch the name while it lasted kept their
		// old content for good (the stress test, seed 261 of the
		// fifty-second session). otherNames journals only those
		// that changed.
		b.queue = append(b.queue, otherNames(b.itx, b.rootfd, c, was, b.linked)...)
	}
}

// mark notes c's path for the racy window (Journal.markRacy): e (exists)
// is what it holds now.
func (b *batchRecord) mark(c change.Change, e index.Entry, exists bool) {
	if b.window <= 0 {
		return
	}
	m := racyMark{path: c.Path}
	if exists && e.Mode.IsRegular() {
		m.ctime, m.racy = e.Ctime.UnixNano(), b.now.Sub(e.Ctime) < b.window
	}
	b.marks = append(b.marks, m)
}

// removeGone journals the removal of every path of goneBelow (a renamed
// tree's paths gone before the rename was recorded), each into the rename
// log too, and where the change's path is gone (!exists) of those of
// renamedGone after them, which the rename log does not take.
func (b *batchRecord) removeGone(goneBelow, renamedGone []string, exists bool) error {
	logGone := len(goneBelow)
	if !exists {
		goneBelow = append(goneBelow, renamedGone...)
	}
	for n, gone := range goneBelow {
		b.seq++
		if n < logGone {
			if err := b.log(LoggedRename{Seq: b.seq, Old: gone}); err != nil {
				return err
			}
		}
		if err := b.put(index.Key(gone), change.Change{Path: gone, Op: change.Remove}, b.seq, 0); err != nil {
			return err
		}
	}
	return nil
}

// renameOf returns the rename log's record of c, a rename recorded with
// the sequence number seq: e (exists) is what the new name holds now, and
// oldEntry (oldHeld) what the index held at the old name.
//
// Logged whether or not the new name holds the object
// now: the source saw it there, and a rename on (mv a b;
// mv b c, read late) has its own record after this one.
// Left out, the peer's object stayed at the old name and
// the later renames carried it along (stress seed 21).
// The object is the new name's entry where it is still
// there, else the old name's as the index held it (mv d
// t; mv t e, read after both: t is gone, and a rename
// logged as a file's was refused for a directory there).
func renameOf(c change.Change, seq uint64, e index.Entry, exists bool, oldEntry index.Entry, oldHeld bool) LoggedRename {
	lr := LoggedRename{Seq: seq, Old: c.OldPath, New: c.Path, Dir: c.Op.Has(change.Subtree)}
	obj, known := e, exists
	if oldHeld && !oldEntry.IsPlaceholder() && (!exists || e.Ino != oldEntry.Ino) {
		// Gone from the new name since, or another object
		// there since (the source reports both as the
		// rename they were). Not a placeholder's, which
		// holds no state: a directory's rename out of a
		// directory renamed here (a Moved entry) was logged
		// as a file's of size -2, every peer refused it for
		// its type, and the tree went again whole.
		obj, known = oldEntry, true
	}
	if known {
		lr.Dir = obj.Mode.IsDir()
	}
	if known && (obj.Mode.IsRegular() || obj.Mode&fs.ModeSymlink != 0) {
		// A symlink's too (its size is its target's
		// length): without them, every peer found its
		// symlink differing from the writer's and refused
		// the rename unless its index held the symlink as
		// it was, and a peer whose index was behind kept
		// the symlink at its old name (stress seed 502).
		lr.Size, lr.MtimeNs = obj.Size, obj.Mtime.UnixNano()
	}
	return lr
}

// log appends lr to every peer's rename log.
func (b *batchRecord) log(lr LoggedRename) error {
	b.logs = append(b.logs, lr)
	v := lr.marshal()
	for i := range b.peers {
		if err := b.buckets[i].renames.Put(binary.BigEndian.AppendUint64(nil, lr.Seq), v); err != nil {
			return err
		}
	}
	return nil
}

// put merges c into every peer's entry for its path (key), with the
// sequence number seq and the file's size.
func (b *batchRecord) put(key []byte, c change.Change, seq uint64, size int64) error {
	return b.eachPeer(func(pb peerBuckets) (PeerStats, error) { return put(pb, key, c, seq, size, b.now) })
}
