package bsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// TokenType is a token's id, its first byte. The values are OpenBSM's AUT_*
// constants (sys/bsm/audit_record.h); AUT_RIGHTS is FreeBSD's
// (sys/bsm/audit_record.h in freebsd-src).
type TokenType uint8

// Token ids this package decodes.
const (
	TokenFile        TokenType = 0x11 // trail file name, alone at trail start and end
	TokenTrailer     TokenType = 0x13
	TokenHeader32    TokenType = 0x14
	TokenHeader32Ex  TokenType = 0x15
	TokenData        TokenType = 0x21
	TokenIPC         TokenType = 0x22
	TokenPath        TokenType = 0x23
	TokenSubject32   TokenType = 0x24
	TokenProcess32   TokenType = 0x26
	TokenReturn32    TokenType = 0x27
	TokenText        TokenType = 0x28
	TokenOpaque      TokenType = 0x29
	TokenInAddr      TokenType = 0x2a
	TokenIP          TokenType = 0x2b
	TokenIPort       TokenType = 0x2c
	TokenArg32       TokenType = 0x2d
	TokenSocket      TokenType = 0x2e
	TokenSeq         TokenType = 0x2f
	TokenIPCPerm     TokenType = 0x32
	TokenPrivSet     TokenType = 0x38
	TokenUPriv       TokenType = 0x39
	TokenNewGroups   TokenType = 0x3b
	TokenExecArgs    TokenType = 0x3c
	TokenExecEnv     TokenType = 0x3d
	TokenAttr32      TokenType = 0x3e
	TokenExit        TokenType = 0x52
	TokenZonename    TokenType = 0x60
	TokenArg64       TokenType = 0x71
	TokenReturn64    TokenType = 0x72
	TokenAttr64      TokenType = 0x73
	TokenHeader64    TokenType = 0x74
	TokenSubject64   TokenType = 0x75
	TokenProcess64   TokenType = 0x77
	TokenHeader64Ex  TokenType = 0x79
	TokenSubject32Ex TokenType = 0x7a
	TokenProcess32Ex TokenType = 0x7b
	TokenSubject64Ex TokenType = 0x7c
	TokenProcess64Ex TokenType = 0x7d
	TokenInAddrEx    TokenType = 0x7e
	TokenSocketEx    TokenType = 0x7f
	TokenSockInet32  TokenType = 0x80
	TokenSockInet128 TokenType = 0x81
	TokenSockUnix    TokenType = 0x82
	TokenRights      TokenType = 0x83
	TokenArgUUID     TokenType = 0x84
	TokenReturnUUID  TokenType = 0x85
)

// String is the suffix of the OpenBSM au_to_* function that writes the
// token ("header32", "path", "subject32_ex", "return32"), or "0x.." for an
// unknown id.
func (t TokenType) String() string {
	if name, _ := t.names(); name != "" {
		return name
	}
	return "0x" + strconv.FormatUint(uint64(t), 16)
}

// PrauditName is the name praudit(1) prints for the token ("header",
// "argument", "subject_ex"), or "unknown".
func (t TokenType) PrauditName() string {
	if _, praudit := t.names(); praudit != "" {
		return praudit
	}
	return "unknown"
}

// names returns the token's au_to_* suffix and its praudit name, "" when
// unknown.
func (t TokenType) names() (name, praudit string) {
	row, ok := tableLookup(tokenTable, uint64(t))
	if !ok {
		return "", ""
	}
	name, praudit, _ = strings.Cut(row, "\t")
	return name, praudit
}

// tokenTable holds, per token id in decimal, the suffix of the OpenBSM
// au_to_* function that writes the token and the name praudit(1) prints
// (print_*_tok in libbsm/bsm_io.c), tab-separated, sorted by id.
const tokenTable = `17	file	file
19	trailer	trailer
20	header32	header
21	header32_ex	header_ex
33	data	arbitrary
34	ipc	IPC
35	path	path
36	subject32	subject
38	process32	process
39	return32	return
40	text	text
41	opaque	opaque
42	in_addr	ip addr
43	ip	ip
44	iport	ip port
45	arg32	argument
46	socket	socket
47	seq	sequence
50	ipc_perm	IPC perm
56	privset	privilege
57	upriv	use of privilege
59	newgroups	group
60	exec_args	exec arg
61	exec_env	exec env
62	attr32	attribute
82	exit	exit
96	zonename	zone
113	arg64	argument
114	return64	return
115	attr64	attribute
116	header64	header
117	subject64	subject
119	process64	process
121	header64_ex	header_ex
122	subject32_ex	subject_ex
123	process32_ex	process_ex
124	subject64_ex	subject_ex
125	process64_ex	process_ex
126	in_addr_ex	ip addr ex
127	socket_ex	socket
128	sock_inet32	socket-inet
129	sock_inet128	socket-inet6
130	sock_unix	socket-unix
131	rights	rights
132	arg_uuid	arg_uuid
133	return_uuid	ret_uuid`

