//go:build linux

package fanotify

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
)

// fileKind is the type of file lstat found.
type fileKind uint8

const (
	kindOther fileKind = iota // symlink, fifo, socket, device
	kindRegular
	kindDir
)

// pathState is what lstat found at an event's path when the event was read.
type pathState struct {
	exists bool
	kind   fileKind
	// noWriter is true for a regular file that no process has open for
	// writing.
	noWriter bool
	nlink    uint64
	size     int64
}

// classify maps the merged mask of an event other than FAN_RENAME and the
// state of its path when read to the ops to report and whether the change
// is finished. Op 0 means there is nothing to report. The mask says what
// happened, in an order the kernel lost; the state says what is left.
func classify(mask uint64, st pathState) (change.Op, bool) {
	if !st.exists {
		// Removed (or renamed away, which its own event reports).
		if mask&unix.FAN_ONDIR != 0 {
			return change.Rmdir, true
		}
		return change.Remove, true
	}
	var op change.Op
	switch {
	case mask&unix.FAN_DELETE != 0 && st.kind == kindDir:
		// Removed and made again: a new directory, whose tree is not
		// the old one, and the events inside the old one may have been
		// dropped with its handle: have the tree compared.
		op |= change.Mkdir | change.Subtree
	case mask&(unix.FAN_CREATE|unix.FAN_DELETE) != 0 && st.kind == kindDir:
		op |= change.Mkdir
	case mask&(unix.FAN_CREATE|unix.FAN_DELETE) != 0:
		// Created, or removed and made again: what is there is new.
		op |= change.Create
	}
	if mask&(unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE) != 0 && st.kind != kindDir {
		op |= change.Write
	}
	if mask&unix.FAN_ATTRIB != 0 {
		op |= change.Attrib
	}
	if op == 0 || st.kind != kindRegular {
		// Directories, symlinks, fifos and devices have no writer to
		// wait for: they are finished when made.
		return op, true
	}
	if unwritten(mask, st) {
		return op, false
	}
	// A regular file is finished when no writer has it open, whatever the
	// event: FAN_CLOSE_WRITE is the usual one, but a hard link, truncate(2)
	// and an mtime-only utimensat(2) (both FAN_MODIFY) come without a
	// close. While a writer has it open, the FAN_CLOSE_WRITE of its last
	// close is still to come.
	return op, st.noWriter
}

// unwritten reports a new empty file with nothing written yet, which is
// never finished by its creation alone: the lease cannot tell whether its
// creator will write. open(2) with O_CREAT queues FAN_CREATE as soon as
// the inode exists and takes write access only after it (fs/namei.c,
// open_last_lookups: fsnotify_create before do_open), so a writer
// preempted in between holds no write access when the lease is tried, and
// its file would go out empty or half-written. Its FAN_CLOSE_WRITE
// finishes it; a file made without write access (mknod(2),
// O_CREAT|O_RDONLY) is finished by the detector's probe a moment later. A
// new name of an existing file (link(2)) has two links or more, or
// content, and no writer to wait for.
func unwritten(mask uint64, st pathState) bool {
	return mask&unix.FAN_CREATE != 0 && mask&(unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE) == 0 && st.nlink < 2 && st.size == 0
}

// overflowChange is the change for FAN_Q_OVERFLOW: events were lost
// anywhere, so the whole root must be compared with the index.
func overflowChange(now time.Time) change.Change {
	return change.Change{Path: ".", Op: change.Rescan, Time: now}
}

// lostEvents is the change when events were lost: a Rescan of the whole
// root. The renames among them are lost too, so the directory cache can no
// longer be trusted.
func (s *Source) lostEvents(now time.Time) change.Change {
	if s.res != nil {
		s.res.cache.reset()
	}
	return overflowChange(now)
}

// eventChanges appends the changes one event means under the root to dst:
// those its names show, then the other names of its object it finishes.
func (s *Source) eventChanges(dst []change.Change, ev *event, now time.Time) []change.Change {
	from := len(dst)
	dst = s.namedChanges(dst, ev, now)
	return s.finishLinks(dst, from, ev, now)
}

