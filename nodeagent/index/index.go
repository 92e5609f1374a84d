package index

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// ReservedDir is the agent's own directory inside every data root: the root
// marker, and the rsync receiver's temp and partial files. Every source and
// the scanner exclude it.
const ReservedDir = ".jailsync"

// CheckPath says why rel, a path another member named, is none an agent
// acts on: one holding a NUL (the holds and their record on disk split on
// NUL), one that is not clean and relative below the root
// (beneath.CheckRel), or one at or below ReservedDir. The root itself
// (".") passes.
func CheckPath(rel string) error {
	switch {
	case strings.IndexByte(rel, 0) >= 0 || beneath.CheckRel(rel) != nil:
		return fmt.Errorf("path %q: not a path below the data root", rel)
	case InReserved(rel):
		return fmt.Errorf("path %q: in the agent's reserved directory", rel)
	}
	return nil
}

// InReserved reports whether rel is ReservedDir or lies below it.
func InReserved(rel string) bool {
	return rel == ReservedDir || strings.HasPrefix(rel, ReservedDir+"/")
}

// MarkerFile holds the root's random identity, inside ReservedDir (where
// the daemon's temp files lie too: the agent removes every other file
// there at start).
const MarkerFile = "root-id"

var (
	// ErrRootChanged is returned by CheckRoot when the directory at the root
	// path is not the one the index describes: unmounted (the empty mount
	// point shows through), replaced, or its marker file is gone. Syncing it
	// would read every indexed file as deleted.
	ErrRootChanged = errors.New("data root changed")

	// ErrRootMissing is returned by CheckRoot when the root path does not
	// exist or is not a directory.
	ErrRootMissing = errors.New("data root missing")

	// ErrLocked is returned by Open when another process holds the database.
	ErrLocked = errors.New("index database is in use by another process")
	// ErrUnreadable wraps the error of a path that could not be looked at
	// (an lstat that failed for another reason than the path's absence):
	// an error of that path, not of the index.
	ErrUnreadable = errors.New("path cannot be looked at")
)

var (
	bucketMeta  = []byte("meta")
	bucketFiles = []byte("files")
	keyMarker   = []byte("root.marker")
	keyDevice   = []byte("root.device")
	keyRootPath = []byte("root.path")
)

// Index is the bbolt-backed record of a data root.
type Index struct {
	db    *bolt.DB
	batch batcher
}

// Open opens (creating if needed) the index database at path.
func Open(path string) (*Index, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open index %s: %w (is another agent running with this state directory?)", path, ErrLocked)
		}
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketFiles} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketLinks) != nil {
			return nil
		}
		// A database from before the links bucket: build it from the
		// entries, which have always recorded their inode and link count.
		links, err := tx.CreateBucket(bucketLinks)
		if err != nil {
			return err
		}
		if err := fillLinks(tx.Bucket(bucketFiles), links); err != nil {
			return fmt.Errorf("build the hard link lookup: %w", err)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise index %s: %w", path, err)
	}
	return &Index{db: db}, nil
}

// Close closes the database.
func (x *Index) Close() error { return x.db.Close() }

// DB returns the database, so that the journal can keep its buckets in the
// same file and commit with the index in one transaction.
func (x *Index) DB() *bolt.DB { return x.db }

// CheckRoot verifies that root is the directory this index describes. An
// index that has never seen a root adopts this one: it writes a marker file
// with a random id into root/.jailsync and records it with the root's
// device (keeping a marker the root already holds). Later calls require
// the marker to match; a device change with a
// matching marker (the same filesystem mounted again) is accepted and
// recorded. Anything else is ErrRootChanged, with what differs.
func (x *Index) CheckRoot(root string) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: open %s: %v", ErrRootMissing, root, err)
	}
	defer unix.Close(fd)
	return x.CheckRootFD(fd, root)
}