// Token is one decoded token: its type and its bytes, which alias the
// buffer it was decoded from (see Reader.Next for how long they stay
// valid). Its accessors (Header, Subject, Arg, ...) parse fields on demand
// and report false when called on a token of another type.
type Token struct {
	// Type is the token id.
	Type TokenType
	raw  []byte
}

// Bytes returns the token's encoding, id byte included. It aliases the
// decoder's buffer: copy it to keep it.
func (t Token) Bytes() []byte { return t.raw }

// Len is the token's encoded length in bytes.
func (t Token) Len() int { return len(t.raw) }

// DecodeToken decodes the token at the start of b and returns it and its
// length. The token aliases b.
func DecodeToken(b []byte) (Token, int, error) {
	n, err := tokenLen(b)
	if err != nil {
		return Token{}, 0, err
	}
	return Token{Type: TokenType(b[0]), raw: b[:n]}, n, nil
}

const (
	sizeTrailer  = 7
	sizeHeader32 = 18
	trailerMagic = 0xb105
	// maxSockUnixPath is sizeof(sun_path) on FreeBSD and Darwin: OpenBSM's
	// fetch_sock_unix_tok (libbsm/bsm_io.c) searches this far for the NUL.
	maxSockUnixPath = 104
)

// be16, be32 and be64 read big-endian integers, as every BSM field is.
func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// addrLen maps an address type field (AU_IPv4 = 4, AU_IPv6 = 16) to the
// number of address bytes that follow.
func addrLen(typ uint32) (int, error) {
	if typ != 4 && typ != 16 {
		return 0, fmt.Errorf("address type %d: %w", typ, ErrBadValue)
	}
	return int(typ), nil
}

// tokenLen returns the encoded length of the token at the start of b,
// checking that it fits in b. The layouts follow OpenBSM's fetch_*_tok
// functions in libbsm/bsm_io.c (a reference read, not a copy).
func tokenLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, ErrTruncated
	}
	n, err := tokenLenOf(TokenType(b[0]), b)
	if err != nil {
		return 0, fmt.Errorf("%v token: %w", TokenType(b[0]), err)
	}
	if n > len(b) {
		return 0, fmt.Errorf("%v token of %d bytes in %d: %w", TokenType(b[0]), n, len(b), ErrTruncated)
	}
	return n, nil
}

// fixedLen is the length of the tokens that have one, or 0.
func fixedLen(t TokenType) int {
	switch t {
	case TokenTrailer:
		return sizeTrailer
	case TokenHeader32:
		return sizeHeader32
	case TokenHeader64:
		return 26
	case TokenIPC, TokenReturn32:
		return 6
	case TokenReturn64:
		return 10
	case TokenSubject32, TokenProcess32:
		return 37
	case TokenSubject64, TokenProcess64:
		return 41
	case TokenInAddr, TokenSeq:
		return 5
	case TokenIP:
		return 21
	case TokenIPort:
		return 3
	case TokenSocket: // type, lport, laddr, fport, faddr
		return 15
	case TokenIPCPerm, TokenAttr32:
		return 29
	case TokenAttr64:
		return 33
	case TokenExit, TokenSockInet32:
		return 9
	case TokenSockInet128:
		return 21
	case TokenRights:
		return 17
	}
	return 0
}

