package bsm

import "net/netip"

// fieldKind says how a field's value is stored and rendered.
type fieldKind uint8

const (
	fUint    fieldKind = iota // num, decimal
	fHex                      // num: 0x%x in text, a number in JSON
	fOctal                    // num: octal, a string in JSON (file modes)
	fErrno                    // num, a BSM error: success/failure in text
	fEvent                    // num, an event: its name in text
	fText                     // b: a string; NULs dropped
	fMem                      // b: 0x and hex digits
	fAddr                     // addr
	fTime                     // num: seconds since the epoch, RFC 3339 UTC
	fTID                      // num and addr: a terminal id, "port addr"
	fStrings                  // b: NUL-terminated strings, a JSON array
	fUints                    // b: big-endian u32s, a JSON array
	fString                   // s
	fUUID                     // b: 16 bytes
)

// field is one named value of a token. Names are the attribute names of
// praudit -x (print_*_tok in OpenBSM's libbsm/bsm_io.c) where it has
// them, and the element's name or role where it prints element text
// ("path", "text", "addr", "data").
type field struct {
	name string
	kind fieldKind
	num  uint64
	b    []byte
	addr netip.Addr
	s    string
}

func num(name string, v uint64) field                { return field{name: name, kind: fUint, num: v} }
func text(name string, b []byte) field               { return field{name: name, kind: fText, b: b} }
func addrF(name string, b []byte) field              { return field{name: name, kind: fAddr, addr: ipAddr(b)} }
func u16(b []byte, off int) uint64                   { return uint64(be16(b[off:])) }
func u32(b []byte, off int) uint64                   { return uint64(be32(b[off:])) }
func kindF(name string, k fieldKind, v uint64) field { return field{name: name, kind: k, num: v} }

// fields appends the token's fields to dst. It relies on the token having
// been length-checked by tokenLen.
func (t Token) fields(dst []field) []field {
	b := t.raw
	switch t.Type {
	case TokenHeader32, TokenHeader32Ex, TokenHeader64, TokenHeader64Ex:
		h, _ := t.Header()
		dst = append(dst, num("size", uint64(h.Size)), num("version", uint64(h.Version)),
			kindF("event", fEvent, uint64(h.Event)), num("modifier", uint64(h.Modifier)))
		if h.Host.IsValid() {
			dst = append(dst, field{name: "host", kind: fAddr, addr: h.Host})
		}
		return append(dst, kindF("time", fTime, h.Seconds), num("msec", h.Msec))
	case TokenTrailer:
		return append(dst, num("count", u32(b, 3)))
	case TokenArg32, TokenArg64:
		a, _ := t.Arg()
		return append(dst, num("arg-num", uint64(a.Num)), kindF("value", fHex, a.Value), text("desc", a.Desc))
	case TokenArgUUID, TokenReturnUUID:
		u, _ := t.UUID()
		prefix := "arg_uuid"
		if t.Type == TokenReturnUUID {
			prefix = "ret_uuid"
		}
		return append(dst, num(prefix+"-num", uint64(u.Num)), field{name: "uuid", kind: fUUID, b: b[2:18]}, text("desc", u.Desc))
	case TokenAttr32, TokenAttr64:
		a, _ := t.Attr()
		return append(dst, kindF("mode", fOctal, uint64(a.Mode)), num("uid", uint64(a.UID)), num("gid", uint64(a.GID)),
			num("fsid", uint64(a.FSID)), num("nodeid", a.NodeID), num("device", a.Device))
	case TokenSubject32, TokenSubject64, TokenSubject32Ex, TokenSubject64Ex,
		TokenProcess32, TokenProcess64, TokenProcess32Ex, TokenProcess64Ex:
		s, _ := t.Subject()
		return append(dst, num("audit-uid", uint64(s.AUID)), num("uid", uint64(s.EUID)), num("gid", uint64(s.EGID)),
			num("ruid", uint64(s.RUID)), num("rgid", uint64(s.RGID)), num("pid", uint64(s.PID)), num("sid", uint64(s.SID)),
			field{name: "tid", kind: fTID, num: s.Port, addr: s.Addr})
	case TokenReturn32, TokenReturn64:
		r, _ := t.Return()
		return append(dst, kindF("errval", fErrno, uint64(r.Status)), num("retval", r.Value))
	case TokenPath:
		return append(dst, text("path", trimNUL(b[3:])))
	case TokenText:
		return append(dst, text("text", trimNUL(b[3:])))
	case TokenZonename:
		return append(dst, text("name", trimNUL(b[3:])))
	case TokenOpaque:
		return append(dst, field{name: "data", kind: fMem, b: b[3:]})
	case TokenFile:
		f, _ := t.File()
		return append(dst, kindF("time", fTime, uint64(f.Seconds)), num("msec", uint64(f.Msec)), text("name", f.Name))
	case TokenExit:
		return append(dst, num("errval", u32(b, 1)), num("retval", u32(b, 5)))
	case TokenExecArgs:
		return append(dst, field{name: "arg", kind: fStrings, b: b[5:]})
	case TokenExecEnv:
		return append(dst, field{name: "env", kind: fStrings, b: b[5:]})
	case TokenNewGroups:
		return append(dst, field{name: "gid", kind: fUints, b: b[3:]})
	case TokenSeq:
		return append(dst, num("seq-num", u32(b, 1)))
	case TokenIPort:
		return append(dst, num("port", u16(b, 1)))
	case TokenRights:
		return append(dst, field{name: "rights", kind: fMem, b: b[1:]})
	}
	return t.netFields(dst)
}

