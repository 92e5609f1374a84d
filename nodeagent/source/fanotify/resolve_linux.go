//go:build linux

package fanotify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
)

// maxCachedDirs bounds the directory cache; when it is full it starts
// over, which costs one resolution per directory seen again.
const maxCachedDirs = 1 << 14

// primeDirs is how many directories New puts in the cache, breadth first
// from the root: half of it, so that the directories made after the start
// do not fill it at once.
const primeDirs = maxCachedDirs / 2

// resolution says what became of a directory file handle.
type resolution int

const (
	// resolved: the path is the directory's, as of the resolution.
	resolved resolution = iota
	// gone: the directory was removed (its handle is stale, or it is
	// unlinked and only still open), or it is not reachable through the
	// root's mount. Its events are moot: the removal of its top-most
	// removed ancestor is an event of its own.
	gone
	// lost: the handle could not be resolved for another reason (out of
	// descriptors, a path longer than a page, a directory under the root
	// that kept moving); the events in it are lost.
	lost
	// moved: the path read back holds another file (see resolver.open).
	moved
	// unplaced: the path is the directory's as of the resolution, but
	// the events read so far never put it anywhere: it was made or moved
	// into a directory that was gone when the event was read (dirCache's
	// unplaced). The path is of a later moment than the events read, and
	// a rename through it names a path that the members never had.
	unplaced
)

// dirCache maps directory file handles to the absolute paths they had as
// of the events read so far: put when a directory is resolved (its path
// read then is rebased on the nearest cached directory above it:
// resolver.asCached) and by a directory's mkdir and rename events, at the
// path the event gives; moved with a directory renamed from where the
// cache holds it (move), dropped below a directory removed or renamed
// otherwise, and for a directory removed.
//
// It also keeps the directories whose place the events read so far do not
// give (unplaced): one made in a directory, or moved into one, that was
// gone when the event was read (mkdir m/d; mkdir m/d/e; mv f m/d/e/x; mv
// m/d/e z/q; rmdir m/d, all read late: d's mkdir merged with its rmdir,
// and e's events found d gone). Resolved afresh, such a directory reads
// where it is now, not where the events read so far had it: the rename
// read as f -> z/q/x, a path that no member had yet (the stress test,
// seed 826 of the fifty-eighth session, replayed). It is placed again by
// the event that moves it to a known directory (put), or dropped with its
// removal.
type dirCache struct {
	paths    map[string]string
	unplaced map[string]struct{}
}

func newDirCache() *dirCache {
	return &dirCache{paths: make(map[string]string), unplaced: make(map[string]struct{})}
}

func (c *dirCache) get(key []byte) (string, bool) {
	p, ok := c.paths[string(key)]
	return p, ok
}

func (c *dirCache) put(key []byte, path string) {
	if len(c.paths) >= maxCachedDirs {
		clear(c.paths)
	}
	c.paths[string(key)] = path
	delete(c.unplaced, string(key))
}

// drop drops the entry for one directory.
func (c *dirCache) drop(key []byte) {
	delete(c.paths, string(key))
	delete(c.unplaced, string(key))
}

// reset drops every entry.
func (c *dirCache) reset() {
	clear(c.paths)
	clear(c.unplaced)
}

// unplace notes that the events read so far put the directory key nowhere.
// When the set is full it starts over: a directory left out is resolved
// as any other not cached.
func (c *dirCache) unplace(key []byte) {
	delete(c.paths, string(key))
	if len(c.unplaced) >= maxCachedDirs {
		clear(c.unplaced)
	}
	c.unplaced[string(key)] = struct{}{}
}

// isUnplaced reports whether the events read so far put the directory key
// nowhere.
func (c *dirCache) isUnplaced(key []byte) bool {
	_, ok := c.unplaced[string(key)]
	return ok
}

// unplaceBelow unplaces the directories cached at path and below it.
func (c *dirCache) unplaceBelow(path string) {
	c.atOrBelow(path, func(key string) { c.unplace([]byte(key)) })
}

// forget drops the entries for the directory at path and below it, after
// it was removed or renamed (from or to path). An empty path is no
// directory.
func (c *dirCache) forget(path string) {
	c.atOrBelow(path, func(key string) { delete(c.paths, key) })
}

// atOrBelow calls fn with the key of each directory cached at path or
// below it; fn may take the entry out. An empty path is no directory.
func (c *dirCache) atOrBelow(path string, fn func(key string)) {
	if path == "" {
		return
	}
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	for k, p := range c.paths {
		if p == path || strings.HasPrefix(p, prefix) {
			fn(k)
		}
	}
}

