package auditpipe

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jailsync/jailsync/nodeagent/bsm"
	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
	"github.com/jailsync/jailsync/nodeagent/change"
)

const root = "/usr/jails/web/data"

const receiverAUID = 990

// agentPID is the agent's own process (it applies peers' renames under the
// operator's audit user id).
const agentPID = 4000

func call(pid uint32, ret uint32) bsmtest.Call {
	return bsmtest.Call{Subject: bsmtest.Subject{AUID: 1001, PID: pid}, Time: time.Unix(1_800_000_000, 0), Ret: ret}
}

func jailed(c bsmtest.Call) bsmtest.Call { c.Jail = "web"; return c }

func fromReceiver(c bsmtest.Call) bsmtest.Call { c.AUID = receiverAUID; return c }

// run feeds records through one Translator (as one byte stream, the way the
// pipe delivers them) and returns the changes as "op path finished[ echo]".
func run(t *testing.T, tr *Translator, records ...[]byte) []string {
	t.Helper()
	r := bsm.NewReader(bytes.NewReader(bytes.Join(records, nil)))
	var got []string
	emit := func(c change.Change) {
		s := fmt.Sprintf("%s %s %v", c.Op, c.Path, c.Finished)
		if c.Op.Has(change.Rename) {
			s += " from " + c.OldPath
		}
		if c.Echo {
			s += " echo"
		}
		got = append(got, s)
	}
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		if rec.Err != nil {
			t.Fatalf("record did not decode: %v", rec.Err)
		}
		tr.Translate(rec, emit)
	}
	return got
}

