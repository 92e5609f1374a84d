package index

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// bucketLinks is the reverse lookup of hard links: one empty value per
// non-directory entry, keyed by its inode (8 bytes, big endian) and then
// its root-relative path. Put and Delete keep it exact in the transaction
// that writes the entry.
//
// Every file is in it, not only those recorded with more than one link:
// "ln a b" after a was recorded makes b's entry the first with two links,
// while a's still says one (its ctime changes, but the kernel reports the
// link count change without a name). Looking b's inode up must find a all
// the same, or b goes alone and the peer gets two files instead of one.
//
// The key holds no device: entries record none, and a root mounted again
// may come back on another device number (CheckRoot accepts that). Inode
// numbers of another filesystem mounted inside the root can collide with
// the root's, so a caller checks each name's current device and inode
// before it relies on it.
var bucketLinks = []byte("links")

// linkKey is rel's key in bucketLinks, recorded with inode ino.
func linkKey(ino uint64, rel string) []byte {
	k := make([]byte, 8, 8+len(rel))
	binary.BigEndian.PutUint64(k, ino)
	return append(k, rel...)
}

// linked reports whether e belongs in bucketLinks.
func (e Entry) linked() bool { return e.Ino != 0 && !e.IsDir() }

// storedLink returns the inode of an encoded entry when it belongs in
// bucketLinks (without decoding the rest of it); ok is false otherwise, and
// for an entry that cannot be decoded.
func storedLink(v []byte) (ino uint64, ok bool) {
	if entryLen(v) == 0 { // mode and inode are at the same offsets in every format
		return 0, false
	}
	ino = binary.BigEndian.Uint64(v[37:])
	if fs.FileMode(binary.BigEndian.Uint32(v[25:])).IsDir() || ino == 0 {
		return 0, false
	}
	return ino, true
}

// unlink removes rel, stored as v, from bucketLinks.
func (t *Tx) unlink(rel string, v []byte) error {
	ino, ok := storedLink(v)
	if !ok {
		return nil
	}
	if err := t.links.Delete(linkKey(ino, rel)); err != nil {
		return fmt.Errorf("index unlink %q: %w", rel, err)
	}
	return nil
}

// Links returns up to limit root-relative paths recorded with inode ino
// (all of them when limit <= 0), in byte order. The
// names are what the index last recorded: the caller lstats each to check
// that it still exists on the expected device with that inode.
func (t *Tx) Links(ino uint64, limit int) []string {
	var out []string
	prefix := binary.BigEndian.AppendUint64(nil, ino)
	c := t.links.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, string(k[8:]))
	}
	return out
}

// Links is Tx.Links in a read-only transaction of its own.
func (x *Index) Links(ino uint64, limit int) ([]string, error) {
	var out []string
	err := x.View(func(tx *Tx) error {
		out = tx.Links(ino, limit)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index links of inode %d: %w", ino, err)
	}
	return out, nil
}

// fillLinks adds every entry that belongs in bucketLinks to it: a database
// written before the bucket existed gets its hard links at the first open
// that creates the bucket, rather than only as each name is recorded again.
func fillLinks(files, links *bolt.Bucket) error {
	return files.ForEach(func(k, v []byte) error {
		if ino, ok := storedLink(v); ok {
			return links.Put(linkKey(ino, PathOf(k)), nil)
		}
		return nil
	})
}

// RefreshLinks records again the other names of inode ino that the index
// holds (all but except) where a change of link count is all that differs
// from their entries: the same inode, size, mtime, mode and owner, another
// ctime. A name made or removed elsewhere moves the inode's ctime and link
// count, and the receiver, which made or removed it at a peer's request,
// calls this: left as they were, those names read as this member's own
// changes at the next compare (a scan, a rename applied here), went back
// to every peer as such, and brought back there what the sender had
// removed or renamed since. A name whose content, mode or owner differs is
// left as it is (a change of this member's, to compare as any).
func (t *Tx) RefreshLinks(rootfd int, ino uint64, except string) error {
	if ino == 0 {
		return nil
	}
	return t.OtherNames(rootfd, ino, except, 0, func(name string, was, now Entry) error {
		if was.Matches(now) || !was.LinksMatch(now) {
			return nil
		}
		return t.Put(name, now)
	})
}

// RecordOtherNames records every name the index holds for inode ino that
// is still that inode here (a regular file), as it is now. The receiver
// calls it for a file a peer's run sent and that it holds as sent: each
// other name is the same file, so whatever the run did to it (its times,
// mode or content, which RefreshLinks would take for this member's
// change) is the run's.
func (t *Tx) RecordOtherNames(rootfd int, ino uint64) error {
	if ino == 0 {
		return nil
	}
	return t.OtherNames(rootfd, ino, "", 0, func(name string, was, now Entry) error {
		if now.Ino != ino || !now.Mode.IsRegular() || was.Matches(now) {
			return nil
		}
		now.Version = was.Version
		return t.Put(name, now)
	})
}

// OtherNames calls fn with each name the index holds for inode ino (all
// but except; at most limit of them, all when limit <= 0) that exists
// here, in byte order: its entry as recorded (was) and as it is now (now),
// which may be another file since. The names are read before the first
// call, so fn may record them. It returns fn's first error.
func (t *Tx) OtherNames(rootfd int, ino uint64, except string, limit int, fn func(name string, was, now Entry) error) error {
	for _, name := range t.Links(ino, limit) {
		if name == except {
			continue
		}
		was, ok, err := t.Get(name)
		if err != nil || !ok {
			continue
		}
		var st unix.Stat_t
		if beneath.Lstat(rootfd, name, &st) != nil {
			continue
		}
		if err := fn(name, was, FromStat(&st)); err != nil {
			return err
		}
	}
	return nil
}