// netFields appends the fields of the network, IPC and privilege tokens.
func (t Token) netFields(dst []field) []field {
	b := t.raw
	switch t.Type {
	case TokenData:
		return dataFields(dst, b)
	case TokenIPC:
		return append(dst, num("ipc-type", uint64(b[1])), num("ipc-id", u32(b, 2)))
	case TokenIPCPerm:
		return append(dst, num("uid", u32(b, 1)), num("gid", u32(b, 5)), num("creator-uid", u32(b, 9)),
			num("creator-gid", u32(b, 13)), kindF("mode", fOctal, u32(b, 17)), num("seq", u32(b, 21)), num("key", u32(b, 25)))
	case TokenInAddr:
		return append(dst, addrF("addr", b[1:5]))
	case TokenInAddrEx:
		return append(dst, addrF("addr", b[5:]))
	case TokenIP:
		return append(dst, num("version", uint64(b[1])), num("service_type", uint64(b[2])), num("len", u16(b, 3)),
			num("id", u16(b, 5)), num("offset", u16(b, 7)), num("time_to_live", uint64(b[9])),
			num("protocol", uint64(b[10])), num("cksum", u16(b, 11)), addrF("src_addr", b[13:17]), addrF("dest_addr", b[17:21]))
	case TokenSocket:
		return append(dst, num("sock_type", u16(b, 1)), num("lport", u16(b, 3)), addrF("laddr", b[5:9]),
			num("fport", u16(b, 9)), addrF("faddr", b[11:15]))
	case TokenSocketEx:
		n := int(be16(b[5:]))
		return append(dst, num("sock_dom", u16(b, 1)), num("sock_type", u16(b, 3)), num("lport", u16(b, 7)),
			addrF("laddr", b[9:9+n]), addrF("faddr", b[11+n:11+2*n]), num("fport", u16(b, 9+n)))
	case TokenSockInet32, TokenSockInet128:
		return append(dst, num("type", u16(b, 1)), num("port", u16(b, 3)), addrF("addr", b[5:]))
	case TokenSockUnix:
		return append(dst, num("type", u16(b, 1)), text("addr", trimNUL(b[3:])))
	case TokenUPriv:
		return append(dst, num("status", uint64(b[1])), text("name", trimNUL(b[4:])))
	case TokenPrivSet:
		n1 := int(be16(b[1:]))
		return append(dst, text("type", trimNUL(b[3:3+n1])), text("priv", trimNUL(b[5+n1:])))
	}
	return dst
}

// dataFields appends a data (arbitrary) token's fields: how to print,
// unit, count, and the data as text when printed as a string, else in hex.
func dataFields(dst []field, b []byte) []field {
	prints := [...]string{"binary", "octal", "decimal", "hex", "string"}
	units := [...]string{"byte", "short", "int32", "int64"}
	pr := "unknown"
	if int(b[1]) < len(prints) {
		pr = prints[b[1]]
	}
	data := field{name: "data", kind: fMem, b: b[4:]}
	if b[1] == 4 {
		data.kind = fText
	}
	return append(dst, field{name: "print", kind: fString, s: pr}, field{name: "type", kind: fString, s: units[b[2]]},
		num("count", uint64(b[3])), data)
}
