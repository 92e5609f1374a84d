package bsm

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
)

var (
	testTime = time.Date(2026, 4, 21, 9, 58, 39, 131_000_000, time.UTC)
	v4       = netip.MustParseAddr("192.0.2.7")
	v6       = netip.MustParseAddr("2001:db8::7")
	testSubj = bsmtest.Subject{AUID: 1001, EUID: 0, EGID: 5, RUID: 1001, RGID: 1001, PID: 4242, SID: 77, Port: 1 << 40, Addr: v6}
	testAttr = bsmtest.Attr{Mode: 0o644, UID: 1001, GID: 1001, FSID: 0x3f00ff01, NodeID: 1<<40 + 12345, Dev: 0xdeadbeef}
)

// TestDecodeToken_Encoded decodes the tokens OpenBSM's fixtures lack,
// encoded by bsmtest from the au_to_* layouts, and checks every field.
func TestDecodeToken_Encoded(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		typ  TokenType
		want map[string]string
	}{
		{"header32_ex ipv4", bsmtest.Header32Ex(4000, 43148, 1, v4, testTime), TokenHeader32Ex, map[string]string{
			"size": "4000", "version": "11", "event": "AUE_MKDIRAT", "modifier": "1", "host": "192.0.2.7",
			"time": "2026-04-21T09:58:39Z", "msec": "131"}},
		{"header32_ex ipv6", bsmtest.Header32Ex(50, 6, 0, v6, testTime), TokenHeader32Ex, map[string]string{
			"size": "50", "version": "11", "event": "AUE_UNLINK", "modifier": "0", "host": "2001:db8::7",
			"time": "2026-04-21T09:58:39Z", "msec": "131"}},
		{"header64", bsmtest.Header64(33, 65000, 2, testTime), TokenHeader64, map[string]string{
			"size": "33", "version": "11", "event": "65000", "modifier": "2", "time": "2026-04-21T09:58:39Z", "msec": "131"}},
		{"header64_ex", bsmtest.Header64Ex(60, 112, 0, v6, testTime), TokenHeader64Ex, map[string]string{
			"size": "60", "version": "11", "event": "AUE_CLOSE", "modifier": "0", "host": "2001:db8::7",
			"time": "2026-04-21T09:58:39Z", "msec": "131"}},
		{"arg64", bsmtest.Arg64(1, "addr", 0xffff_8000_1234_5678), TokenArg64, map[string]string{
			"arg-num": "1", "value": "0xffff800012345678", "desc": "addr"}},
		{"return64", bsmtest.Return64(2, 1<<63), TokenReturn64, map[string]string{
			"errval": "failure : ENOENT", "retval": "9223372036854775808"}},
		{"attr32", bsmtest.Attr32(testAttr), TokenAttr32, map[string]string{
			"mode": "644", "uid": "1001", "gid": "1001", "fsid": "1057029889", "nodeid": "1099511640121", "device": "3735928559"}},
		{"attr64", bsmtest.Attr64(bsmtest.Attr{Mode: 0o4755, NodeID: 7, Dev: 1 << 50}), TokenAttr64, map[string]string{
			"mode": "4755", "uid": "0", "gid": "0", "fsid": "0", "nodeid": "7", "device": "1125899906842624"}},
		{"subject64", bsmtest.Subject64(bsmtest.Subject{AUID: AUIDUnset, PID: 9, Port: 1 << 33, Addr: v4}), TokenSubject64, map[string]string{
			"audit-uid": "4294967295", "uid": "0", "gid": "0", "ruid": "0", "rgid": "0", "pid": "9", "sid": "0", "tid": "8589934592 192.0.2.7"}},
		{"subject64_ex", bsmtest.Subject64Ex(testSubj), TokenSubject64Ex, map[string]string{
			"audit-uid": "1001", "uid": "0", "gid": "5", "ruid": "1001", "rgid": "1001", "pid": "4242", "sid": "77", "tid": "1099511627776 2001:db8::7"}},
		{"exec_env", bsmtest.ExecEnv("HOME=/root", "PATH=/bin"), TokenExecEnv, map[string]string{"env": "HOME=/root,PATH=/bin"}},
		{"exec_args empty", bsmtest.ExecArgs(), TokenExecArgs, map[string]string{"arg": ""}},
		{"exit", bsmtest.Exit(1, 256), TokenExit, map[string]string{"errval": "1", "retval": "256"}},
		{"in_addr_ex", bsmtest.InAddrEx(v6), TokenInAddrEx, map[string]string{"addr": "2001:db8::7"}},
		{"ipc_perm", bsmtest.IPCPerm(1, 2, 3, 4, 0o600, 6, 7), TokenIPCPerm, map[string]string{
			"uid": "1", "gid": "2", "creator-uid": "3", "creator-gid": "4", "mode": "600", "seq": "6", "key": "7"}},
		{"socket", bsmtest.Socket(1, 22, v4, 50000, netip.MustParseAddr("198.51.100.1")), TokenSocket, map[string]string{
			"sock_type": "1", "lport": "22", "laddr": "192.0.2.7", "fport": "50000", "faddr": "198.51.100.1"}},
		{"sock_inet32", bsmtest.SockInet32(2, 443, v4), TokenSockInet32, map[string]string{"type": "2", "port": "443", "addr": "192.0.2.7"}},
		{"sock_inet128", bsmtest.SockInet128(28, 443, v6), TokenSockInet128, map[string]string{"type": "28", "port": "443", "addr": "2001:db8::7"}},
		{"sock_unix", bsmtest.SockUnix(1, "/var/run/log"), TokenSockUnix, map[string]string{"type": "1", "addr": "/var/run/log"}},
		{"newgroups", bsmtest.NewGroups(0, 5, 1001), TokenNewGroups, map[string]string{"gid": "0,5,1001"}},
		{"upriv", bsmtest.UPriv(1, "PRIV_VFS_WRITE"), TokenUPriv, map[string]string{"status": "1", "name": "PRIV_VFS_WRITE"}},
		{"privset", bsmtest.PrivSet("effective", "file_read"), TokenPrivSet, map[string]string{"type": "effective", "priv": "file_read"}},
		{"rights", bsmtest.Rights(0x0200000000000001, 0x0400000000000000), TokenRights, map[string]string{"rights": "0x02000000000000010400000000000000"}},
		{"zonename", bsmtest.Zonename("web"), TokenZonename, map[string]string{"name": "web"}},
		{"path empty", bsmtest.Path(""), TokenPath, map[string]string{"path": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, n, err := DecodeToken(tc.b)
			if err != nil || n != len(tc.b) || tok.Type != tc.typ {
				t.Fatalf("DecodeToken = %v, %d, %v; want %v, %d, nil", tok.Type, n, err, tc.typ, len(tc.b))
			}
			if got := fieldMap(tok); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fields = %v\nwant %v", got, tc.want)
			}
			// Every proper prefix is truncated, never a panic or a token.
			for i := range tc.b {
				if _, _, err := DecodeToken(tc.b[:i]); err == nil {
					t.Errorf("DecodeToken(%d of %d bytes) succeeded", i, len(tc.b))
				}
			}
		})
	}
}