// move gives the directory at old and those below it their paths below
// new, after it was renamed from old to new (the events read so far
// knew it there, and the paths below it had not changed). Its entries
// below new are dropped first (forget), as are the others when old is
// "/" or below new.
func (c *dirCache) move(old, new string) {
	c.forget(new)
	if old == "" || old == "/" || new == "" {
		return
	}
	prefix := old + "/"
	for k, p := range c.paths {
		switch {
		case p == old:
			c.paths[k] = new
		case strings.HasPrefix(p, prefix):
			c.paths[k] = new + p[len(old):]
		}
	}
}

// holds reports whether the cache holds key at path p.
func (c *dirCache) holds(key []byte, p string) bool {
	was, ok := c.paths[string(key)]
	return ok && was == p
}

// resolver turns directory file handles into paths.
type resolver struct {
	// mount is a descriptor of the root, naming the mount for
	// open_by_handle_at(2).
	mount int
	// root is the data root: a directory that cannot be verified is lost
	// when its path is under the root, gone otherwise.
	root  string
	cache *dirCache
	link  []byte
	key   []byte // asCached's lookups, reused
	// between are the directories asCached walked, reused.
	between []cachedDir
}

// prime puts up to n directories below the root in the cache at their
// paths now, breadth first (those nearest the root first: the ones most
// paths go through), leaving out what exclude names and other
// filesystems (their events are not this mark's). Without it a directory
// that was there before the start was resolved at its first event as it
// was when read: after a later rename of it or above it, of a later
// moment than the event (resolver.asCached rebases such a path only on a
// directory cached above it). Not done where the root's fsid cannot be
// read: nothing is cached then, as before. An event's fsid and handle are
// statfs(2)'s f_fsid and name_to_handle_at(2)'s handle (what the Linux
// Test Project's fanotify13 checks); where they were not, no primed entry
// would ever match, as if none were primed (TestSource_primedReadLate
// shows they match here).
func (r *resolver) prime(n int, exclude func(rel string) bool) {
	if n <= 0 {
		return
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(r.mount, &sfs); err != nil {
		return
	}
	var fsid [fsidLen]byte
	binary.NativeEndian.PutUint32(fsid[:4], uint32(sfs.Fsid.Val[0]))
	binary.NativeEndian.PutUint32(fsid[4:], uint32(sfs.Fsid.Val[1]))
	_, mountID, err := unix.NameToHandleAt(unix.AT_FDCWD, r.root, 0)
	if err != nil {
		return
	}
	rootfd, err := beneath.OpenRoot(r.root)
	if err != nil {
		return
	}
	defer unix.Close(rootfd)
	// Each directory is opened beneath the root with no symlink on the way
	// (one swapped in while the walk runs is not followed out of it), and
	// its subdirectories' handles are taken by name from it.
	queue := []string{"."}
	for len(queue) > 0 && n > 0 {
		rel := queue[0]
		queue = queue[1:]
		fd, err := beneath.Open(rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		f := os.NewFile(uintptr(fd), rel)
		// In batches: a directory of millions of files is not held whole.
		for n > 0 {
			entries, err := f.ReadDir(1024)
			for _, e := range entries {
				if !e.IsDir() || n == 0 {
					continue
				}
				sub := path.Join(rel, e.Name())
				if exclude != nil && exclude(sub) {
					continue
				}
				h, mnt, err := unix.NameToHandleAt(fd, e.Name(), 0)
				if err != nil || mnt != mountID {
					continue
				}
				r.cache.put(appendKey(nil, fsid[:], h), path.Join(r.root, sub))
				queue = append(queue, sub)
				n--
			}
			if err != nil {
				break
			}
		}
		f.Close()
	}
}

// dirPath returns the absolute path of the directory identified by f.
func (r *resolver) dirPath(f fid) (string, resolution) {
	if p, ok := r.cache.get(f.key); ok {
		return p, resolved
	}
	p, res := r.openSettled(f)
	switch res {
	case resolved:
		if r.cache.isUnplaced(f.key) {
			return p, unplaced
		}
		var above bool
		if p, above = r.asCached(f, p); above {
			return p, unplaced
		}
		r.cache.put(f.key, p)
	case moved:
		if _, in := change.Rel(r.root, p); !in {
			// Not reachable through the root's mount, as for a
			// directory outside a bind-mounted subtree.
			return "", gone
		}
		return "", lost
	}
	return p, res
}

// asCached returns p, the path that open read for the directory f, as
// the events read so far knew it: rebased on the nearest directory above
// it that the cache holds, the root at worst (which never moves), and
// puts the directories in between in the cache at the paths so found. open
// reads a directory's path as it is when the event is read, which is later
// than the event when a directory above was renamed in between; the cache
// holds each directory's path as of the events read so far. A rename whose
// two directories were resolved one way each joined names of two moments:
// "mv t/d s/d; mv s/c0 s/d/x; mv s v", read late, gave "s/c0 -> v/d/x" (s
// cached; d not, its own rename had made the cache forget it), which every
// peer replayed into a v/d that it did not hold yet and made for it (the
// stress test, seed 372 of the fifty-third session).
//
// With the directories in between cached too, the cache holds a
// directory's parent whenever it holds the directory (mkdir and rename
// events put a directory below a parent they resolved, move and forget
// take a directory's subtree along): a directory the cache does not hold
// has nothing below it cached either, which renameCached relies on.
//
// One name_to_handle_at(2) per directory from the parent up to the nearest
// cached one, and only for a directory the cache does not hold; the path
// is p when one cannot be looked at (renamed or removed meanwhile). Where
// a directory in between is unplaced, so is the path: asCached returns p
// and true, and caches nothing.
func (r *resolver) asCached(f fid, p string) (string, bool) {
	if rel, in := change.Rel(r.root, p); !in || rel == "." || len(f.key) < fsidLen {
		return p, false
	}
	r.between = r.between[:0]
	base, was := r.root, r.root
	for dir := path.Dir(p); dir != r.root; dir = path.Dir(dir) {
		if len(dir) < len(r.root) {
			return p, false
		}
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
		if err != nil {
			return p, false
		}
		r.key = appendKey(r.key[:0], f.key[:fsidLen], h)
		if cached, ok := r.cache.get(r.key); ok {
			base, was = dir, cached
			break
		}
		if r.cache.isUnplaced(r.key) {
			return p, true
		}
		r.between = append(r.between, cachedDir{key: bytes.Clone(r.key), path: dir})
	}
	for _, d := range r.between {
		r.cache.put(d.key, was+d.path[len(base):])
	}
	return was + p[len(base):], false
}

// cachedDir is a directory asCached puts in the cache: its key and its
// path as read.
type cachedDir struct {
	key  []byte
	path string
}

// appendKey appends the directory cache's key of h, a handle on the
// filesystem fsid, to dst: as an event's file identifier record holds it
// (fid.key: fsid, handle_bytes, handle_type, f_handle).
func appendKey(dst, fsid []byte, h unix.FileHandle) []byte {
	dst = append(dst, fsid...)
	dst = binary.NativeEndian.AppendUint32(dst, uint32(len(h.Bytes())))
	dst = binary.NativeEndian.AppendUint32(dst, uint32(h.Type()))
	return append(dst, h.Bytes()...)
}

// openSettled is open tried a few times while the path read does not
// verify. A directory renamed between readlink and lstat does not; nor
// does a file whose name the kernel gives is one unlinked while a
// descriptor held it (open's own, of a moment before, or another
// process's): the link reads that name with " (deleted)" while the file
// lives on under another, and once the descriptor is closed the kernel
// gives a living name (d_obtain_alias takes the inode's first alias,
// unhashed or not: __d_find_any_alias in the kernel's fs/dcache.c). Seen
// in the burst test, a write's file resolved once only was taken for a
// renamed one, and the whole root was scanned.
func (r *resolver) openSettled(f fid) (string, resolution) {
	var (
		p   string
		res resolution
	)
	for range 3 {
		if p, res = r.open(f); res != moved {
			break
		}
	}
	return p, res
}

// open resolves f without the cache: open_by_handle_at(2) with O_PATH on
// the root's mount, the descriptor's link in /proc/self/fd (proc(5)), and
// an lstat of that path that must find the same directory; when it does
// not, open returns the path read and moved. The link of a directory
// outside the mount's subtree reads as a path relative to the filesystem,
// which the lstat rejects.
func (r *resolver) open(f fid) (string, resolution) {
	fd, err := unix.OpenByHandleAt(r.mount, unix.NewFileHandle(f.typ, f.handle), unix.O_PATH|unix.O_CLOEXEC)
	if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
		return "", gone
	}
	if err != nil {
		return "", lost
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", lost
	}
	if st.Nlink == 0 {
		// Removed, held open by someone: its link ends in " (deleted)".
		return "", gone
	}
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), r.link)
	if err != nil || n >= len(r.link) {
		return "", lost
	}
	p := string(r.link[:n])
	if p == "" || p[0] != '/' {
		return "", gone
	}
	var pst unix.Stat_t
	if err := unix.Lstat(p, &pst); err != nil || pst.Dev != st.Dev || pst.Ino != st.Ino {
		return p, moved
	}
	return p, resolved
}