// namedChanges appends the changes of the names an event holds.
func (s *Source) namedChanges(dst []change.Change, ev *event, now time.Time) []change.Change {
	switch {
	case ev.mask&unix.FAN_Q_OVERFLOW != 0:
		return append(dst, s.lostEvents(now))
	case ev.mask&unix.FAN_RENAME != 0:
		return s.renameChanges(dst, ev, now)
	case !ev.hasDir && ev.hasObj && ev.mask&^(unix.FAN_ATTRIB|unix.FAN_ONDIR) == 0:
		// A link count change, which has no name: the link or unlink
		// that made it is reported with its name.
		return dst
	case !ev.hasDir:
		// No directory to place the event in: it may be anywhere.
		return append(dst, s.lostEvents(now))
	}
	abs, res := s.entryPath(ev.dir, ev.name)
	s.cacheMade(ev, abs, res)
	switch res {
	case gone:
		return s.writtenInGoneDir(dst, ev, now)
	case lost:
		return append(dst, s.lostEvents(now))
	}
	s.cacheRemoved(ev, abs)
	n := len(dst)
	dst = s.stateChange(dst, abs, ev.mask, ev.pid, now)
	if len(dst) > n {
		s.noteWrittenInode(&dst[len(dst)-1], ev)
	}
	return dst
}

// cacheMade puts a directory that ev made in the directory cache at abs,
// the path its name resolved to (res), or marks it unplaced.
func (s *Source) cacheMade(ev *event, abs string, res resolution) {
	made := ev.mask&(unix.FAN_CREATE|unix.FAN_DELETE|unix.FAN_ONDIR) == unix.FAN_CREATE|unix.FAN_ONDIR && ev.hasObj
	switch {
	case made && res != resolved:
		// A directory made where the events read so far put nothing
		// (in a directory gone since, or unplaced itself): it is
		// nowhere they know either (dirCache's unplaced).
		s.res.cache.unplace(ev.obj.key)
	case made:
		// A directory made: its path as of this event, which the
		// directory's later events find in the cache (resolved when
		// read instead, after a later rename of it, they joined names of
		// two moments: resolver.asCached).
		s.res.cache.put(ev.obj.key, abs)
	}
}

// cacheRemoved takes a directory that ev removed, at abs, out of the
// directory cache. rmdir(2) removes only empty directories: no other
// entry can be below this one's.
func (s *Source) cacheRemoved(ev *event, abs string) {
	if ev.mask&(unix.FAN_DELETE|unix.FAN_ONDIR) != unix.FAN_DELETE|unix.FAN_ONDIR {
		return
	}
	if ev.hasObj {
		s.res.cache.drop(ev.obj.key)
	} else {
		s.res.cache.forget(abs)
	}
}

// noteWrittenInode gives c, the change that a write event ev made, the
// inode of the written file when c reads as its name's removal and the
// file lives on under another name (livingInode).
func (s *Source) noteWrittenInode(c *change.Change, ev *event) {
	if ev.hasObj && ev.mask&(unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE) != 0 && ev.mask&unix.FAN_ONDIR == 0 &&
		c.Op.Has(change.Remove) && !c.Op.Has(change.Create) {
		c.WrittenIno = s.livingInode(ev.obj)
	}
}

// writtenInGoneDir appends the change of a write through a name whose
// directory was removed before the event was read (write d/l; rm -r d),
// to a regular file that lives on under another name: that name holds the
// write, and no event names it. Where the kernel names the file (its
// handle opened, as a directory's is, and the path verified), the change
// is that name's (none outside the root); where the name it gives is
// under the root but does not verify (renamed since), the events are lost
// (a scan); where it gives none under the root (a file reachable only
// outside a bind-mounted root, or no name cached), nothing is reported,
// as before: a scan of the root would cost every such write outside it.
// Other events in a removed directory are moot, as the removal of its
// top-most removed ancestor is an event of its own. Until the forty-third
// session such a write was always dropped, and the peers kept the old
// content under the file's other names (the stress test, seed 26).
func (s *Source) writtenInGoneDir(dst []change.Change, ev *event, now time.Time) []change.Change {
	if !ev.hasObj || ev.mask&(unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE) == 0 || ev.mask&unix.FAN_ONDIR != 0 || s.livingInode(ev.obj) == 0 {
		return dst
	}
	abs, res := s.res.openSettled(ev.obj)
	switch res {
	case resolved:
		return s.stateChange(dst, abs, ev.mask, ev.pid, now)
	case moved:
		if _, in := s.rel(abs); in {
			return append(dst, s.lostEvents(now))
		}
	}
	return dst
}