func TestToken_Accessors(t *testing.T) {
	sub, _, _ := DecodeToken(bsmtest.Subject32Ex(testSubj))
	s, ok := sub.Subject()
	want := Subject{AUID: 1001, EGID: 5, RUID: 1001, RGID: 1001, PID: 4242, SID: 77, Port: 0, Addr: v6}
	if !ok || s != want { // subject32_ex holds a 32-bit port: 1<<40 truncates to 0
		t.Errorf("Subject() = %+v, want %+v", s, want)
	}
	if _, ok := sub.Arg(); ok {
		t.Error("Arg() on a subject token reported ok")
	}
	at, _, _ := DecodeToken(bsmtest.Attr32(testAttr))
	a, ok := at.Attr()
	if !ok || a != (Attr{Mode: 0o644, UID: 1001, GID: 1001, FSID: 0x3f00ff01, NodeID: 1<<40 + 12345, Device: 0xdeadbeef}) {
		t.Errorf("Attr() = %+v, %v", a, ok)
	}
	var zero Token
	if _, ok := zero.Header(); ok {
		t.Error("zero Token Header() reported ok")
	}
	if _, ok := zero.Text(); ok {
		t.Error("zero Token Text() reported ok")
	}
	if TokenType(0x99).String() != "0x99" || TokenType(0x99).PrauditName() != "unknown" {
		t.Errorf("unknown TokenType names %q %q", TokenType(0x99).String(), TokenType(0x99).PrauditName())
	}
}

