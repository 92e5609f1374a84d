// Package scan compares a data root with its index and reports the
// differences as changes: at start, after lost events, every resyncInterval,
// and every scanInterval where no better change source exists.
package scan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// Scanner walks a data root in parallel and compares every path with the
// index: size, mtime, ctime, mode, owner and inode (index.Entry.Matches).
// Directories are compared by mode and owner only: their times change with
// every child. Memory is bounded by the largest directory plus the queue of
// directories not yet read, never by the size of the tree.
type Scanner struct {
	// Root is the data root (absolute, symlinks resolved).
	Root string
	// Index is the root's index; the scanner only reads it.
	Index *index.Index
	// Exclude reports root-relative paths never replicated; nil excludes
	// nothing. The reserved .jailsync directory is always excluded.
	Exclude func(rel string, isDir bool) bool
	// Workers is how many directories are read at once; 4 when 0.
	Workers int
	// MaxDeleteShare is the largest share of the indexed paths that one
	// scan of the whole root may report deleted (DefaultMaxDeleteShare
	// when 0) before it refuses with ErrMassDelete: a wiped or swapped
	// data root must not wipe every peer. A directory replaced by a file
	// or a symlink counts as the deletion of its tree. AllowMassDelete is
	// the operator's word that it is intended, for the Scanner's first
	// scan of the whole root (the start scan) only: a flag left in a
	// service's arguments must not switch the guard off for good.
	MaxDeleteShare  float64
	AllowMassDelete bool
	// Incoming, when set, reports paths a peer's run is changing or
	// deleting here now (detect.Incoming.Has): their removals are not
	// this member's, and count for no share. A full scan while a peer's
	// run deleted most of the tree, its confirmation not recorded yet,
	// stopped the receiving agent (the stress test, a writer's rm -r).
	Incoming func(rel string) bool
	// SeenRemoved, when set, reports paths whose removal, or rename away,
	// the event source reported a moment ago (or one of a directory
	// above): seen happening, they go to the peers as events whatever
	// their share, and count for no share either (detect.recentRemovals).
	SeenRemoved func(rel string) bool
	// HeldRoot, when set, is the root as the caller holds it open: the root
	// a scan opens by its path must be that directory
	// (index.Index.CheckHeldRoot).
	HeldRoot *int

	// fullScanned is set by the first scan of the whole root.
	fullScanned atomic.Bool
}

// DefaultMaxDeleteShare is the share of indexed paths one full scan may
// find deleted before it asks for an operator's word.
const DefaultMaxDeleteShare = 0.5

// massDeleteMinimum is how many deletions a scan may always report: small
// trees are not held to the share.
const massDeleteMinimum = 100

// ErrMassDelete is returned by Scan when a scan of the whole root finds
// more than MaxDeleteShare of the indexed paths deleted; none of those
// deletions is reported.
var ErrMassDelete = errors.New("scan found a mass deletion")

// Stats counts what one scan saw.
type Stats struct {
	Dirs, Files, Changes int64
}

// Scan compares the subtree at dir ("." for the whole root) with the index
// and sends each difference to out, finished only for removals, attribute
// changes and new directories; a file's write may still be going on, so it
// is marked NeedsSettle: the coalescer's settle period decides. Directories that appeared are walked, so their content is
// reported too. Paths that cannot be read without leaving the root are
// skipped and counted as errors in the returned error.
func (s *Scanner) Scan(ctx context.Context, dir string, out chan<- change.Change) (Stats, error) {
	rootfd, err := beneath.OpenRoot(s.Root)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(rootfd)
	// Check the directory actually opened: a filesystem unmounted from
	// under the path leaves an empty mount point that must not read as
	// "everything was deleted".
	held := rootfd
	if s.HeldRoot != nil {
		held = *s.HeldRoot
	}
	if err := s.Index.CheckHeldRoot(held, rootfd, s.Root); err != nil {
		return Stats{}, err
	}

	allowed := dir == "." && !s.fullScanned.Swap(true) && s.AllowMassDelete
	w := &walk{s: s, rootfd: rootfd, out: out, ctx: ctx, holdRemovals: dir == "." && !allowed}
	if w.holdRemovals {
		// The share is of the paths indexed when the scan began: what it
		// finds new is journaled, and indexed, while it walks, and counted
		// after the walk would let more deletions pass the more it found
		// (a root rolled back to an older copy brings back old files as it
		// loses new ones).
		if err := s.Index.View(func(tx *index.Tx) error {
			w.indexed = tx.Len()
			return nil
		}); err != nil {
			return Stats{}, err
		}
	}
	w.cond = sync.NewCond(&w.mu)
	w.stack = []string{dir}
	n := s.Workers
	if n <= 0 {
		n = 4
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(w.worker)
	}
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	wg.Wait()
	st := Stats{Dirs: w.dirs.Load(), Files: w.files.Load(), Changes: w.changes.Load()}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := w.releaseRemovals(); err != nil {
		return st, err
	}
	return st, errors.Join(w.errs...)
}

