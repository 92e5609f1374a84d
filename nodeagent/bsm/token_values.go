package bsm

import (
	"bytes"
	"net/netip"
	"time"
)

// Header holds the fields of a header32, header32_ex, header64 or
// header64_ex token.
type Header struct {
	// Size is the whole record's length in bytes.
	Size uint32
	// Version is the record format: 11 for current OpenBSM and FreeBSD,
	// 10 for older trails.
	Version uint8
	// Event is the audit event number.
	Event Event
	// Modifier is the event modifier (0 from the FreeBSD kernel).
	Modifier uint16
	// Host is the host address auditd configured (the _ex headers only).
	Host netip.Addr
	// Seconds and Msec are the time the event ended.
	Seconds uint64
	Msec    uint64
}

// Time is the header's time in UTC.
func (h Header) Time() time.Time {
	return unixMsec(h.Seconds, h.Msec)
}

// unixMsec converts seconds and milliseconds, which hostile input may set
// to any value, to a UTC time without overflow panics.
func unixMsec(sec, msec uint64) time.Time {
	s := int64(sec) + int64(msec/1000)
	return time.Unix(s, int64(msec%1000)*int64(time.Millisecond)).UTC()
}

// Header returns the fields of a header token.
func (t Token) Header() (Header, bool) {
	var h Header
	wide := t.Type == TokenHeader64 || t.Type == TokenHeader64Ex
	ex := t.Type == TokenHeader32Ex || t.Type == TokenHeader64Ex
	if !wide && !ex && t.Type != TokenHeader32 || len(t.raw) < 10 {
		return h, false
	}
	b := t.raw
	h.Size = be32(b[1:])
	h.Version = b[5]
	h.Event = Event(be16(b[6:]))
	h.Modifier = be16(b[8:])
	off := 10
	if ex {
		if len(b) < 14 {
			return h, false
		}
		n, err := addrLen(be32(b[10:]))
		if err != nil || len(b) < 14+n {
			return h, false
		}
		h.Host = ipAddr(b[14 : 14+n])
		off = 14 + n
	}
	if wide {
		if len(b) < off+16 {
			return h, false
		}
		h.Seconds, h.Msec = be64(b[off:]), be64(b[off+8:])
	} else {
		if len(b) < off+8 {
			return h, false
		}
		h.Seconds, h.Msec = uint64(be32(b[off:])), uint64(be32(b[off+4:]))
	}
	return h, true
}

// Trailer returns a trailer token's magic (0xB105) and count (the record's
// size).
func (t Token) Trailer() (magic uint16, count uint32, ok bool) {
	if t.Type != TokenTrailer || len(t.raw) < sizeTrailer {
		return 0, 0, false
	}
	return be16(t.raw[1:]), be32(t.raw[3:]), true
}

// Subject holds the fields of a subject or process token, 32 or 64 bit,
// plain or _ex.
type Subject struct {
	// AUID is the audit user id; AUIDUnset (0xFFFFFFFF) means not set.
	AUID uint32
	EUID uint32
	EGID uint32
	RUID uint32
	RGID uint32
	PID  uint32
	// SID is the audit session id.
	SID uint32
	// Port and Addr are the terminal id.
	Port uint64
	Addr netip.Addr
}

// AUIDUnset is the audit user id of a process that never logged in.
const AUIDUnset = 0xFFFFFFFF

// IsProcess reports whether the token describes a process that an event
// acted on (a process token) rather than the process that caused the event
// (a subject token).
func (t TokenType) IsProcess() bool {
	switch t {
	case TokenProcess32, TokenProcess64, TokenProcess32Ex, TokenProcess64Ex:
		return true
	}
	return false
}

// Subject returns the fields of a subject* or process* token.
func (t Token) Subject() (Subject, bool) {
	var s Subject
	port, ex := 4, false
	switch t.Type {
	case TokenSubject32, TokenProcess32:
	case TokenSubject64, TokenProcess64:
		port = 8
	case TokenSubject32Ex, TokenProcess32Ex:
		ex = true
	case TokenSubject64Ex, TokenProcess64Ex:
		port, ex = 8, true
	default:
		return s, false
	}
	b := t.raw
	off := 1 + 7*4 + port
	if len(b) < off+4 {
		return s, false
	}
	s.AUID, s.EUID, s.EGID = be32(b[1:]), be32(b[5:]), be32(b[9:])
	s.RUID, s.RGID, s.PID = be32(b[13:]), be32(b[17:]), be32(b[21:])
	s.SID = be32(b[25:])
	if port == 8 {
		s.Port = be64(b[29:])
	} else {
		s.Port = uint64(be32(b[29:]))
	}
	n := 4
	if ex {
		var err error
		if n, err = addrLen(be32(b[off:])); err != nil {
			return s, false
		}
		off += 4
	}
	if len(b) < off+n {
		return s, false
	}
	s.Addr = ipAddr(b[off : off+n])
	return s, true
}

// Arg holds an arg32 or arg64 token: the system call argument number, its
// value and the kernel's description ("flags", "at fd 1", "fd").
type Arg struct {
	Num   uint8
	Value uint64
	Desc  []byte
}