func TestDecodeToken_Errors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"unknown id", []byte{0x99, 1, 2, 3}, ErrUnknownToken},
		{"invalid id zero", []byte{0, 0, 0}, ErrUnknownToken},
		{"path length past end", []byte{0x23, 0, 9, 'a', 0}, ErrTruncated},
		{"header32_ex address type 5", append([]byte{0x15, 0, 0, 0, 40, 11, 0, 1, 0, 0, 0, 0, 0, 5}, make([]byte, 30)...), ErrBadValue},
		{"subject32_ex address type 0", append(append([]byte{0x7a}, make([]byte, 32)...), make([]byte, 20)...), ErrBadValue},
		{"socket_ex address type 6", []byte{0x7f, 0, 2, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrBadValue},
		{"data unit 7", []byte{0x21, 4, 7, 1, 'x'}, ErrBadValue},
		{"exec_args count beyond strings", []byte{0x3c, 0xff, 0xff, 0xff, 0xff, 'a', 0, 'b', 0}, ErrTruncated},
		{"exec_args last string without NUL", []byte{0x3c, 0, 0, 0, 2, 'a', 0, 'b'}, ErrTruncated},
		{"sock_unix path without NUL", append([]byte{0x82, 0, 1}, make104('a')...), ErrBadValue},
		{"newgroups count past end", []byte{0x3b, 0, 3, 0, 0, 0, 1}, ErrTruncated},
		{"privset second length past end", []byte{0x38, 0, 1, 0, 0, 5}, ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, n, err := DecodeToken(tc.b)
			if !errors.Is(err, tc.want) || n != 0 {
				t.Errorf("DecodeToken = %d, %v; want 0, %v", n, err, tc.want)
			}
		})
	}
}

func make104(c byte) []byte {
	b := make([]byte, maxSockUnixPath+5)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestEvent_String(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{0, "AUE_NULL"}, {72, "AUE_OPEN_R"}, {83, "AUE_OPEN_RWTC"}, {112, "AUE_CLOSE"}, {270, "AUE_OPENAT_R"},
		{279, "AUE_OPENAT_RWC"}, {281, "AUE_OPENAT_RWTC"}, {282, "AUE_RENAMEAT"}, {286, "AUE_UNLINKAT"},
		{43069, "AUE_FSYNC"}, {43148, "AUE_MKDIRAT"}, {43152, "AUE_SYMLINKAT"}, {43265, "AUE_CLOSERANGE"},
		{6152, "AUE_login"}, {6171, "AUE_ftpd_logout"}, {32800, "AUE_openssh"}, {45000, "AUE_audit_startup"},
		{116, "116"}, {65535, "65535"},
	}
	for _, tc := range tests {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("Event(%d).String() = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestErrnoName(t *testing.T) {
	for status, want := range map[uint8]string{0: "", 1: "EPERM", 22: "EINVAL", 45: "EDEADLK", 93: "ENOTEMPTY", 145: "ETIMEDOUT", 203: "EDIRIOCTL", 250: ""} {
		if got := ErrnoName(status); got != want {
			t.Errorf("ErrnoName(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestOpenMode(t *testing.T) {
	tests := []struct {
		e    Event
		want int
		ok   bool
	}{
		{EventOpenatR, openRead, true},
		{EventOpenatR + 1, openRead | openCreat, true},
		{EventOpenatR + 3, openRead | openTrunc | openCreat, true},
		{EventOpenatR + 5, openWrite | openCreat, true},
		{EventOpenatR + 6, openWrite | openTrunc, true},
		{EventOpenatR + 9, openRead | openWrite | openCreat, true},
		{EventOpenatRWTC, openRead | openWrite | openCreat | openTrunc, true},
		{EventOpenR + 4, openWrite, true},
		{EventCreat, openWrite | openCreat | openTrunc, true},
		{EventClose, 0, false},
	}
	for _, tc := range tests {
		if got, ok := openMode(tc.e); got != tc.want || ok != tc.ok {
			t.Errorf("openMode(%v) = %b, %v; want %b, %v", tc.e, got, ok, tc.want, tc.ok)
		}
	}
}
