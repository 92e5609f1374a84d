package bsm

import (
	"net/netip"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
	"github.com/jailsync/jailsync/nodeagent/change"
)

const root = "/data/www"

// call is the common part of the kernel records below: pid 4242 of audit
// user 1001 at testTime, succeeding with ret.
func call(ret uint32) bsmtest.Call {
	return bsmtest.Call{
		Subject: bsmtest.Subject{AUID: 1001, EUID: 1001, EGID: 1001, RUID: 1001, RGID: 1001, PID: 4242, SID: 9},
		Time:    testTime, Ret: ret,
	}
}

func failed(errno uint8) bsmtest.Call {
	c := call(0xffffffff)
	c.Errno = errno
	return c
}

func jailed(ret uint32, jail string) bsmtest.Call {
	c := call(ret)
	c.Jail = jail
	return c
}

// want builds the expected FileChange of a record by pid 4242, auid 1001.
func want(op change.Op, path, old string, finished bool) FileChange {
	return FileChange{
		Change: change.Change{Op: op, Path: path, OldPath: old, Finished: finished, Time: testTime},
		PID:    4242, AUID: 1001,
	}
}

func (fc FileChange) withFD(fd int32) FileChange { fc.FD, fc.HasFD = fd, true; return fc }
func (fc FileChange) withAttr(a Attr) FileChange { fc.Attr, fc.HasAttr = a, true; return fc }
func (fc FileChange) withTarget(t Target) FileChange {
	fc.Target = t
	return fc
}

var (
	existing  = &bsmtest.Attr{Mode: 0o644, UID: 1001, GID: 1001, FSID: 77, NodeID: 123456, Dev: 99}
	existingA = Attr{Mode: 0o644, UID: 1001, GID: 1001, FSID: 77, NodeID: 123456, Device: 99}
)

