package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	bolt "go.etcd.io/bbolt"

	"github.com/jailsync/jailsync/nodeagent/index"
)

// LoggedRename is one rename made here, as the rename log keeps it for a
// peer until the peer was asked for it: the path entries keep one entry
// per path, which loses renames through names reused in between (swaps
// of swaps, docs/design.md); the log keeps every rename in the order it
// was made, temporary names and all, for the peer to replay.
type LoggedRename struct {
	Seq uint64
	// New is empty for a removal of Old.
	Old, New string
	Dir      bool
	// Size and MtimeNs are a file's (or symlink's) when the rename was
	// recorded; a removal's are what the index held of what it removed
	// (removalOf), zero where not known.
	Size    int64
	MtimeNs int64
}

// removalOf is the rename log's record of the removal of path, which the
// index held as was: whether it was a directory, and a file's or
// symlink's size and mtime. A peer that has a change of its own of the
// path pending compares them with what it holds there: a removal does not
// take a version that the remover never had (receiver.Receiver.Replay,
// peer.RenameResult.Newer). A placeholder holds no state: none is given.
func removalOf(path string, seq uint64, was index.Entry) *LoggedRename {
	r := &LoggedRename{Seq: seq, Old: path}
	switch {
	case was.IsPlaceholder():
	case was.IsDir():
		r.Dir = true
	case was.Mode.IsRegular() || was.Mode&fs.ModeSymlink != 0:
		r.Size, r.MtimeNs = was.Size, was.Mtime.UnixNano()
	}
	return r
}

const renameFormat = 1

var errCorruptRename = errors.New("corrupt rename log record")

func (r LoggedRename) marshal() []byte {
	b := make([]byte, 0, 1+1+8+8+8+len(r.Old)+len(r.New))
	b = append(b, renameFormat)
	dir := byte(0)
	if r.Dir {
		dir = 1
	}
	b = append(b, dir)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(r.MtimeNs))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Old)))
	b = append(b, r.Old...)
	return append(b, r.New...)
}

func unmarshalRename(seq uint64, b []byte) (LoggedRename, error) {
	const fixed = 1 + 1 + 8 + 8 + 4
	if len(b) < fixed || b[0] != renameFormat {
		return LoggedRename{}, errCorruptRename
	}
	r := LoggedRename{Seq: seq, Dir: b[1] == 1, Size: int64(binary.BigEndian.Uint64(b[2:])), MtimeNs: int64(binary.BigEndian.Uint64(b[10:]))}
	n := binary.BigEndian.Uint32(b[18:])
	rest := b[fixed:]
	if uint64(len(rest)) < uint64(n) {
		return LoggedRename{}, errCorruptRename
	}
	r.Old, r.New = string(rest[:n]), string(rest[n:])
	return r, nil
}

// RenameLog returns the peer's logged renames, oldest first, at most max.
func (j *Journal) RenameLog(peer string, max int) ([]LoggedRename, error) {
	var out []LoggedRename
	err := j.db.View(func(tx *bolt.Tx) error {
		pb, err := peerBucket(tx, peer)
		if err != nil {
			return err
		}
		c := pb.Bucket(bucketRenames).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			r, err := unmarshalRename(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return fmt.Errorf("rename log record %x: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// DoneRenames drops the peer's logged renames up to seq: the peer was
// asked for them (applied or refused: a refused rename's new name goes as
// content, and its old name is deleted, from the path entries).
func (j *Journal) DoneRenames(peer string, seq uint64) error {
	return j.idx.Batch(func(tx *bolt.Tx) error {
		pb, err := peerBucket(tx, peer)
		if err != nil {
			return err
		}
		c := pb.Bucket(bucketRenames).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// PendingAt reports whether an entry is pending for any peer at rel or
// below it: this member changed something there and has not sent it to
// every peer yet. A receiver asked to remove or replace rel (a replayed
// removal or rename) keeps it then: what it would delete is newer here.
func (j *Journal) PendingAt(rel string) bool {
	if rel == "." {
		rel = ""
	}
	exact := index.Key(rel)
	found := false
	j.eachByPath(func(byPath *bolt.Bucket) bool {
		if rel == "" {
			k, _ := byPath.Cursor().First()
			found = k != nil
			return found
		}
		if byPath.Get(exact) != nil {
			found = true
			return true
		}
		_ = eachBelow(byPath.Cursor(), rel, func(_, _ []byte) (bool, error) {
			found = true
			return false, nil
		})
		return found
	})
	return found
}

// PendingBelow returns the paths strictly below the directory rel that
// an entry is pending at for any peer, at most max (each once): what this
// member changed there and has not sent to every peer yet. A rename of
// rel replayed here carries them on, and they go again under the new
// name (receiver.Receiver.PendingBelow).
func (j *Journal) PendingBelow(rel string, max int) []string {
	if rel == "." || rel == "" {
		return nil
	}
	seen := make(map[string]bool)
	var out []string
	j.eachByPath(func(byPath *bolt.Bucket) bool {
		_ = eachBelow(byPath.Cursor(), rel, func(k, _ []byte) (bool, error) {
			if path := index.PathOf(k); !seen[path] {
				seen[path] = true
				out = append(out, path)
			}
			return len(out) < max, nil
		})
		return len(out) >= max
	})
	return out
}

// PendingFor returns the paths at or below rel that an entry is pending at
// for peer, at most max (rel itself first, where it is pending): what this
// member changed there and has not sent to peer yet. A receiver asked by
// peer to remove rel tells it whether it would take a version that peer
// never had (receiver.Receiver.newerHere): a change pending for another
// member alone, peer had (its run confirmed it), and what peer removed
// after that is no older. None for an unknown peer.
func (j *Journal) PendingFor(peer, rel string, max int) []string {
	if rel == "." || rel == "" || max <= 0 {
		return nil
	}
	var out []string
	_ = j.db.View(func(tx *bolt.Tx) error {
		pb, err := peerBucket(tx, peer)
		if err != nil {
			return nil
		}
		byPath := pb.Bucket(bucketByPath)
		if byPath == nil {
			return nil
		}
		if byPath.Get(index.Key(rel)) != nil {
			out = append(out, rel)
		}
		if len(out) < max {
			_ = eachBelow(byPath.Cursor(), rel, func(k, _ []byte) (bool, error) {
				out = append(out, index.PathOf(k))
				return len(out) < max, nil
			})
		}
		return nil
	})
	return out
}

// eachByPath calls fn with each peer's pending entries by path, in one
// read transaction, until fn returns true.
func (j *Journal) eachByPath(fn func(byPath *bolt.Bucket) (stop bool)) {
	_ = j.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketJournal)
		if root == nil {
			return nil
		}
		stopped := false
		return root.ForEachBucket(func(k []byte) error {
			byPath := root.Bucket(k).Bucket(bucketByPath)
			if stopped || byPath == nil {
				return nil
			}
			stopped = fn(byPath)
			return nil
		})
	})
}