func tokenLenOf(t TokenType, b []byte) (int, error) {
	if n := fixedLen(t); n > 0 {
		return n, nil
	}
	switch t {
	case TokenPath, TokenText, TokenZonename, TokenOpaque:
		return lenPrefixed(b, 1, 3)
	case TokenArg32:
		return lenPrefixed(b, 6, 8)
	case TokenArg64:
		return lenPrefixed(b, 10, 12)
	case TokenArgUUID, TokenReturnUUID:
		return lenPrefixed(b, 18, 20)
	case TokenFile:
		return lenPrefixed(b, 9, 11)
	case TokenUPriv:
		return lenPrefixed(b, 2, 4)
	case TokenPrivSet:
		return privSetLen(b)
	case TokenHeader32Ex, TokenHeader64Ex:
		return headerExLen(t, b)
	case TokenSubject32Ex, TokenProcess32Ex, TokenSubject64Ex, TokenProcess64Ex:
		return subjectExLen(t, b)
	case TokenInAddrEx:
		return exAddrLen(b, 1, 5)
	case TokenSocketEx:
		return socketExLen(b)
	case TokenData:
		return dataLen(b)
	case TokenNewGroups:
		if len(b) < 3 {
			return 0, ErrTruncated
		}
		return 3 + 4*int(be16(b[1:])), nil
	case TokenExecArgs, TokenExecEnv:
		return execStringsLen(b)
	case TokenSockUnix:
		return sockUnixLen(b)
	}
	return 0, ErrUnknownToken
}

// lenPrefixed is the length of a token whose u16 length field sits at off
// and counts the bytes after the fixed part of size fixed.
func lenPrefixed(b []byte, off, fixed int) (int, error) {
	if len(b) < off+2 {
		return 0, ErrTruncated
	}
	return fixed + int(be16(b[off:])), nil
}

// exAddrLen is the length of a token whose u32 address type sits at off
// and whose address bytes follow after fixed bytes.
func exAddrLen(b []byte, off, fixed int) (int, error) {
	if len(b) < off+4 {
		return 0, ErrTruncated
	}
	n, err := addrLen(be32(b[off:]))
	return fixed + n, err
}

func headerExLen(t TokenType, b []byte) (int, error) {
	tail := 8 // seconds and milliseconds, u32 each
	if t == TokenHeader64Ex {
		tail = 16
	}
	return exAddrLen(b, 10, 14+tail)
}

func subjectExLen(t TokenType, b []byte) (int, error) {
	port := 4
	if t == TokenSubject64Ex || t == TokenProcess64Ex {
		port = 8
	}
	off := 1 + 7*4 + port
	return exAddrLen(b, off, off+4)
}

func socketExLen(b []byte) (int, error) {
	if len(b) < 7 {
		return 0, ErrTruncated
	}
	n, err := addrLen(uint32(be16(b[5:])))
	return 7 + 2*(2+n), err
}

func dataLen(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, ErrTruncated
	}
	unit := dataUnitSize(b[2])
	if unit == 0 {
		return 0, fmt.Errorf("data unit type %d: %w", b[2], ErrBadValue)
	}
	return 4 + unit*int(b[3]), nil
}

// dataUnitSize is the size of a data token's basic unit (AUR_BYTE,
// AUR_SHORT, AUR_INT32, AUR_INT64), 0 if unknown.
func dataUnitSize(u byte) int {
	switch u {
	case 0:
		return 1
	case 1:
		return 2
	case 2:
		return 4
	case 3:
		return 8
	}
	return 0
}

func privSetLen(b []byte) (int, error) {
	n1, err := lenPrefixed(b, 1, 3)
	if err != nil {
		return 0, err
	}
	n2, err := lenPrefixed(b, n1, 2)
	if err != nil {
		return 0, err
	}
	return n1 + n2, nil
}

// execStringsLen walks the count NUL-terminated strings of an exec_args or
// exec_env token. Every string takes at least one byte, so a hostile count
// ends the walk at the end of b.
func execStringsLen(b []byte) (int, error) {
	if len(b) < 5 {
		return 0, ErrTruncated
	}
	count := be32(b[1:])
	off := 5
	for i := uint32(0); i < count; i++ {
		j := bytes.IndexByte(b[off:], 0)
		if j < 0 {
			return 0, ErrTruncated
		}
		off += j + 1
	}
	return off, nil
}

func sockUnixLen(b []byte) (int, error) {
	if len(b) < 3 {
		return 0, ErrTruncated
	}
	p := b[3:]
	if len(p) > maxSockUnixPath {
		p = p[:maxSockUnixPath]
	}
	j := bytes.IndexByte(p, 0)
	if j < 0 {
		if len(p) < maxSockUnixPath {
			return 0, ErrTruncated
		}
		return 0, fmt.Errorf("unix socket path without NUL: %w", ErrBadValue)
	}
	return 3 + j + 1, nil
}
