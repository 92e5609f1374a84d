package bsm

import "github.com/jailsync/jailsync/nodeagent/change"

// Target says how a FileChange names its file.
type Target uint8

const (
	// TargetPath: Change.Path (and Change.OldPath for a rename) name the
	// file, relative to the root.
	TargetPath Target = iota
	// TargetFD: the system call named no path (close, fchmod, ftruncate,
	// fsync): the file is the one the process PID has open as FD, or the
	// vnode Attr names (FSID, NodeID) when HasAttr.
	TargetFD
	// TargetUnknown: the kernel wrote an empty path (it could not build
	// one) where the event needs one. The change happened somewhere: the
	// caller must rescan. Change.Op still says what happened.
	TargetUnknown
)

// String is "path", "fd" or "unknown".
func (t Target) String() string {
	switch t {
	case TargetPath:
		return "path"
	case TargetFD:
		return "fd"
	}
	return "unknown"
}

// FileChange is what a kernel file record means for a data root: the
// change.Change, plus what a caller needs to tie opens to closes and to
// recognise its own writes.
type FileChange struct {
	change.Change
	// Target says whether Change.Path, or FD and Attr, name the file.
	Target Target
	// Close is true for a close(2): Change.Op is 0; FD is the descriptor
	// closed and Attr (when HasAttr) the vnode, to match with the open
	// that returned FD in the same PID.
	Close bool
	// PID and AUID are the subject's process id and audit user id
	// (AUIDUnset when the process never logged in).
	PID  uint32
	AUID uint32
	// FD is the descriptor an open returned, or the one a close or an
	// fd-based call (fchmod, ftruncate, fsync) used. HasFD says if set.
	FD    int32
	HasFD bool
	// Zone is the jail name from the zonename token, "" when unjailed.
	Zone string
	// Attr is the record's first vnode (for a rename or link, the source's)
	// as the kernel saw it during the call. The kernel writes none for a
	// file that an open or mkdir created.
	Attr    Attr
	HasAttr bool
}

// Change maps a kernel file record onto a change under root (absolute and
// clean; "" means "/"). It reports false for records that change nothing
// under root: failed system calls (return status not 0), reads, events it
// does not map, paths outside root. Paths are made relative with
// change.Rel, which cleans "..", "." and doubled slashes lexically.
//
//   - open/openat that may write (W, RW events): Write, or Create|Write when
//     O_CREAT was asked for and the record has no attr32 (the kernel writes
//     none for a file the open created); Finished false, FD from the return
//     value. A read-only open with O_CREAT and no attr32 is Create.
//   - unlink, unlinkat: Remove (unlinkat with AT_REMOVEDIR too: the record
//     does not say); rmdir: Rmdir; mkdir, mkdirat: Mkdir.
//   - symlink, link, mknod, mkfifo and their *at forms: Create of the new
//     name.
//   - rename, renameat: Rename from the first path to the second; Subtree
//     at the new name when the old one was outside root (the record does
//     not say whether it is a directory); Remove of the old name when the
//     new one is outside root.
//   - chmod, chown, utimes, chflags, extattr and ACL changes by path:
//     Attrib; truncate: Write.
//   - close: Close with FD and Attr; fchmod, fchown, futimes, fchflags and
//     fd-based extattr/ACL calls: Attrib by FD; ftruncate, fsync, write,
//     pwrite, posix_fallocate: Write by FD, unfinished.
func (r *Record) Change(root string) (FileChange, bool) {
	var fc FileChange
	if !r.HasHeader() || r.Err != nil {
		return fc, false
	}
	if ret, ok := r.Return(); !ok || ret.Status != 0 {
		return fc, false
	}
	if root == "" {
		root = "/"
	}
	fc.Time = r.Time
	fc.Finished = true
	if s, ok := r.Subject(); ok {
		fc.PID, fc.AUID = s.PID, s.AUID
	}
	fc.Attr, fc.HasAttr = r.Attr()
	fc, ok := r.mapChange(fc, root)
	if z, jailed := r.Zonename(); ok && jailed {
		fc.Zone = string(z)
	}
	return fc, ok
}

// mapChange dispatches on the event to fill in what happened.
func (r *Record) mapChange(fc FileChange, root string) (FileChange, bool) {
	if mode, ok := openMode(r.Event); ok {
		return r.openChange(fc, root, mode)
	}
	if op, ok := pathOp(r.Event); ok {
		return r.onePath(fc, root, 0, op)
	}
	if op, ok := fdOp(r.Event); ok {
		return r.fdChange(fc, op)
	}
	switch r.Event {
	case EventRename, EventRenameat:
		return r.renameChange(fc, root)
	case EventLink, EventLinkat:
		return r.onePath(fc, root, 1, change.Create)
	}
	return fc, false
}

