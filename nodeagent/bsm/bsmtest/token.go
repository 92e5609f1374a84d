// Package bsmtest encodes BSM tokens and builds audit records in the
// shapes FreeBSD's kernel writes, for tests of packages that read
// /dev/auditpipe. It is written from the token layouts (OpenBSM's
// libbsm/bsm_token.c) and the kernel's token order per system call
// (kaudit_to_bsm() in sys/security/audit/audit_bsm.c), independently of
// package bsm's decoder, so that each checks the other.
package bsmtest

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Token ids (OpenBSM sys/bsm/audit_record.h, FreeBSD for AUT_RIGHTS).
const (
	idFile        = 0x11
	idTrailer     = 0x13
	idHeader32    = 0x14
	idHeader32Ex  = 0x15
	idPath        = 0x23
	idSubject32   = 0x24
	idProcess32   = 0x26
	idReturn32    = 0x27
	idText        = 0x28
	idArg32       = 0x2d
	idSocket      = 0x2e
	idIPCPerm     = 0x32
	idPrivSet     = 0x38
	idUPriv       = 0x39
	idNewGroups   = 0x3b
	idExecArgs    = 0x3c
	idExecEnv     = 0x3d
	idAttr32      = 0x3e
	idExit        = 0x52
	idZonename    = 0x60
	idArg64       = 0x71
	idReturn64    = 0x72
	idAttr64      = 0x73
	idHeader64    = 0x74
	idSubject64   = 0x75
	idProcess64   = 0x77
	idHeader64Ex  = 0x79
	idSubject32Ex = 0x7a
	idProcess32Ex = 0x7b
	idSubject64Ex = 0x7c
	idProcess64Ex = 0x7d
	idInAddrEx    = 0x7e
	idSockInet32  = 0x80
	idSockInet128 = 0x81
	idSockUnix    = 0x82
	idRights      = 0x83
)

// Version is the header version the kernel writes
// (AUDIT_HEADER_VERSION_OPENBSM11).
const Version = 11

// TrailerSize and Header32Size are the fixed token sizes.
const (
	TrailerSize  = 7
	Header32Size = 18
)

// enc appends big-endian values to a token.
type enc []byte

func (e enc) u8(v uint8) enc   { return append(e, v) }
func (e enc) u16(v uint16) enc { return binary.BigEndian.AppendUint16(e, v) }
func (e enc) u32(v uint32) enc { return binary.BigEndian.AppendUint32(e, v) }
func (e enc) u64(v uint64) enc { return binary.BigEndian.AppendUint64(e, v) }

// str appends a u16 length (counting the NUL) and the string with its
// NUL, as ADD_STRING after a length does in bsm_token.c.
func (e enc) str(s string) enc { return append(e.u16(uint16(len(s)+1)), s...).u8(0) }

// addr appends a 4- or 16-byte address.
func (e enc) addr(a netip.Addr) enc {
	if a.Is4() {
		b := a.As4()
		return append(e, b[:]...)
	}
	b := a.As16()
	return append(e, b[:]...)
}

// addrType is AU_IPv4 (4) or AU_IPv6 (16).
func addrType(a netip.Addr) uint32 {
	if a.Is4() {
		return 4
	}
	return 16
}

// msec is the millisecond part of t as au_to_header32_tm writes it
// (tv_usec / 1000).
func msec(t time.Time) uint32 { return uint32(t.Nanosecond() / 1e6) }

// Header32 is au_to_header32_tm(): size, version, event, modifier,
// seconds, milliseconds.
func Header32(size uint32, event, modifier uint16, t time.Time) []byte {
	return enc{idHeader32}.u32(size).u8(Version).u16(event).u16(modifier).
		u32(uint32(t.Unix())).u32(msec(t))
}

// Header32Ex is au_to_header32_ex_tm(): as Header32 with the host address
// type and address before the time.
func Header32Ex(size uint32, event, modifier uint16, host netip.Addr, t time.Time) []byte {
	return enc{idHeader32Ex}.u32(size).u8(Version).u16(event).u16(modifier).
		u32(addrType(host)).addr(host).u32(uint32(t.Unix())).u32(msec(t))
}

// Header64 is au_to_header64_tm(): as Header32 with u64 seconds and
// milliseconds.
func Header64(size uint32, event, modifier uint16, t time.Time) []byte {
	return enc{idHeader64}.u32(size).u8(Version).u16(event).u16(modifier).
		u64(uint64(t.Unix())).u64(uint64(msec(t)))
}

// Header64Ex is the 64-bit _ex header as OpenBSM's fetch_header64_ex_tok
// (libbsm/bsm_io.c) reads it; libbsm has no writer for it.
func Header64Ex(size uint32, event, modifier uint16, host netip.Addr, t time.Time) []byte {
	return enc{idHeader64Ex}.u32(size).u8(Version).u16(event).u16(modifier).
		u32(addrType(host)).addr(host).u64(uint64(t.Unix())).u64(uint64(msec(t)))
}