// CheckRootFD is CheckRoot for a root already open as the directory fd, so
// that what is checked is exactly what the caller then reads (no window in
// which another filesystem could be mounted over the path). name is the
// root's path, for messages.
func (x *Index) CheckRootFD(fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%w: stat %s: %v", ErrRootMissing, name, err)
	}
	dev := uint64(st.Dev)
	marker, err := readMarker(fd)
	if err != nil {
		return fmt.Errorf("%w: read %s/%s/%s: %v", ErrRootChanged, name, ReservedDir, MarkerFile, err)
	}
	// The common case, a known root on the same device, needs no write.
	same := false
	_ = x.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		known, old := meta.Get(keyMarker), meta.Get(keyDevice)
		same = known != nil && len(marker) > 0 && bytes.Equal(marker, known) &&
			old != nil && binary.BigEndian.Uint64(old) == dev
		return nil
	})
	if same {
		return nil
	}
	return x.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		known := meta.Get(keyMarker)
		if known == nil {
			if tx.Bucket(bucketFiles).Stats().KeyN > 0 {
				return fmt.Errorf("%w: the index lists files but records no root identity", ErrRootChanged)
			}
			return adopt(meta, fd, name, dev, marker)
		}
		switch {
		case len(marker) == 0:
			return fmt.Errorf("%w: %s has no %s/%s (unmounted or replaced?); the agent will not sync it. "+
				"Mount the data back, or remove the state directory to start this member afresh",
				ErrRootChanged, name, ReservedDir, MarkerFile)
		case !bytes.Equal(marker, known):
			return fmt.Errorf("%w: %s holds root id %s, the index expects %s (a different filesystem?); "+
				"mount the right one, or remove the state directory to start this member afresh",
				ErrRootChanged, name, marker, known)
		}
		if old := meta.Get(keyDevice); old == nil || binary.BigEndian.Uint64(old) != dev {
			return meta.Put(keyDevice, binary.BigEndian.AppendUint64(nil, dev))
		}
		return nil
	})
}

// CheckHeldRoot is CheckRootFD for fd, the root as its path names it now,
// after sameDir: the directory must also be held, the one the agent opened
// at start (held == fd passes that part).
func (x *Index) CheckHeldRoot(held, fd int, name string) error {
	if err := sameDir(held, fd, name); err != nil {
		return err
	}
	return x.CheckRootFD(fd, name)
}

// CheckRootPath checks the root as its path names it now: that it is
// still the directory held open and has the root's identity
// (CheckHeldRoot on the path opened afresh). The detector's check every
// second, and the receiver's before it records a run, which the rsync
// daemon put wherever the path leads.
func (x *Index) CheckRootPath(held int, root string) error {
	fd, err := beneath.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRootMissing, err)
	}
	defer unix.Close(fd)
	return x.CheckHeldRoot(held, fd, root)
}

// sameDir refuses fd, the root as its path names it now, when it is not
// held, the directory the agent opened at start: the path was given to
// another directory since (a copy or a snapshot moved or mounted in its
// place, with the same marker). Reading the new one while the agent's
// other parts hold the old would split the member in two.
func sameDir(held, fd int, name string) error {
	var a, b unix.Stat_t
	if err := unix.Fstat(held, &a); err != nil {
		return fmt.Errorf("%w: stat the root held open: %v", ErrRootMissing, err)
	}
	if err := unix.Fstat(fd, &b); err != nil {
		return fmt.Errorf("%w: stat %s: %v", ErrRootMissing, name, err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return fmt.Errorf("%w: %s is another directory than the one the agent opened at start (remounted, or replaced by a copy?); "+
			"the agent stops rather than sync it: restart it once the right data is in place", ErrRootChanged, name)
	}
	return nil
}

// readMarker returns the root id in fd's marker file, empty when there is
// none.
func readMarker(rootfd int) ([]byte, error) {
	fd, err := beneath.Open(rootfd, ReservedDir+"/"+MarkerFile, unix.O_RDONLY, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), MarkerFile)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	return bytes.TrimSpace(b), err
}

// adopt records the root open as rootfd as this index's root. A root that
// already holds a marker (existing) keeps it: another index adopted it (an
// earlier state directory of this member, or a start with a wrong
// --state-dir), and a new id would make that index refuse the root as
// changed. Otherwise a new random id is written as its marker file.
func adopt(meta *bolt.Bucket, rootfd int, name string, dev uint64, existing []byte) error {
	marker := existing
	if len(marker) == 0 {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return fmt.Errorf("make root id: %w", err)
		}
		marker = []byte(hex.EncodeToString(id))
		if err := writeMarker(rootfd, append(marker, '\n')); err != nil {
			return fmt.Errorf("adopt root %s: %w", name, err)
		}
	}
	if err := meta.Put(keyMarker, marker); err != nil {
		return err
	}
	if err := meta.Put(keyRootPath, []byte(name)); err != nil {
		return err
	}
	return meta.Put(keyDevice, binary.BigEndian.AppendUint64(nil, dev))
}