// releaseRemovals sends the removals a full scan held back, unless they
// are more than the allowed share of the index.
func (w *walk) releaseRemovals() error {
	if !w.holdRemovals || len(w.removals) == 0 {
		return nil
	}
	total, deleted := w.indexed, 0
	err := w.s.Index.View(func(tx *index.Tx) error {
		for _, c := range w.removals {
			if w.s.Incoming != nil && w.s.Incoming(c.Path) || w.s.SeenRemoved != nil && w.s.SeenRemoved(c.Path) {
				continue
			}
			deleted += countTree(tx, c.Path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	share := w.s.MaxDeleteShare
	if !(share > 0 && share <= 1) { // NaN too: it compares false with everything
		share = DefaultMaxDeleteShare
	}
	if deleted > massDeleteMinimum && float64(deleted) > share*float64(total) {
		return fmt.Errorf("%w: %d of %d indexed paths are gone from %s; refusing to propagate the deletions. "+
			"If they are intended, restart the agent with --allow-mass-delete", ErrMassDelete, deleted, total, w.s.Root)
	}
	for _, c := range w.removals {
		if !w.send(c) {
			return w.ctx.Err()
		}
	}
	return nil
}

// countTree counts rel and its indexed descendants.
func countTree(tx *index.Tx, rel string) int {
	n := 1
	_ = tx.Children(rel, func(name string, e index.Entry) error {
		if e.MayHaveChildren() {
			n += countTree(tx, index.Join(rel, name))
		} else {
			n++
		}
		return nil
	})
	return n
}

// walk is one scan's shared state: a stack of directories to read (depth
// first keeps it short) and the number of workers reading one.
type walk struct {
	s      *Scanner
	rootfd int
	out    chan<- change.Change
	ctx    context.Context

	mu     sync.Mutex
	cond   *sync.Cond
	stack  []string
	active int
	errs   []error

	// holdRemovals keeps the removals of a full scan until it is over
	// (removals), to check them against MaxDeleteShare.
	holdRemovals bool
	removals     []change.Change
	indexed      int // the index's paths when the scan began

	dirs, files, changes atomic.Int64
}

func (w *walk) worker() {
	for {
		dir, ok := w.next()
		if !ok {
			return
		}
		subdirs, err := w.readDir(dir)
		w.mu.Lock()
		if err != nil && len(w.errs) < 100 {
			w.errs = append(w.errs, err)
		}
		w.stack = append(w.stack, subdirs...)
		w.active--
		w.cond.Broadcast()
		w.mu.Unlock()
	}
}

// next takes a directory off the stack, waiting while others may still add
// some; false when the walk is done or cancelled.
func (w *walk) next() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.stack) == 0 && w.active > 0 && w.ctx.Err() == nil {
		w.cond.Wait()
	}
	if len(w.stack) == 0 || w.ctx.Err() != nil {
		return "", false
	}
	dir := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	w.active++
	return dir, true
}

func (w *walk) send(c change.Change) bool {
	w.changes.Add(1)
	select {
	case w.out <- c:
		return true
	case <-w.ctx.Done():
		return false
	}
}

func (w *walk) excluded(rel string, isDir bool) bool {
	if rel == index.ReservedDir {
		return true
	}
	return w.s.Exclude != nil && w.s.Exclude(rel, isDir)
}

// diskEntry is one name read from a directory, with its lstat; unknown
// when the lstat failed (an I/O error, a descriptor limit): that name is
// neither compared nor taken for removed, and the rest of the directory
// and the trees below it are scanned all the same.
type diskEntry struct {
	name    string
	e       index.Entry
	unknown bool
}

// readDir compares one directory with the index, reports its differences,
// and returns the subdirectories to read next.
func (w *walk) readDir(dir string) ([]string, error) {
	w.dirs.Add(1)
	fd, err := beneath.Open(w.rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("scan %q: %w", dir, err)
	}
	defer unix.Close(fd)
	disk, unreadable, err := readEntries(fd)
	if err != nil {
		return nil, fmt.Errorf("scan %q: %w", dir, err)
	}
	w.files.Add(int64(len(disk)))

	// Merge the sorted disk names with the index's sorted children. The
	// changes are sent after the read transaction ends: a long-open read
	// transaction would block the writer that consumes them from growing
	// the database.
	var found []change.Change
	var subdirs []string
	i := 0
	err = w.s.Index.View(func(tx *index.Tx) error {
		return tx.Children(dir, func(name string, old index.Entry) error {
			// Disk names before this indexed name are new.
			for ; i < len(disk) && disk[i].name < name; i++ {
				if !disk[i].unknown {
					found, subdirs = w.compare(dir, disk[i], nil, found, subdirs)
				}
			}
			if i < len(disk) && disk[i].name == name {
				if !disk[i].unknown {
					found, subdirs = w.compare(dir, disk[i], &old, found, subdirs)
				}
				i++
				return nil
			}
			found = w.removed(index.Join(dir, name), old, found)
			return nil
		})
	})
	for ; i < len(disk); i++ {
		if !disk[i].unknown {
			found, subdirs = w.compare(dir, disk[i], nil, found, subdirs)
		}
	}
	for i := range found {
		markWriter(fd, &found[i])
	}
	for _, c := range found {
		if w.holdRemovals && c.Op&(change.Remove|change.Rmdir) != 0 && c.Op&change.Create == 0 {
			w.hold(c)
			continue
		}
		if !w.send(c) {
			break
		}
	}
	if err == nil && unreadable != nil {
		err = fmt.Errorf("scan %q: %w", dir, unreadable)
	}
	return subdirs, err
}

// compare reports what happened to one path present on disk; old is its
// index entry, nil when it is not indexed.
func (w *walk) compare(dir string, d diskEntry, old *index.Entry, found []change.Change, subdirs []string) ([]change.Change, []string) {
	rel := index.Join(dir, d.name)
	isDir := d.e.IsDir()
	if w.excluded(rel, isDir) {
		return found, subdirs
	}
	if isDir {
		subdirs = append(subdirs, rel)
	}
	c := change.Change{Path: rel, NeedsSettle: true}
	if old != nil && old.IsMoved() {
		// Below a directory renamed here: new to the peer's tree as the
		// rename leaves it (the peer holds it once it applies the
		// rename). Taken for written in place, a copy the peer holds
		// unchanged would be compared again by checksum
		// (sender.unchangedWrites).
		old = nil
	}
	if old == nil {
		c.Op, c.Finished = created(d.e)
		return append(found, c), subdirs
	}
	if c.Op, c.Finished = changed(*old, d.e); c.Op == 0 {
		return found, subdirs
	}
	if old.Mode.Type() != d.e.Mode.Type() && old.IsDir() && w.holdRemovals {
		// A directory replaced by a file or a symlink: its push replaces
		// the peer's directory and everything in it (--force), a deletion
		// of its whole indexed tree, held and counted like one.
		w.hold(c)
		return found, subdirs
	}
	return append(found, c), subdirs
}

// created is the operation that a path new to the index, e, reads as, and
// whether it is finished.
func created(e index.Entry) (change.Op, bool) {
	switch {
	case e.IsDir():
		return change.Mkdir, true
	case e.Mode.IsRegular() && e.Size == 0:
		// A new empty file, nothing written: its creator may not have
		// opened it for writing yet (open(2) with O_CREAT makes the file
		// before it takes write access), so a lease cannot tell it
		// finished. It settles, and the coalescer's probe has the last
		// word.
		return change.Create | change.Found, false
	default:
		return change.Create | change.Write | change.Found, false
	}
}

// changed is the operation that an indexed path, old, found as e reads as,
// and whether it is finished; 0 when nothing changed.
func changed(old, e index.Entry) (change.Op, bool) {
	switch {
	case old.Mode.Type() != e.Mode.Type():
		return change.Remove | change.Create | change.Write, false
	case e.IsDir():
		// Another directory made under its name is a change (as in
		// index.same): its attributes go, and its entry takes its inode.
		if old.DirMatches(e) {
			return 0, false
		}
		return change.Attrib, true
	case old.Matches(e):
		return 0, false
	case old.ContentMatches(e) && !old.LinksMatch(e):
		return change.Attrib, true
	case old.ContentMatches(e):
		// Only the ctime moved: a write that kept size and mtime (cp -p,
		// rsync --inplace -t, an archive extracted over it) looks so, and
		// only a write goes again by checksum (the sender's quick check
		// would find the peer's copy the same). A hard link made or
		// removed moves the ctime too, with the link count: the journal
		// records that as it is and drops the change (index.linksOnly).
		return change.Write | change.Attrib, false
	default:
		return change.Write, false
	}
}

func (w *walk) removed(rel string, old index.Entry, found []change.Change) []change.Change {
	if w.excluded(rel, old.IsDir()) {
		return found
	}
	op := change.Remove
	if old.IsDir() {
		op = change.Rmdir
	}
	return append(found, change.Change{Path: rel, Op: op, Finished: true})
}

// hold keeps a removal of a full scan back until the scan is over and the
// deletions are counted (releaseRemovals).
func (w *walk) hold(c change.Change) {
	w.mu.Lock()
	w.removals = append(w.removals, c)
	w.mu.Unlock()
}

// markWriter settles whether a written file's writer is done, where the
// system can tell (openForWriting): a file no process holds open for
// writing is finished now; one still held waits for a later scan. Elsewhere
// the change keeps NeedsSettle and the settle period decides.
func markWriter(dirfd int, c *change.Change) {
	if !c.Op.Has(change.Write) || c.Finished {
		return
	}
	name := c.Path[strings.LastIndexByte(c.Path, '/')+1:]
	open, known := openForWriting(dirfd, name)
	if !known {
		return
	}
	c.NeedsSettle = false
	c.Finished = !open
}

// readEntries lists a directory with each entry's lstat, sorted by name in
// byte order (the index's order).
// Entries reads the directory open at fd: each name, sorted, with its
// lstat as an index entry. Names removed while it reads are left out; an
// error names those it could not look at (the anti-entropy compare's read
// of a tree, package antientropy, which refuses an incomplete one).
func Entries(fd int) (names []string, entries []index.Entry, err error) {
	disk, unreadable, err := readEntries(fd)
	if err != nil {
		return nil, nil, err
	}
	if unreadable != nil {
		return nil, nil, unreadable
	}
	names = make([]string, len(disk))
	entries = make([]index.Entry, len(disk))
	for i, d := range disk {
		names[i], entries[i] = d.name, d.e
	}
	return names, entries, nil
}

func readEntries(fd int) (entries []diskEntry, unreadable, err error) {
	var bad []error
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("getdents: %w", err)
		}
		if n <= 0 {
			break
		}
		var names []string
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // removed while we read; its event follows
				}
				entries = append(entries, diskEntry{name: name, unknown: true})
				bad = append(bad, fmt.Errorf("lstat %q: %w", name, err))
				continue
			}
			entries = append(entries, diskEntry{name: name, e: index.FromStat(&st)})
		}
	}
	slices.SortFunc(entries, func(a, b diskEntry) int { return strings.Compare(a.name, b.name) })
	return entries, errors.Join(bad...), nil
}