// Trailer is au_to_trailer(): magic 0xB105 and the record size.
func Trailer(size uint32) []byte { return enc{idTrailer}.u16(0xb105).u32(size) }

// Arg32 is au_to_arg32(): argument number, value, description.
func Arg32(n uint8, desc string, v uint32) []byte { return enc{idArg32}.u8(n).u32(v).str(desc) }

// Arg64 is au_to_arg64().
func Arg64(n uint8, desc string, v uint64) []byte { return enc{idArg64}.u8(n).u64(v).str(desc) }

// Return32 is au_to_return32(): BSM error number and return value.
func Return32(status uint8, v uint32) []byte { return enc{idReturn32}.u8(status).u32(v) }

// Return64 is au_to_return64().
func Return64(status uint8, v uint64) []byte { return enc{idReturn64}.u8(status).u64(v) }

// Path is au_to_path(). The kernel writes the path it canonicalised;
// pass "" for the empty path it writes when it could not build one.
func Path(p string) []byte { return enc{idPath}.str(p) }

// Text is au_to_text().
func Text(s string) []byte { return enc{idText}.str(s) }

// Zonename is au_to_zonename(): a jail's name.
func Zonename(name string) []byte { return enc{idZonename}.str(name) }

// Attr is a vnode's attributes as au_to_attr32() writes them.
type Attr struct {
	Mode, UID, GID, FSID uint32
	NodeID, Dev          uint64
}

// Attr32 is au_to_attr32(): mode, uid, gid, fsid, node id (u64), device
// (u32).
func Attr32(a Attr) []byte {
	return enc{idAttr32}.u32(a.Mode).u32(a.UID).u32(a.GID).u32(a.FSID).u64(a.NodeID).u32(uint32(a.Dev))
}

// Attr64 is au_to_attr64(): as Attr32 with a u64 device.
func Attr64(a Attr) []byte {
	return enc{idAttr64}.u32(a.Mode).u32(a.UID).u32(a.GID).u32(a.FSID).u64(a.NodeID).u64(a.Dev)
}

// Subject is what subject and process tokens say of a process.
type Subject struct {
	AUID, EUID, EGID, RUID, RGID, PID, SID uint32
	Port                                   uint64
	Addr                                   netip.Addr // zero value: 0.0.0.0
}

func (s Subject) ids(e enc) enc {
	return e.u32(s.AUID).u32(s.EUID).u32(s.EGID).u32(s.RUID).u32(s.RGID).u32(s.PID).u32(s.SID)
}

// v4 is the address for the tokens that hold IPv4 only.
func (s Subject) v4() netip.Addr {
	if a := s.Addr.Unmap(); a.Is4() {
		return a
	}
	return netip.IPv4Unspecified()
}

// ex is the address for the _ex tokens.
func (s Subject) ex() netip.Addr {
	if !s.Addr.IsValid() {
		return netip.IPv4Unspecified()
	}
	return s.Addr
}

// Subject32 is au_to_subject32(): ids, u32 port, IPv4 address.
func Subject32(s Subject) []byte { return s.ids(enc{idSubject32}).u32(uint32(s.Port)).addr(s.v4()) }

// Process32 is au_to_process32().
func Process32(s Subject) []byte { return s.ids(enc{idProcess32}).u32(uint32(s.Port)).addr(s.v4()) }

// Subject64 is au_to_subject64(): ids, u64 port, IPv4 address.
func Subject64(s Subject) []byte { return s.ids(enc{idSubject64}).u64(s.Port).addr(s.v4()) }

// Process64 is au_to_process64().
func Process64(s Subject) []byte { return s.ids(enc{idProcess64}).u64(s.Port).addr(s.v4()) }

// Subject32Ex is au_to_subject32_ex(): ids, u32 port, address type,
// address.
func Subject32Ex(s Subject) []byte {
	a := s.ex()
	return s.ids(enc{idSubject32Ex}).u32(uint32(s.Port)).u32(addrType(a)).addr(a)
}

// Process32Ex is au_to_process32_ex().
func Process32Ex(s Subject) []byte {
	a := s.ex()
	return s.ids(enc{idProcess32Ex}).u32(uint32(s.Port)).u32(addrType(a)).addr(a)
}

// Subject64Ex is au_to_subject64_ex(): ids, u64 port, address type,
// address.
func Subject64Ex(s Subject) []byte {
	a := s.ex()
	return s.ids(enc{idSubject64Ex}).u64(s.Port).u32(addrType(a)).addr(a)
}

