package bsmtest

import (
	"net/netip"
	"time"
)

// FreeBSD open(2) flags (sys/sys/fcntl.h).
const (
	ORdonly = 0x0000
	OWronly = 0x0001
	ORdwr   = 0x0002
	OCreat  = 0x0200
	OTrunc  = 0x0400
	OExcl   = 0x0800
)

// AtFDCWD is FreeBSD's AT_FDCWD. The kernel writes no "at fd" argument for
// it (namei_setup() in sys/kern/vfs_lookup.c records a real dirfd only).
const AtFDCWD = -100

// Event numbers of the builders (sys/bsm/audit_kevents.h).
const (
	EventLink      = 5
	EventUnlink    = 6
	EventChmod     = 10
	EventSymlink   = 21
	EventRename    = 42
	EventMkdir     = 47
	EventRmdir     = 48
	EventOpenR     = 72
	EventClose     = 112
	EventOpenatR   = 270
	EventRenameat  = 282
	EventUnlinkat  = 286
	EventLinkat    = 43147
	EventMkdirat   = 43148
	EventSymlinkat = 43152
)

// Call is what every kernel record carries besides its event's tokens:
// the subject, the jail, the time and the result.
type Call struct {
	Subject
	// Jail, when set, is written as a zonename token just before the
	// subject, as kaudit_to_bsm() does for a jailed credential.
	Jail string
	// Host, when valid, makes the header a header32_ex (auditd set a host
	// address with auditon(A_SETKAUDIT)).
	Host netip.Addr
	// Time is when the call ended.
	Time time.Time
	// Errno is the BSM error number (0: success); Ret the return value.
	Errno uint8
	Ret   uint32
}

// record closes a kernel record as kaudit_to_bsm() and kau_close() do
// (sys/security/audit/audit_bsm.c): the event's tokens, the zonename when
// jailed, the subject (subject32, or subject32_ex for an IPv6 terminal),
// return32, all wrapped in a header and a trailer.
func (c Call) record(event uint16, tokens ...[]byte) []byte {
	if c.Jail != "" {
		tokens = append(tokens, Zonename(c.Jail))
	}
	if a := c.Subject.Addr; a.IsValid() && !a.Unmap().Is4() {
		tokens = append(tokens, Subject32Ex(c.Subject))
	} else {
		tokens = append(tokens, Subject32(c.Subject))
	}
	tokens = append(tokens, Return32(c.Errno, c.Ret))
	if c.Host.IsValid() {
		return RecordEx(event, c.Time, c.Host, tokens...)
	}
	return Record(event, c.Time, tokens...)
}

// atFD is the "at fd" argument (ATFD1_TOKENS/ATFD2_TOKENS), written only
// for a real directory descriptor.
func atFD(n uint8, which string, fd int32) []byte {
	if fd == AtFDCWD {
		return nil
	}
	return Arg32(n, which, uint32(fd))
}