// writeMarker writes the marker file beneath rootfd, durably, by rename:
// the file, the reserved directory (which holds the rename) and the root
// (which holds a reserved directory just made) are synced, since the index
// commits the marker durably next, and a marker lost to a power cut would
// have the root refused at every start. Everything is done through the
// reserved directory opened beneath the root (no symlink on the way), so
// a link swapped in for it cannot take the marker elsewhere.
func writeMarker(rootfd int, data []byte) error {
	if err := unix.Mkdirat(rootfd, ReservedDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mkdir %s: %w", ReservedDir, err)
	}
	dfd, err := beneath.Open(rootfd, ReservedDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", ReservedDir, err)
	}
	defer unix.Close(dfd)
	tmp := MarkerFile + ".tmp"
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", ReservedDir, tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := unix.Renameat(dfd, tmp, dfd, MarkerFile); err != nil {
		return fmt.Errorf("rename %s/%s: %w", ReservedDir, tmp, err)
	}
	if err := unix.Fsync(dfd); err != nil {
		return fmt.Errorf("sync %s: %w", ReservedDir, err)
	}
	if err := unix.Fsync(rootfd); err != nil {
		return fmt.Errorf("sync the root: %w", err)
	}
	return nil
}

// View runs fn in a read-only transaction.
func (x *Index) View(fn func(*Tx) error) error {
	return x.db.View(func(tx *bolt.Tx) error { return fn(Within(tx)) })
}

// Update runs fn in a read-write transaction, committed when fn returns nil.
func (x *Index) Update(fn func(*Tx) error) error {
	return x.db.Update(func(tx *bolt.Tx) error { return fn(Within(tx)) })
}

// Batch runs fn in a read-write transaction that it may share with the
// functions other goroutines pass to Batch meanwhile (a group commit: see
// batcher), committed when they all return nil. fn may be called more than
// once, so it must set whatever it returns afresh on each call. For the
// frequent small commits of replication (journaling a change, confirming
// a run, recording what arrived); Update for the rest.
func (x *Index) Batch(fn func(*bolt.Tx) error) error { return x.batch.do(x.db, fn) }

// Within returns the index's view inside a transaction another package
// opened on DB (the journal commits with the index this way).
func Within(tx *bolt.Tx) *Tx {
	return &Tx{b: tx.Bucket(bucketFiles), links: tx.Bucket(bucketLinks)}
}

// Tx reads and writes entries within one bbolt transaction.
type Tx struct {
	b     *bolt.Bucket
	links *bolt.Bucket // bucketLinks, kept with b
	cur   *bolt.Cursor // on b, for get; made at first use
}

// get is b.Get through the Tx's cursor (see SeekExact).
func (t *Tx) get(k []byte) []byte {
	if t.cur == nil {
		t.cur = t.b.Cursor()
	}
	return SeekExact(t.cur, k)
}

// SeekExact is Bucket.Get through a cursor that the caller reuses for many
// keys: Bucket.Get makes a cursor, and its search stack, for every key (a
// fifth of the agent's CPU during a burst went to growing those stacks).
// Every Seek starts from the root, so the cursor stays usable across Puts
// and Deletes; it is left on key, for Cursor.Delete.
func SeekExact(c *bolt.Cursor, key []byte) []byte {
	k, v := c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// Get returns the entry of rel.
func (t *Tx) Get(rel string) (Entry, bool, error) {
	v := t.get(Key(rel))
	if v == nil {
		return Entry{}, false, nil
	}
	e, err := unmarshalEntry(v)
	if err != nil {
		return Entry{}, false, fmt.Errorf("index entry %q: %w", rel, err)
	}
	return e, true, nil
}

// Put records e for rel, and keeps the hard link lookup (Links) exact: rel
// is listed under e's inode when e has more than one link, and no longer
// under the inode it was recorded with before.
func (t *Tx) Put(rel string, e Entry) error {
	k := Key(rel)
	if old := t.get(k); old != nil {
		if err := t.unlink(rel, old); err != nil {
			return err
		}
	}
	if err := t.b.Put(k, e.marshal()); err != nil {
		return fmt.Errorf("index put %q: %w", rel, err)
	}
	if e.linked() {
		if err := t.links.Put(linkKey(e.Ino, rel), nil); err != nil {
			return fmt.Errorf("index link %q: %w", rel, err)
		}
	}
	return nil
}

// Delete removes rel and everything indexed below it, at any depth (the
// keys of belowPrefixes), whether or not the directories in between are
// indexed. A receiver's replay can leave a directory between unindexed for
// a moment (parents it made for a rename are recorded after the request's
// other renames and removals); walking down from one indexed directory to
// the next, as Delete did, left the entries below such a gap in the index
// after the tree was gone, and their removal events read as this member's
// own removals, which went to every peer with this member's times of the
// directories above (stress seed 650 of the fifty-sixth session:
// TestReceiver_Replay, "a tree moved in and removed in one request").
func (t *Tx) Delete(rel string) error {
	c := t.b.Cursor()
	for _, prefix := range belowPrefixes(rel) {
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Seek(prefix) {
			if err := t.unlink(PathOf(k), v); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return fmt.Errorf("index delete below %q: %w", rel, err)
			}
		}
	}
	k := Key(rel)
	if v := t.b.Get(k); v != nil {
		if err := t.unlink(rel, v); err != nil {
			return err
		}
	}
	if err := t.b.Delete(k); err != nil {
		return fmt.Errorf("index delete %q: %w", rel, err)
	}
	return nil
}