// pathOp maps the events that name one file by path (the first path
// token) to what they do to it.
func pathOp(e Event) (change.Op, bool) {
	switch e {
	case EventUnlink, EventUnlinkat:
		return change.Remove, true
	case EventRmdir:
		return change.Rmdir, true
	case EventMkdir, EventMkdirat:
		return change.Mkdir, true
	case EventSymlink, EventSymlinkat, EventMknod, EventMknodat, EventMkfifo, EventMkfifoat:
		return change.Create, true
	case EventTruncate:
		return change.Write, true
	case EventChmod, EventLchmod, EventFchmodat, EventChown, EventLchown, EventFchownat,
		EventUtimes, EventLutimes, EventFutimesat, EventChflags, EventLchflags, EventChflagsat,
		EventExtattrSetF, EventExtattrDelF, EventExtattrSetL, EventExtattrDelL,
		EventACLSetFile, EventACLDelFile, EventACLSetLink, EventACLDelLink:
		return change.Attrib, true
	}
	return 0, false
}

// fdOp maps the events that name their file by descriptor. Op 0 is close.
func fdOp(e Event) (change.Op, bool) {
	switch e {
	case EventClose:
		return 0, true
	case EventFchmod, EventFchown, EventFutimes, EventFchflags,
		EventExtattrSetFD, EventExtattrDelFD, EventACLSetFD, EventACLDelFD:
		return change.Attrib, true
	case EventFtruncate, EventFsync, EventWrite, EventWritev, EventPwrite, EventPwritev, EventFallocate:
		return change.Write, true
	}
	return 0, false
}

// openChange maps an open or openat event (mode from openMode).
func (r *Record) openChange(fc FileChange, root string, mode int) (FileChange, bool) {
	created := mode&openCreat != 0 && !fc.HasAttr
	var op change.Op
	switch {
	case mode&openWrite != 0 && created:
		op = change.Create | change.Write
	case mode&openWrite != 0:
		op = change.Write
	case created:
		op = change.Create // O_RDONLY|O_CREAT made an empty file
	default:
		return fc, false
	}
	fc, ok := r.onePath(fc, root, 0, op)
	if !ok {
		return fc, false
	}
	ret, _ := r.Return()
	fc.FD, fc.HasFD = int32(uint32(ret.Value)), true
	fc.Finished = mode&openWrite == 0
	return fc, true
}

// onePath fills in the i-th path token as Change.Path.
func (r *Record) onePath(fc FileChange, root string, i int, op change.Op) (FileChange, bool) {
	fc.Op = op
	p, ok := r.Path(i)
	if !ok {
		return fc, false
	}
	if len(p) == 0 {
		fc.Target = TargetUnknown
		return fc, true
	}
	rel, ok := relPath(root, p)
	if !ok {
		return fc, false
	}
	fc.Path = rel
	return fc, true
}

// relPath is change.Rel(root, string(p)), with one allocation instead of
// several for the common case of a path that is already clean.
func relPath(root string, p []byte) (string, bool) {
	if !isCleanAbs(p) {
		return change.Rel(root, string(p))
	}
	switch {
	case root == "/" && len(p) == 1:
		return ".", true
	case root == "/":
		return string(p[1:]), true
	case string(p) == root:
		return ".", true
	case len(p) > len(root) && p[len(root)] == '/' && string(p[:len(root)]) == root:
		return string(p[len(root)+1:]), true
	}
	return "", false
}

// isCleanAbs reports whether p is absolute and lexically clean: no empty,
// "." or ".." names and no trailing slash (but "/" itself).
func isCleanAbs(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	if len(p) == 1 {
		return true
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch name := p[start:i]; {
		case len(name) == 0, len(name) == 1 && name[0] == '.', len(name) == 2 && name[0] == '.' && name[1] == '.':
			return false
		}
		start = i + 1
	}
	return true
}

// fdChange maps a close or an fd-based call. The descriptor is the arg32
// described "fd" (or "non-file: fd"), whatever its number: close writes it
// as #1, the fd-based extattr calls as #2 (kaudit_to_bsm() in
// sys/security/audit/audit_bsm.c).
func (r *Record) fdChange(fc FileChange, op change.Op) (FileChange, bool) {
	fc.Target = TargetFD
	fc.Op = op
	if op == 0 {
		fc.Close = true
	} else if op.Has(change.Write) {
		fc.Finished = false
	}
	a, ok := r.ArgDesc("fd")
	if !ok {
		a, ok = r.ArgDesc("non-file: fd")
	}
	if ok {
		fc.FD, fc.HasFD = int32(uint32(a.Value)), true
	}
	return fc, ok || fc.HasAttr
}

// renameChange maps rename and renameat: path 0 is the old name, path 1
// the new one.
func (r *Record) renameChange(fc FileChange, root string) (FileChange, bool) {
	from, ok1 := r.Path(0)
	to, ok2 := r.Path(1)
	if !ok1 || !ok2 {
		return fc, false
	}
	if len(from) == 0 || len(to) == 0 {
		fc.Op, fc.Target = change.Rename, TargetUnknown
		return fc, true
	}
	oldRel, oldIn := relPath(root, from)
	newRel, newIn := relPath(root, to)
	switch {
	case oldIn && newIn:
		fc.Op, fc.Path, fc.OldPath = change.Rename, newRel, oldRel
	case newIn:
		fc.Op, fc.Path = change.Subtree, newRel
	case oldIn:
		fc.Op, fc.Path = change.Remove, oldRel
	default:
		return fc, false
	}
	return fc, true
}