func TestRecord_Change(t *testing.T) {
	tests := []struct {
		name string
		root string
		rec  []byte
		want FileChange
		ok   bool
	}{
		{"openat O_CREAT made the file (no attr32)", root,
			bsmtest.Open{Call: call(5), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat | bsmtest.OTrunc, Mode: 0o644,
				Path: "/data/www/a/new.txt"}.Bytes(),
			want(change.Create|change.Write, "a/new.txt", "", false).withFD(5), true},
		{"openat O_CREAT on an existing file", root,
			bsmtest.Open{Call: call(6), At: true, Flags: bsmtest.ORdwr | bsmtest.OCreat, Mode: 0o600, DirFD: 3,
				Path: "/data/www/a/old.txt", Attr: existing}.Bytes(),
			want(change.Write, "a/old.txt", "", false).withFD(6).withAttr(existingA), true},
		{"open for writing without O_CREAT", root,
			bsmtest.Open{Call: call(7), Flags: bsmtest.OWronly, Path: "/data/www/log", Attr: existing}.Bytes(),
			want(change.Write, "log", "", false).withFD(7).withAttr(existingA), true},
		{"openat read-only", root,
			bsmtest.Open{Call: call(3), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.ORdonly, Path: "/data/www/r", Attr: existing}.Bytes(),
			FileChange{}, false},
		{"openat read-only O_CREAT made an empty file", root,
			bsmtest.Open{Call: call(3), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.ORdonly | bsmtest.OCreat, Path: "/data/www/empty"}.Bytes(),
			want(change.Create, "empty", "", true).withFD(3), true},
		{"openat failed with EACCES", root,
			bsmtest.Open{Call: failed(13), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: "/data/www/x"}.Bytes(),
			FileChange{}, false},
		{"openat by a jailed process (zonename before subject)", "/usr/jails/web/data",
			bsmtest.Open{Call: jailed(4, "web"), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat,
				Path: "/usr/jails/web/data/index.html"}.Bytes(),
			func() FileChange {
				fc := want(change.Create|change.Write, "index.html", "", false).withFD(4)
				fc.Zone = "web"
				return fc
			}(), true},
		{"openat unnormalized path with .. and //", root,
			bsmtest.Open{Call: call(8), At: true, DirFD: 9, Flags: bsmtest.OWronly | bsmtest.OCreat,
				Path: "/data//www/./sub/../a//b.txt"}.Bytes(),
			want(change.Create|change.Write, "a/b.txt", "", false).withFD(8), true},
		{"openat .. leading out of the root", root,
			bsmtest.Open{Call: call(8), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: "/data/www/../etc/passwd"}.Bytes(),
			FileChange{}, false},
		{"openat outside the root", root,
			bsmtest.Open{Call: call(8), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly, Path: "/tmp/x", Attr: existing}.Bytes(),
			FileChange{}, false},
		{"openat empty path: the kernel could not build it", root,
			bsmtest.Open{Call: call(8), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: ""}.Bytes(),
			want(change.Create|change.Write, "", "", false).withFD(8).withTarget(TargetUnknown), true},
		{"openat invalid UTF-8 name kept byte-exact", root,
			bsmtest.Open{Call: call(8), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: "/data/www/\xff\xfe"}.Bytes(),
			want(change.Create|change.Write, "\xff\xfe", "", false).withFD(8), true},
		{"rename inside the root", root,
			bsmtest.Rename{Call: call(0), From: "/data/www/a.tmp", To: "/data/www/a", FromAttr: existing}.Bytes(),
			want(change.Rename, "a", "a.tmp", true).withAttr(existingA), true},
		{"renameat from outside the root", root,
			bsmtest.Rename{Call: call(0), At: true, FromFD: 3, ToFD: bsmtest.AtFDCWD, From: "/tmp/upload", To: "/data/www/upload", FromAttr: existing}.Bytes(),
			want(change.Subtree, "upload", "", true).withAttr(existingA), true},
		{"renameat to outside the root", root,
			bsmtest.Rename{Call: call(0), At: true, FromFD: bsmtest.AtFDCWD, ToFD: 4, From: "/data/www/old", To: "/var/trash/old", FromAttr: existing}.Bytes(),
			want(change.Remove, "old", "", true).withAttr(existingA), true},
		{"rename outside the root", root,
			bsmtest.Rename{Call: call(0), From: "/tmp/a", To: "/tmp/b"}.Bytes(),
			FileChange{}, false},
		{"rename with an empty path", root,
			bsmtest.Rename{Call: call(0), From: "", To: "/data/www/b"}.Bytes(),
			want(change.Rename, "", "", true).withTarget(TargetUnknown), true},
		{"rename failed", root,
			bsmtest.Rename{Call: failed(2), From: "/data/www/a", To: "/data/www/b"}.Bytes(),
			FileChange{}, false},
		{"unlinkat", root,
			bsmtest.Unlink{Call: call(0), At: true, DirFD: 5, Path: "/data/www/gone", Attr: existing}.Bytes(),
			want(change.Remove, "gone", "", true).withAttr(existingA), true},
		{"unlink", root,
			bsmtest.Unlink{Call: call(0), Path: "/data/www/gone", Attr: existing}.Bytes(),
			want(change.Remove, "gone", "", true).withAttr(existingA), true},
		{"rmdir", root,
			bsmtest.Unlink{Call: call(0), Rmdir: true, Path: "/data/www/dir", Attr: existing}.Bytes(),
			want(change.Rmdir, "dir", "", true).withAttr(existingA), true},
		{"mkdirat", root,
			bsmtest.Mkdir{Call: call(0), At: true, DirFD: 3, Mode: 0o755, Path: "/data/www/d"}.Bytes(),
			want(change.Mkdir, "d", "", true), true},
		{"mkdir failed with EEXIST (attr32 of the existing dir)", root,
			bsmtest.Mkdir{Call: failed(17), Mode: 0o755, Path: "/data/www/d", Attr: existing}.Bytes(),
			FileChange{}, false},
		{"symlinkat", root,
			bsmtest.Symlink{Call: call(0), At: true, DirFD: bsmtest.AtFDCWD, Target: "../etc", Path: "/data/www/link"}.Bytes(),
			want(change.Create, "link", "", true), true},
		{"linkat creates the new name", root,
			bsmtest.Rename{Call: call(0), Link: true, At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD,
				From: "/data/www/a", To: "/data/www/hard", FromAttr: existing}.Bytes(),
			want(change.Create, "hard", "", true).withAttr(existingA), true},
		{"chmod", root,
			bsmtest.Chmod{Call: call(0), Mode: 0o600, Path: "/data/www/a", Attr: existing}.Bytes(),
			want(change.Attrib, "a", "", true).withAttr(existingA), true},
		{"close of a file that existed", root,
			bsmtest.Close{Call: call(0), FD: 5, Attr: existing}.Bytes(),
			func() FileChange {
				fc := want(0, "", "", true).withFD(5).withAttr(existingA).withTarget(TargetFD)
				fc.Close = true
				return fc
			}(), true},
		{"close of a file the open created", root,
			bsmtest.Close{Call: call(0), FD: 5}.Bytes(),
			func() FileChange {
				fc := want(0, "", "", true).withFD(5).withTarget(TargetFD)
				fc.Close = true
				return fc
			}(), true},
		{"ftruncate by fd", root,
			bsmtest.Record(uint16(EventFtruncate), testTime, bsmtest.Arg32(1, "fd", 6), bsmtest.Attr32(*existing),
				bsmtest.Subject32(call(0).Subject), bsmtest.Return32(0, 0)),
			want(change.Write, "", "", false).withFD(6).withAttr(existingA).withTarget(TargetFD), true},
		{"extattr_set_fd writes fd as arg #2", root,
			bsmtest.Record(uint16(EventExtattrSetFD), testTime, bsmtest.Arg32(2, "fd", 7), bsmtest.Text("user.x"),
				bsmtest.Subject32(call(0).Subject), bsmtest.Return32(0, 0)),
			want(change.Attrib, "", "", true).withFD(7).withTarget(TargetFD), true},
		{"execve is not a file change", root,
			bsmtest.Record(uint16(EventExecve), testTime, bsmtest.ExecArgs("ls"), bsmtest.Path("/bin/ls"),
				bsmtest.Subject32(call(0).Subject), bsmtest.Return32(0, 0)),
			FileChange{}, false},
		{"root empty means /", "",
			bsmtest.Unlink{Call: call(0), Path: "/etc//rc.conf"}.Bytes(),
			want(change.Remove, "etc/rc.conf", "", true), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec Record
			if _, err := Decode(tc.rec, &rec); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, ok := rec.Change(tc.root)
			if ok != tc.ok {
				t.Fatalf("Change() ok = %v, want %v (got %+v)", ok, tc.ok, got)
			}
			if !ok {
				return
			}
			if !got.Time.Equal(tc.want.Time) {
				t.Errorf("Time = %v, want %v", got.Time, tc.want.Time)
			}
			got.Time, tc.want.Time = testTime, testTime
			if got != tc.want {
				t.Errorf("Change() =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

// TestRecord_ChangeSubjectEx checks records whose subject is a
// subject32_ex (an IPv6 terminal) and whose header is a header32_ex.
func TestRecord_ChangeSubjectEx(t *testing.T) {
	c := call(0)
	c.Subject.Addr = netip.MustParseAddr("2001:db8::1")
	c.Host = netip.MustParseAddr("192.0.2.1")
	b := bsmtest.Unlink{Call: c, At: true, DirFD: bsmtest.AtFDCWD, Path: "/data/www/x"}.Bytes()
	var rec Record
	if _, err := Decode(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Tokens[0].Type != TokenHeader32Ex || rec.Tokens[len(rec.Tokens)-3].Type != TokenSubject32Ex {
		t.Fatalf("tokens = %v", tokenTypes(&rec))
	}
	fc, ok := rec.Change(root)
	if !ok || fc.Op != change.Remove || fc.Path != "x" || fc.PID != 4242 {
		t.Errorf("Change() = %+v, %v", fc, ok)
	}
	if h, _ := rec.Header(); h.Host != c.Host {
		t.Errorf("header host = %v", h.Host)
	}
}

func TestRecord_ChangeBadRecord(t *testing.T) {
	b := bsmtest.Record(uint16(EventUnlink), testTime, bsmtest.Path("/data/www/x"), []byte{0x99, 0, 0},
		bsmtest.Subject32(call(0).Subject), bsmtest.Return32(0, 0))
	var rec Record
	n, err := Decode(b, &rec)
	if n != len(b) || err == nil || rec.Err == nil {
		t.Fatalf("Decode = %d, %v; want the record's length and an error", n, err)
	}
	if _, ok := rec.Change(root); ok {
		t.Error("Change() of a record that failed to decode reported ok")
	}
}

func TestTarget_String(t *testing.T) {
	if TargetPath.String() != "path" || TargetFD.String() != "fd" || TargetUnknown.String() != "unknown" {
		t.Error("Target names")
	}
}

// TestRecord_JailedTokenOrder checks the shape of a jailed process's
// record: the zonename token comes just before the subject.
func TestRecord_JailedTokenOrder(t *testing.T) {
	b := bsmtest.Open{Call: jailed(4, "web"), At: true, DirFD: 3, Flags: bsmtest.OWronly | bsmtest.OCreat, Mode: 0o640,
		Path: "/usr/jails/web/data/x"}.Bytes()
	var rec Record
	if _, err := Decode(b, &rec); err != nil {
		t.Fatal(err)
	}
	want := []TokenType{TokenHeader32, TokenArg32, TokenArg32, TokenArg32, TokenPath, TokenZonename, TokenSubject32, TokenReturn32, TokenTrailer}
	if got := tokenTypes(&rec); !equalTypes(got, want) {
		t.Fatalf("tokens = %v, want %v", got, want)
	}
	if z, ok := rec.Zonename(); !ok || string(z) != "web" {
		t.Errorf("Zonename() = %q, %v", z, ok)
	}
	for n, wantDesc := range map[uint8]string{1: "at fd 1", 2: "flags", 3: "mode"} {
		if a, ok := rec.Arg(n); !ok || string(a.Desc) != wantDesc {
			t.Errorf("Arg(%d) = %+v, %v; want %q", n, a, ok, wantDesc)
		}
	}
	if rec.EventName() != "AUE_OPENAT_WC" {
		t.Errorf("EventName() = %q", rec.EventName())
	}
}

func equalTypes(a, b []TokenType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRelPath checks the allocation-light fast path against change.Rel.
func TestRelPath(t *testing.T) {
	paths := []string{"", "/", "//", "/.", "/..", "/data", "/data/", "/data/www", "/data/www/", "/data/www/a",
		"/data/www/a/", "/data/www//a", "/data/www/./a", "/data/www/../a", "/data/www/a/..", "/data/www/a/.",
		"/data/www2/a", "/data/ww", "/data/www/.a", "/data/www/..a", "/data/www/a..", "/data/www/...",
		"relative/a", "/data/www/\xff", "/data/www/a\x00b"}
	for _, root := range []string{"/", "/data/www", "/data"} {
		for _, p := range paths {
			got, gotOK := relPath(root, []byte(p))
			want, wantOK := change.Rel(root, p)
			if got != want || gotOK != wantOK {
				t.Errorf("relPath(%q, %q) = %q, %v; change.Rel gives %q, %v", root, p, got, gotOK, want, wantOK)
			}
		}
	}
}