func TestTranslator_Translate(t *testing.T) {
	created := bsmtest.Open{Call: call(42, 5), At: true, Flags: bsmtest.OWronly | bsmtest.OCreat | bsmtest.OTrunc, Mode: 0o644, Path: root + "/new.txt"}
	tests := []struct {
		name    string
		records [][]byte
		want    []string
	}{
		{"openat O_CREAT then close: unfinished, then finished", [][]byte{
			created.Bytes(),
			bsmtest.Close{Call: call(42, 0), FD: 5}.Bytes(),
		}, []string{"create|write new.txt false", "write new.txt true"}},
		{"a close by another process or descriptor finishes nothing", [][]byte{
			created.Bytes(),
			bsmtest.Close{Call: call(43, 0), FD: 5}.Bytes(),
			bsmtest.Close{Call: call(42, 0), FD: 6}.Bytes(),
		}, []string{"create|write new.txt false"}},
		{"a jailed process, unnormalized path", [][]byte{
			bsmtest.Open{Call: jailed(call(7, 3)), At: true, Flags: bsmtest.ORdwr, Path: "/usr/jails/web//data/./sub/../db.sqlite",
				Attr: &bsmtest.Attr{Mode: 0o600, FSID: 9, NodeID: 77}}.Bytes(),
			bsmtest.Close{Call: jailed(call(7, 0)), FD: 3, Attr: &bsmtest.Attr{Mode: 0o600, FSID: 9, NodeID: 77}}.Bytes(),
		}, []string{"write db.sqlite false", "write db.sqlite true"}},
		{"rename, unlinkat, mkdirat", [][]byte{
			bsmtest.Rename{Call: call(9, 0), At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD, From: root + "/a", To: root + "/b",
				FromAttr: &bsmtest.Attr{Mode: 0o644}}.Bytes(),
			bsmtest.Unlink{Call: call(9, 0), At: true, DirFD: bsmtest.AtFDCWD, Path: root + "/old", Attr: &bsmtest.Attr{Mode: 0o644}}.Bytes(),
			bsmtest.Mkdir{Call: call(9, 0), At: true, DirFD: bsmtest.AtFDCWD, Mode: 0o755, Path: root + "/dir"}.Bytes(),
		}, []string{"rename b true from a", "remove old true", "mkdir dir true"}},
		{"a file renamed while open is closed under its new name", [][]byte{
			bsmtest.Open{Call: call(60, 3), At: true, Flags: bsmtest.OWronly, Path: root + "/app.log"}.Bytes(),
			bsmtest.Open{Call: call(60, 4), At: true, Flags: bsmtest.OWronly, Path: root + "/logs/x"}.Bytes(),
			bsmtest.Rename{Call: call(61, 0), At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD, From: root + "/app.log", To: root + "/app.log.1",
				FromAttr: &bsmtest.Attr{Mode: 0o644}}.Bytes(),
			bsmtest.Rename{Call: call(61, 0), At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD, From: root + "/logs", To: root + "/logs.old",
				FromAttr: &bsmtest.Attr{Mode: 0o755 | 0o040000}}.Bytes(),
			bsmtest.Close{Call: call(60, 0), FD: 3}.Bytes(),
			bsmtest.Close{Call: call(60, 0), FD: 4}.Bytes(),
		}, []string{"write app.log false", "write logs/x false", "rename app.log.1 true from app.log", "rename logs.old true from logs",
			"write app.log.1 true", "write logs.old/x true"}},
		{"outside the root: nothing", [][]byte{
			bsmtest.Open{Call: call(1, 3), At: true, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: "/usr/jails/web/etc/passwd"}.Bytes(),
			bsmtest.Unlink{Call: call(1, 0), At: true, DirFD: bsmtest.AtFDCWD, Path: root + "/../escape"}.Bytes(),
		}, nil},
		{"the receiver's writes are echoes", [][]byte{
			bsmtest.Open{Call: fromReceiver(call(50, 4)), At: true, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: root + "/from-peer"}.Bytes(),
			bsmtest.Close{Call: fromReceiver(call(50, 0)), FD: 4}.Bytes(),
		}, []string{"create|write from-peer false echo", "write from-peer true echo"}},
		{"the agent's own renames are echoes, by pid", [][]byte{
			bsmtest.Rename{Call: call(agentPID, 0), At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD, From: root + "/e/f", To: root + "/e/g",
				FromAttr: &bsmtest.Attr{Mode: 0o644}}.Bytes(),
			bsmtest.Rename{Call: call(agentPID+1, 0), At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD, From: root + "/e/g", To: root + "/e/h",
				FromAttr: &bsmtest.Attr{Mode: 0o644}}.Bytes(),
		}, []string{"rename e/g true from e/f echo", "rename e/h true from e/g"}},
		{"a failed open changes nothing", [][]byte{
			func() []byte {
				c := call(3, 0)
				c.Errno = 13 // EACCES
				return bsmtest.Open{Call: c, At: true, Flags: bsmtest.OWronly, Path: root + "/ro"}.Bytes()
			}(),
		}, nil},
		{"an empty path asks for a rescan", [][]byte{
			bsmtest.Unlink{Call: call(9, 0), At: true, DirFD: bsmtest.AtFDCWD, Path: ""}.Bytes(),
		}, []string{"rescan . false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Translator{Root: root, OwnAUID: receiverAUID, OwnPID: func(pid int32) bool { return pid == agentPID }}
			got := run(t, tr, tc.records...)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestTranslator_ReapImplicitCloses(t *testing.T) {
	tr := &Translator{Root: root, OwnAUID: bsm.AUIDUnset}
	run(t, tr,
		bsmtest.Open{Call: call(100, 3), At: true, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: root + "/exited"}.Bytes(),
		bsmtest.Open{Call: call(200, 3), At: true, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: root + "/running"}.Bytes(),
	)
	var got []string
	tr.Reap(func(pid uint32) bool { return pid == 200 }, func(c change.Change) {
		got = append(got, fmt.Sprintf("%s %s %v", c.Op, c.Path, c.Finished))
	})
	if want := []string{"write exited true"}; !slices.Equal(got, want) {
		t.Fatalf("reaped %q, want %q", got, want)
	}
	if tr.Open() != 1 {
		t.Fatalf("%d files still tracked, want 1 (running)", tr.Open())
	}
}

func TestTranslator_BoundsTrackedOpens(t *testing.T) {
	tr := &Translator{Root: root, MaxOpen: 100}
	var recs [][]byte
	for i := range 1000 {
		recs = append(recs, bsmtest.Open{Call: call(uint32(i), 3), At: true, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: fmt.Sprintf("%s/f%d", root, i)}.Bytes())
		if i%2 == 0 {
			recs = append(recs, bsmtest.Close{Call: call(uint32(i), 0), FD: 3}.Bytes())
		}
	}
	run(t, tr, recs...)
	if tr.Open() != 100 {
		t.Fatalf("%d tracked, want the cap of 100", tr.Open())
	}
	if len(tr.order) > 2*tr.Open()+1024 {
		t.Fatalf("order list holds %d entries for %d open files", len(tr.order), tr.Open())
	}
}