func nonNil(tokens ...[]byte) [][]byte {
	out := tokens[:0]
	for _, t := range tokens {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

func attrOf(a *Attr) []byte {
	if a == nil {
		return nil
	}
	return Attr32(*a)
}

// Open is open(2) or openat(2).
type Open struct {
	Call
	// At selects openat (AUE_OPENAT_*) over open (AUE_OPEN_*).
	At bool
	// DirFD is openat's directory descriptor: AtFDCWD (or 0 with At
	// false) writes no "at fd 1".
	DirFD int32
	Flags uint32 // O_* flags as passed
	Mode  uint32 // creation mode, written for O_CREAT only
	Path  string // the canonical path the kernel wrote
	// Attr is the file's vnode when it existed: a file the open created
	// has none (the CREATE lookup returns before AUDIT_ARG_VNODE1).
	Attr *Attr
}

// Event is the split open event the kernel picks from the access mode,
// O_CREAT and O_TRUNC (audit_flags_and_error_to_openatevent() in
// sys/security/audit/audit_bsm_klib.c): R, RC, RT, RTC, W, WC, WT, WTC,
// RW, RWC, RWT, RWTC from AUE_OPEN_R (72) or AUE_OPENAT_R (270).
func (o Open) Event() uint16 {
	base := uint16(EventOpenR)
	if o.At {
		base = EventOpenatR
	}
	i := uint16(0)
	switch o.Flags & 3 {
	case OWronly:
		i = 4
	case ORdwr:
		i = 8
	}
	if o.Flags&OTrunc != 0 {
		i += 2
	}
	if o.Flags&OCreat != 0 {
		i++
	}
	return base + i
}

// Bytes is the record of kaudit_to_bsm()'s AUE_OPEN*/AUE_OPENAT* cases:
// arg32 #3 "mode" (creating events), #2 "flags", "at fd 1", path, attr32.
func (o Open) Bytes() []byte {
	var mode []byte
	if o.Flags&OCreat != 0 {
		mode = Arg32(3, "mode", o.Mode)
	}
	dirfd := o.DirFD
	if !o.At {
		dirfd = AtFDCWD
	}
	return o.record(o.Event(), nonNil(mode, Arg32(2, "flags", o.Flags), atFD(1, "at fd 1", dirfd),
		Path(o.Path), attrOf(o.Attr))...)
}

// Close is close(2): kaudit_to_bsm()'s AUE_CLOSE case writes arg32 #1 "fd"
// and the vnode's attr32 (audit_sysclose() in
// sys/security/audit/audit_arg.c records it), never a path.
type Close struct {
	Call
	FD   uint32
	Attr *Attr
}

// Bytes is the close record.
func (c Close) Bytes() []byte {
	return c.record(EventClose, nonNil(Arg32(1, "fd", c.FD), attrOf(c.Attr))...)
}

// Rename is rename(2) or renameat(2); Link is link(2) or linkat(2) with
// the same shape: kaudit_to_bsm()'s AUE_LINK/AUE_LINKAT/AUE_RENAME/
// AUE_RENAMEAT case writes "at fd 1" (#1), the source path and its attr32,
// "at fd 2" (#3) and the target path, never an attr32 for the target.
type Rename struct {
	Call
	At           bool
	FromFD, ToFD int32 // directory descriptors; AtFDCWD writes none
	From, To     string
	FromAttr     *Attr
	// Link makes the record a link(2)/linkat(2) one.
	Link bool
}

// Bytes is the rename or link record.
func (r Rename) Bytes() []byte {
	ev := uint16(EventRename)
	switch {
	case r.Link && r.At:
		ev = EventLinkat
	case r.Link:
		ev = EventLink
	case r.At:
		ev = EventRenameat
	}
	fromFD, toFD := r.FromFD, r.ToFD
	if !r.At {
		fromFD, toFD = AtFDCWD, AtFDCWD
	}
	return r.record(ev, nonNil(atFD(1, "at fd 1", fromFD), Path(r.From), attrOf(r.FromAttr),
		atFD(3, "at fd 2", toFD), Path(r.To))...)
}

// Unlink is unlink(2), unlinkat(2) or, with Rmdir, rmdir(2):
// kaudit_to_bsm() writes "at fd 1", the path and the attr32 of the vnode
// removed.
type Unlink struct {
	Call
	At    bool
	Rmdir bool
	DirFD int32
	Path  string
	Attr  *Attr
}

// Bytes is the unlink, unlinkat or rmdir record.
func (u Unlink) Bytes() []byte {
	ev := uint16(EventUnlink)
	switch {
	case u.Rmdir:
		ev = EventRmdir
	case u.At:
		ev = EventUnlinkat
	}
	dirfd := u.DirFD
	if !u.At {
		dirfd = AtFDCWD
	}
	return u.record(ev, nonNil(atFD(1, "at fd 1", dirfd), Path(u.Path), attrOf(u.Attr))...)
}

// Mkdir is mkdir(2) or mkdirat(2): kaudit_to_bsm()'s AUE_MKDIR/AUE_MKDIRAT
// case writes "at fd 1", arg32 #2 "mode", the path, and an attr32 only when
// the directory existed (the call failed with EEXIST).
type Mkdir struct {
	Call
	At    bool
	DirFD int32
	Mode  uint32
	Path  string
	Attr  *Attr
}

// Bytes is the mkdir record.
func (m Mkdir) Bytes() []byte {
	ev := uint16(EventMkdir)
	dirfd := int32(AtFDCWD)
	if m.At {
		ev, dirfd = EventMkdirat, m.DirFD
	}
	return m.record(ev, nonNil(atFD(1, "at fd 1", dirfd), Arg32(2, "mode", m.Mode), Path(m.Path), attrOf(m.Attr))...)
}

// Symlink is symlink(2) or symlinkat(2): kaudit_to_bsm()'s AUE_SYMLINK/
// AUE_SYMLINKAT case writes the target as a text token, "at fd 1" and the
// new link's path.
type Symlink struct {
	Call
	At     bool
	DirFD  int32
	Target string
	Path   string
}

// Bytes is the symlink record.
func (s Symlink) Bytes() []byte {
	ev := uint16(EventSymlink)
	dirfd := int32(AtFDCWD)
	if s.At {
		ev, dirfd = EventSymlinkat, s.DirFD
	}
	return s.record(ev, nonNil(Text(s.Target), atFD(1, "at fd 1", dirfd), Path(s.Path))...)
}

// Chmod is chmod(2): kaudit_to_bsm()'s AUE_CHMOD case writes arg32 #2
// "new file mode", the path and its attr32.
type Chmod struct {
	Call
	Mode uint32
	Path string
	Attr *Attr
}

// Bytes is the chmod record.
func (c Chmod) Bytes() []byte {
	return c.record(EventChmod, nonNil(Arg32(2, "new file mode", c.Mode), Path(c.Path), attrOf(c.Attr))...)
}