// Arg returns the fields of an arg32 or arg64 token.
func (t Token) Arg() (Arg, bool) {
	var a Arg
	b := t.raw
	var off int
	switch {
	case t.Type == TokenArg32 && len(b) >= 8:
		a.Value, off = uint64(be32(b[2:])), 6
	case t.Type == TokenArg64 && len(b) >= 12:
		a.Value, off = be64(b[2:]), 10
	default:
		return a, false
	}
	a.Num = b[1]
	a.Desc = trimNUL(b[off+2:])
	return a, true
}

// Return holds a return32 or return64 token: the BSM error number (0 on
// success; see ErrnoName) and the system call's return value.
type Return struct {
	Status uint8
	Value  uint64
}

// Return returns the fields of a return32 or return64 token.
func (t Token) Return() (Return, bool) {
	b := t.raw
	switch {
	case t.Type == TokenReturn32 && len(b) >= 6:
		return Return{Status: b[1], Value: uint64(be32(b[2:]))}, true
	case t.Type == TokenReturn64 && len(b) >= 10:
		return Return{Status: b[1], Value: be64(b[2:])}, true
	}
	return Return{}, false
}

// Attr holds an attr32 or attr64 token: a vnode's attributes as the kernel
// saw them. Mode holds the permission bits only (va_mode), not the file
// type.
type Attr struct {
	Mode   uint32
	UID    uint32
	GID    uint32
	FSID   uint32
	NodeID uint64
	Device uint64
}

// Attr returns the fields of an attr32 or attr64 token.
func (t Token) Attr() (Attr, bool) {
	b := t.raw
	var a Attr
	switch {
	case t.Type == TokenAttr32 && len(b) >= 29:
		a.Device = uint64(be32(b[25:]))
	case t.Type == TokenAttr64 && len(b) >= 33:
		a.Device = be64(b[25:])
	default:
		return a, false
	}
	a.Mode, a.UID, a.GID, a.FSID = be32(b[1:]), be32(b[5:]), be32(b[9:]), be32(b[13:])
	a.NodeID = be64(b[17:])
	return a, true
}

// Text returns the string of a path, text or zonename token, without its
// terminating NUL. An empty path means the kernel could not build it.
func (t Token) Text() ([]byte, bool) {
	switch t.Type {
	case TokenPath, TokenText, TokenZonename:
		if len(t.raw) >= 3 {
			return trimNUL(t.raw[3:]), true
		}
	}
	return nil, false
}

// File holds a file token: the time a trail file was opened or closed and
// its name.
type File struct {
	Seconds uint32
	Msec    uint32
	Name    []byte
}

// Time is the file token's time in UTC.
func (f File) Time() time.Time { return unixMsec(uint64(f.Seconds), uint64(f.Msec)) }

// File returns the fields of a file token.
func (t Token) File() (File, bool) {
	if t.Type != TokenFile || len(t.raw) < 11 {
		return File{}, false
	}
	b := t.raw
	return File{Seconds: be32(b[1:]), Msec: be32(b[5:]), Name: trimNUL(b[11:])}, true
}

// Exit returns an exit token's status and return value.
func (t Token) Exit() (status, value uint32, ok bool) {
	if t.Type != TokenExit || len(t.raw) < 9 {
		return 0, 0, false
	}
	return be32(t.raw[1:]), be32(t.raw[5:]), true
}

// ExecStrings appends the strings of an exec_args or exec_env token to dst,
// without their NULs, and returns it (dst unchanged for other tokens).
func (t Token) ExecStrings(dst [][]byte) [][]byte {
	if t.Type != TokenExecArgs && t.Type != TokenExecEnv || len(t.raw) < 5 {
		return dst
	}
	return appendSplitNUL(dst, t.raw[5:])
}

// appendSplitNUL appends the NUL-terminated strings in b to dst (a last
// one may lack its NUL).
func appendSplitNUL(dst [][]byte, b []byte) [][]byte {
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return append(dst, b)
		}
		dst = append(dst, b[:i])
		b = b[i+1:]
	}
	return dst
}

// UUIDArg holds an arg_uuid or return_uuid token.
type UUIDArg struct {
	Num  uint8
	UUID [16]byte // big-endian, as uuid_enc_be(3) wrote it
	Desc []byte
}

// UUID returns the fields of an arg_uuid or return_uuid token.
func (t Token) UUID() (UUIDArg, bool) {
	var u UUIDArg
	if t.Type != TokenArgUUID && t.Type != TokenReturnUUID || len(t.raw) < 20 {
		return u, false
	}
	u.Num = t.raw[1]
	copy(u.UUID[:], t.raw[2:18])
	u.Desc = trimNUL(t.raw[20:])
	return u, true
}

// ipAddr makes an address of 4 or 16 bytes.
func ipAddr(b []byte) netip.Addr {
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	if len(b) == 16 {
		return netip.AddrFrom16([16]byte(b))
	}
	return netip.Addr{}
}

// trimNUL drops the terminating NULs of a BSM string.
func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