// Process64Ex is au_to_process64_ex().
func Process64Ex(s Subject) []byte {
	a := s.ex()
	return s.ids(enc{idProcess64Ex}).u64(s.Port).u32(addrType(a)).addr(a)
}

func execStrings(id byte, ss []string) []byte {
	e := enc{id}.u32(uint32(len(ss)))
	for _, s := range ss {
		e = append(e, s...).u8(0)
	}
	return e
}

// ExecArgs is au_to_exec_args(): a count and NUL-terminated strings.
func ExecArgs(args ...string) []byte { return execStrings(idExecArgs, args) }

// ExecEnv is au_to_exec_env().
func ExecEnv(env ...string) []byte { return execStrings(idExecEnv, env) }

// Exit is au_to_exit(): status and return value.
func Exit(status, ret uint32) []byte { return enc{idExit}.u32(status).u32(ret) }

// File is au_to_file(): seconds, milliseconds, name; it stands alone at
// the start and end of a trail file.
func File(name string, t time.Time) []byte {
	return enc{idFile}.u32(uint32(t.Unix())).u32(msec(t)).str(name)
}

// InAddrEx is au_to_in_addr_ex(): type and IPv6 address.
func InAddrEx(a netip.Addr) []byte { return enc{idInAddrEx}.u32(addrType(a)).addr(a) }

// IPCPerm is au_to_ipc_perm() where ipc_perm has 32-bit ids: uid, gid,
// creator uid and gid, mode, sequence, key, each as 32 bits.
func IPCPerm(uid, gid, cuid, cgid, mode, seq, key uint32) []byte {
	return enc{idIPCPerm}.u32(uid).u32(gid).u32(cuid).u32(cgid).u32(mode).u32(seq).u32(key)
}

// Socket is the kernel's kau_to_socket() (sys/security/audit/audit_bsm.c):
// type, local port and address, remote port and address.
func Socket(typ, lport uint16, laddr netip.Addr, fport uint16, faddr netip.Addr) []byte {
	return enc{idSocket}.u16(typ).u16(lport).addr(laddr).u16(fport).addr(faddr)
}

// SockInet32 is au_to_sock_inet32(): family, port, IPv4 address.
func SockInet32(family, port uint16, a netip.Addr) []byte {
	return enc{idSockInet32}.u16(family).u16(port).addr(a)
}

// SockInet128 is au_to_sock_inet128(): family, port, IPv6 address.
func SockInet128(family, port uint16, a netip.Addr) []byte {
	return enc{idSockInet128}.u16(family).u16(port).addr(a)
}

// SockUnix is au_to_sock_unix(): family and the NUL-terminated path.
func SockUnix(family uint16, path string) []byte {
	return append(enc{idSockUnix}.u16(family), path...).u8(0)
}

// NewGroups is au_to_newgroups(): a u16 count and u32 group ids.
func NewGroups(gids ...uint32) []byte {
	e := enc{idNewGroups}.u16(uint16(len(gids)))
	for _, g := range gids {
		e = e.u32(g)
	}
	return e
}

// UPriv is au_to_upriv(): success flag and the privilege's name.
func UPriv(success uint8, name string) []byte { return enc{idUPriv}.u8(success).str(name) }

// PrivSet is au_to_privset(): the set's type and its privileges.
func PrivSet(typ, privs string) []byte { return enc{idPrivSet}.str(typ).str(privs) }

// Rights is FreeBSD's au_to_rights() (sys/security/audit/bsm_token.c): a
// cap_rights_t, two u64 words.
func Rights(r0, r1 uint64) []byte { return enc{idRights}.u64(r0).u64(r1) }

// Record wraps tokens in a header32 and a trailer whose sizes are the
// record's, as kau_close() (sys/security/audit/audit_bsm.c) does.
func Record(event uint16, t time.Time, tokens ...[]byte) []byte {
	return wrap(func(size uint32) []byte { return Header32(size, event, 0, t) }, Header32Size, tokens)
}

// RecordEx is Record with a header32_ex carrying host, as kau_close()
// writes it once auditd has set a host address.
func RecordEx(event uint16, t time.Time, host netip.Addr, tokens ...[]byte) []byte {
	hlen := Header32Size + 4 + len(host.AsSlice())
	return wrap(func(size uint32) []byte { return Header32Ex(size, event, 0, host, t) }, hlen, tokens)
}

func wrap(header func(uint32) []byte, hlen int, tokens [][]byte) []byte {
	size := hlen + TrailerSize
	for _, t := range tokens {
		size += len(t)
	}
	rec := make([]byte, 0, size)
	rec = append(rec, header(uint32(size))...)
	for _, t := range tokens {
		rec = append(rec, t...)
	}
	return append(rec, Trailer(uint32(size))...)
}
