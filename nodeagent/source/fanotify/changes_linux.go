//go:build linux

package fanotify

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"

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
	if mask&(unix.FAN_CREATE|unix.FAN_DELETE) != 0 {
		// Created, or removed and made again: what is there is new.
		if st.kind == kindDir {
			op |= change.Mkdir
		} else {
			op |= change.Create
		}
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
	// A regular file is finished when no writer has it open, whatever the
	// event: FAN_CLOSE_WRITE is the usual one, but a hard link, a file
	// created without write access, truncate(2) and an mtime-only
	// utimensat(2) (both FAN_MODIFY) come without a close. While a writer
	// has it open, the FAN_CLOSE_WRITE of its last close is still to come.
	return op, st.noWriter
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

// eventChange maps one event to the change it means under the root, if any.
func (s *Source) eventChange(ev *event, now time.Time) (change.Change, bool) {
	switch {
	case ev.mask&unix.FAN_Q_OVERFLOW != 0:
		return s.lostEvents(now), true
	case ev.mask&unix.FAN_RENAME != 0:
		return s.renameChange(ev, now)
	case !ev.hasDir:
		// No directory to place the event in: it may be anywhere.
		return s.lostEvents(now), true
	}
	abs, res := s.entryPath(ev.dir, ev.name)
	switch res {
	case gone:
		return change.Change{}, false
	case lost:
		return s.lostEvents(now), true
	}
	if ev.mask&(unix.FAN_DELETE|unix.FAN_ONDIR) == unix.FAN_DELETE|unix.FAN_ONDIR {
		s.res.cache.forget(abs)
	}
	rel, ok := s.rel(abs)
	if !ok {
		return change.Change{}, false
	}
	st, err := stat(abs, ev.mask)
	if err != nil {
		return s.newChange(rel, "", change.Rescan, false, ev.pid, now), true
	}
	op, finished := classify(ev.mask, st)
	if op == 0 {
		return change.Change{}, false
	}
	return s.newChange(rel, "", op, finished, ev.pid, now), true
}

// renameChange maps a FAN_RENAME event, which names the old and the new
// directory entry. A side outside the root, or excluded, counts as outside:
// a rename into the root is a Create (a Subtree for a directory), a rename
// out of it a Remove (an Rmdir).
func (s *Source) renameChange(ev *event, now time.Time) (change.Change, bool) {
	if !ev.hasDir || !ev.hasNew {
		return s.lostEvents(now), true
	}
	oldAbs, oldRes := s.entryPath(ev.dir, ev.name)
	newAbs, newRes := s.entryPath(ev.newDir, ev.newName)
	if oldRes == lost || newRes == lost {
		return s.lostEvents(now), true
	}
	isDir := ev.mask&unix.FAN_ONDIR != 0
	if isDir {
		// The cached paths of the directory and below it start with its
		// old path, or with its new one when resolved after the rename.
		// Without the old path (its directory was removed since), they
		// cannot be found: start over.
		if oldRes != resolved {
			s.res.cache.reset()
		}
		s.res.cache.forget(oldAbs)
		s.res.cache.forget(newAbs)
	}
	var oldRel, newRel string
	var inOld, inNew bool
	if oldRes == resolved {
		oldRel, inOld = s.rel(oldAbs)
	}
	if newRes == resolved {
		newRel, inNew = s.rel(newAbs)
	}
	if !inNew {
		if !inOld {
			return change.Change{}, false
		}
		if isDir {
			return s.newChange(oldRel, "", change.Rmdir, true, ev.pid, now), true
		}
		return s.newChange(oldRel, "", change.Remove, true, ev.pid, now), true
	}
	st, err := stat(newAbs, ev.mask)
	if err != nil {
		return s.newChange(newRel, "", change.Rescan, false, ev.pid, now), true
	}
	finished := st.kind != kindRegular || st.noWriter
	switch {
	case inOld:
		return s.newChange(newRel, oldRel, change.Rename, finished, ev.pid, now), true
	case !st.exists:
		// Moved in and away or removed since; its own event follows.
		op, _ := classify(ev.mask&unix.FAN_ONDIR, st)
		return s.newChange(newRel, "", op, true, ev.pid, now), true
	case st.kind == kindDir:
		return s.newChange(newRel, "", change.Subtree, true, ev.pid, now), true
	default:
		return s.newChange(newRel, "", change.Create, finished, ev.pid, now), true
	}
}

// entryPath resolves the directory of an event and joins the entry name.
func (s *Source) entryPath(dir fid, name string) (string, resolution) {
	p, res := s.res.dirPath(dir)
	if res != resolved || name == "." {
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

// stat lstats abs and, for a regular file, checks whether a writer still
// has it open.
func stat(abs string, mask uint64) (pathState, error) {
	var st unix.Stat_t
	err := unix.Lstat(abs, &st)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return pathState{}, nil
	}
	if err != nil {
		return pathState{}, err
	}
	ps := pathState{exists: true}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		ps.kind = kindDir
	case unix.S_IFREG:
		ps.kind = kindRegular
		ps.noWriter = noWriter(abs, mask)
	}
	return ps, nil
}

// noWriter reports whether no process has the regular file at abs open for
// writing: a read lease (fcntl(2) F_SETLEASE with F_RDLCK, on a descriptor
// opened read-only) fails with EAGAIN while any writer has it open. The
// lease is released at once; O_NONBLOCK keeps the open from waiting for
// another holder's lease to break. Where leases do not work (disabled,
// unsupported filesystem), the event's FAN_CLOSE_WRITE is the best there
// is. See https://man7.org/linux/man-pages/man2/fcntl.2.html (Leases).
func noWriter(abs string, mask uint64) bool {
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
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