// Move re-keys the entry of oldRel and every entry below it under newRel,
// as a rename moves them on disk, values kept (what they held before the
// rename, for a later compare); whatever was indexed at or below newRel
// goes. The hard link lookup stays exact (Put, Delete).
func (t *Tx) Move(oldRel, newRel string) error {
	if oldRel == "." || newRel == "." || oldRel == newRel {
		return fmt.Errorf("index move %q to %q: not a rename of a path below the root", oldRel, newRel)
	}
	type moved struct {
		rel string
		e   Entry
	}
	var all []moved
	add := func(rel string, v []byte) error {
		e, err := unmarshalEntry(v)
		if err != nil {
			return fmt.Errorf("index entry %q: %w", rel, err)
		}
		all = append(all, moved{newRel + strings.TrimPrefix(rel, oldRel), e})
		return nil
	}
	if v := t.get(Key(oldRel)); v != nil {
		if err := add(oldRel, v); err != nil {
			return err
		}
	}
	if err := t.eachBelow(oldRel, func(k, v []byte) (bool, error) { return true, add(PathOf(k), v) }); err != nil {
		return err
	}
	if err := t.Delete(newRel); err != nil {
		return err
	}
	if err := t.Delete(oldRel); err != nil {
		return err
	}
	for _, m := range all {
		if err := t.Put(m.rel, m.e); err != nil {
			return err
		}
	}
	return nil
}

// HasBelow reports whether anything is indexed below dir, at any depth.
func (t *Tx) HasBelow(dir string) bool {
	found := false
	_ = t.eachBelow(dir, func(k, _ []byte) (bool, error) {
		if dir == "." && string(k) == string(Key(".")) {
			return true, nil // the root's own entry
		}
		found = true
		return false, nil
	})
	return found
}

// eachBelow calls fn with the key and value of each entry indexed below
// dir, at any depth (its children's keys, "dir\x00name", then the deeper
// ones, "dir/sub\x00name"), until fn reports no more or an error, which
// it returns. fn must not modify the index.
func (t *Tx) eachBelow(dir string, fn func(k, v []byte) (more bool, err error)) error {
	c := t.b.Cursor()
	for _, prefix := range belowPrefixes(dir) {
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if more, err := fn(k, v); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// belowPrefixes are the key prefixes of the paths below dir: its
// children's keys ("dir\x00name") and the deeper ones ("dir/sub\x00name");
// every key, the root's own among them, for the root.
func belowPrefixes(dir string) [][]byte {
	if dir == "." {
		return [][]byte{nil}
	}
	return [][]byte{childPrefix(dir), []byte(dir + "/")}
}

// EachBelow calls fn for every path indexed below dir, at any depth, the
// directories in between indexed or not (as Delete removes them), in key
// order. fn must not modify the index.
func (t *Tx) EachBelow(dir string, fn func(rel string, e Entry) error) error {
	return t.eachBelow(dir, func(k, v []byte) (bool, error) {
		rel := PathOf(k)
		if dir == "." && rel == "." {
			return true, nil // the root's own entry
		}
		e, err := unmarshalEntry(v)
		if err != nil {
			return false, fmt.Errorf("index entry %q: %w", rel, err)
		}
		return true, fn(rel, e)
	})
}

// Children calls fn for each indexed direct child of dir, in name order
// (byte order). fn must not modify the index.
func (t *Tx) Children(dir string, fn func(name string, e Entry) error) error {
	c := t.b.Cursor()
	prefix := childPrefix(dir)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		e, err := unmarshalEntry(v)
		if err != nil {
			return fmt.Errorf("index entry %q: %w", PathOf(k), err)
		}
		name := string(k[len(prefix):])
		if dir == "." && name == "." {
			continue // the root's own entry, Key(".")
		}
		if err := fn(name, e); err != nil {
			return err
		}
	}
	return nil
}

// Len is the number of indexed paths.
func (t *Tx) Len() int { return t.b.Stats().KeyN }

// join joins a directory and a name as root-relative paths do.
func join(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// Join is join for other packages: "." + "a" is "a", "d" + "a" is "d/a".
func Join(dir, name string) string { return join(dir, name) }

// Dir returns the parent of a root-relative path ("." for a top-level name).
func Dir(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return "."
}