// livingInode returns the inode of the regular file f names when it still
// has a name somewhere (a write's object, whose path is gone), else 0.
// Only a write read after its path went costs the lookup (two system
// calls and a close).
func (s *Source) livingInode(f fid) uint64 {
	fd, err := unix.OpenByHandleAt(s.res.mount, unix.NewFileHandle(f.typ, f.handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink == 0 {
		return 0
	}
	return st.Ino
}

// stateChange appends the change for abs, if under the root, that mask
// and the path's state now mean.
func (s *Source) stateChange(dst []change.Change, abs string, mask uint64, pid int32, now time.Time) []change.Change {
	rel, ok := s.rel(abs)
	if !ok {
		return dst
	}
	st, err := s.stat(rel, mask)
	if err != nil {
		return append(dst, s.newChange(rel, "", change.Rescan, false, pid, now))
	}
	op, finished := classify(mask, st)
	if op == 0 {
		return dst
	}
	c := s.newChange(rel, "", op, finished, pid, now)
	c.Closed = !finished && st.kind == kindRegular && mask&unix.FAN_CLOSE_WRITE != 0
	return s.emit(dst, c, st)
}

// entryPath resolves the directory of an event and joins the entry name.
func (s *Source) entryPath(dir fid, name string) (string, resolution) {
	p, res := s.res.dirPath(dir)
	if (res != resolved && res != unplaced) || name == "." {
		return p, res
	}
	if p == "/" {
		return "/" + name, res
	}
	return p + "/" + name, res
}

// rel returns the path of abs relative to the root, and false when it is
// outside the root or excluded.
func (s *Source) rel(abs string) (string, bool) {
	rel, ok := change.Rel(s.root, abs)
	if !ok || (s.opts.Exclude != nil && s.opts.Exclude(rel)) {
		return "", false
	}
	return rel, true
}

func (s *Source) newChange(rel, old string, op change.Op, finished bool, pid int32, now time.Time) change.Change {
	return change.Change{
		Path:     rel,
		OldPath:  old,
		Op:       op,
		Finished: finished,
		Echo:     s.opts.OwnPID != nil && s.opts.OwnPID(pid),
		Time:     now,
	}
}

// stat lstats rel beneath the root and, for a regular file, checks
// whether a writer still has it open, unless the event leaves it
// unfinished anyway (unwritten). Resolved beneath the root's descriptor
// with no symlink on the way (nodeagent/beneath), never by the absolute
// path: a directory of the path replaced by a link out of the root since
// the event (its rename not read yet) must not have the agent look at, or
// open, what the link points to. Such a path is gone from the tree.
func (s *Source) stat(rel string, mask uint64) (pathState, error) {
	var st unix.Stat_t
	err := beneath.Lstat(s.res.mount, rel, &st)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, beneath.ErrOutside) {
		return pathState{}, nil
	}
	if err != nil {
		return pathState{}, err
	}
	ps := pathState{exists: true, nlink: uint64(st.Nlink), size: st.Size}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		ps.kind = kindDir
	case unix.S_IFREG:
		ps.kind = kindRegular
		if !unwritten(mask, ps) {
			ps.noWriter = noWriter(s.res.mount, rel, mask)
		}
	}
	return ps, nil
}

// noWriter reports whether no process has the regular file at rel open for
// writing: a read lease (fcntl(2) F_SETLEASE with F_RDLCK, on a descriptor
// opened read-only) fails with EAGAIN while any writer has it open. The
// lease is released at once; O_NONBLOCK keeps the open from waiting for
// another holder's lease to break. Where leases do not work (disabled,
// unsupported filesystem), the event's FAN_CLOSE_WRITE is the best there
// is. See https://man7.org/linux/man-pages/man2/fcntl.2.html (Leases).
func noWriter(rootfd int, rel string, mask uint64) bool {
	fd, err := beneath.Open(rootfd, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	// Still a regular file: one swapped in since the lstat is not leased.
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == nil:
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		return true
	case errors.Is(err, unix.EAGAIN):
		return false
	default:
		return mask&unix.FAN_CLOSE_WRITE != 0
	}
}
