package receiver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

func TestLanded(t *testing.T) {
	de := doneRename{old: "d", new: "e"}
	ef := doneRename{old: "e", new: "f"}
	for _, tc := range []struct {
		name      string
		p         string
		by        []doneRename
		want, top string
	}{
		{"below no rename", "x/f", []doneRename{de}, "x/f", ""},
		{"a name that only begins like one", "dd/f", []doneRename{de}, "dd/f", ""},
		{"below a renamed directory", "d/sub/f", []doneRename{de}, "e/sub/f", "d"},
		{"the renamed name itself", "d", []doneRename{de}, "e", "d"},
		{"through a chain, in order", "d/sub/f", []doneRename{de, ef}, "f/sub/f", "d"},
		{"a chain in the other order does not chain", "d/sub/f", []doneRename{ef, de}, "e/sub/f", "d"},
		{"below a removal", "d/sub/f", []doneRename{{old: "d"}}, "", "d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, top := landed(tc.p, tc.by); got != tc.want || top != tc.top {
				t.Errorf("landed(%q) = %q, %q; want %q, %q", tc.p, got, top, tc.want, tc.top)
			}
		})
	}
}

// withJournal gives r this member's journal (peers n1 and n2), its
// renames kept as they are logged (journal.Journal.Logged).
func withJournal(t *testing.T, r *Receiver) *journal.Journal {
	t.Helper()
	j, err := journal.Open(r.Index, []string{"n1", "n2"})
	mustOK(t, err)
	r.Renames, r.PendingBelow, r.Self = j, j.PendingBelow, "self"
	j.Logged = r.NoteRenames
	return j
}

// TestReceiver_ARunListedBeforeARenameHereMovesOn: this member renamed d
// to e; n1's run, listed before n1 replayed that rename, puts d/f here
// (rsync makes d again for it). The confirmation moves d/f on to e/f, as
// n1's replay of the rename will move n1's copy, and removes the d rsync
// made. A sender that had replayed the rename, or sent no positions (it
// predates them), leaves d/f where it landed.
func TestReceiver_ARunListedBeforeARenameHereMovesOn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replayed func(j *journal.Journal) []peer.ReplayPos
		moved    bool
	}{
		{"the sender had replayed nothing", func(*journal.Journal) []peer.ReplayPos { return []peer.ReplayPos{} }, true},
		{"the sender had replayed another journal's", func(*journal.Journal) []peer.ReplayPos {
			return []peer.ReplayPos{{Member: "self", Journal: "another", Seq: 1 << 40}}
		}, true},
		{"the sender had replayed the rename", func(j *journal.Journal) []peer.ReplayPos {
			return []peer.ReplayPos{{Member: "self", Journal: j.ID(), Seq: j.Seq()}}
		}, false},
		{"the sender sent no positions", func(*journal.Journal) []peer.ReplayPos { return nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, root, _, _ := newReceiver(t)
			j := withJournal(t, r)
			ctx := context.Background()
			mustOK(t, os.MkdirAll(filepath.Join(root, "d"), 0o755))
			indexed(t, r, "d")
			mustOK(t, os.Rename(filepath.Join(root, "d"), filepath.Join(root, "e")))
			mustOK(t, j.Record(r.RootFD, []string{"n1", "n2"}, []change.Change{{Path: "e", OldPath: "d", Op: change.Rename | change.Subtree, Finished: true}}))
			mustOK(t, r.Incoming(ctx, "n1", "", "run-1", []string{"d/f"}, nil, tc.replayed(j)))
			// The run puts d/f here, making d for it, as rsync does.
			mustOK(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
			mustOK(t, os.WriteFile(filepath.Join(root, "d", "f"), []byte("n1's"), 0o644))
			st, err := os.Stat(filepath.Join(root, "d", "f"))
			mustOK(t, err)
			sent := []peer.FileState{{Regular: true, Size: 5, MtimeNs: st.ModTime().UnixNano(), Mode: 0o100644}, {Dir: true}}
			sent[0].Size = st.Size()
			mustOK(t, r.Received(ctx, "n1", "run-1", []string{"d/f", "d"}, sent, nil))
			_, errOld := os.Lstat(filepath.Join(root, "d", "f"))
			_, errNew := os.Lstat(filepath.Join(root, "e", "f"))
			_, errDir := os.Lstat(filepath.Join(root, "d"))
			if got := errOld != nil && errNew == nil; got != tc.moved {
				t.Fatalf("moved on to e/f: %v (d/f: %v, e/f: %v), want %v", got, errOld, errNew, tc.moved)
			}
			if tc.moved && errDir == nil {
				t.Error("the d rsync made for d/f is still here")
			}
			want := "d/f"
			if tc.moved {
				want = "e/f"
			}
			if same, err := unchanged(r, want); err != nil || !same {
				t.Errorf("%s not recorded as it is (%v)", want, err)
			}
		})
	}
}

// TestReceiver_PendingPathsFollowAReplayedRename: d/x was written here
// and not sent yet when n2's rename of d to e is replayed here: e/x goes
// again (recorded as an entry nothing matches, and compared), where it
// read as sent before, and its pending entry at d/x went as a removal.
func TestReceiver_PendingPathsFollowAReplayedRename(t *testing.T) {
	r, root, _, _ := newReceiver(t)
	j := withJournal(t, r)
	var rescans []string
	r.Rescan = func(p string) { rescans = append(rescans, p) }
	mustOK(t, os.MkdirAll(filepath.Join(root, "d"), 0o755))
	mustOK(t, os.WriteFile(filepath.Join(root, "d", "x"), []byte("mine"), 0o644))
	mustOK(t, os.WriteFile(filepath.Join(root, "d", "y"), []byte("sent"), 0o644))
	indexed(t, r, "d", "d/y")
	mustOK(t, j.Record(r.RootFD, []string{"n1", "n2"}, []change.Change{{Path: "d/x", Op: change.Create | change.Write, Finished: true}}))
	res := replayOnce(context.Background(), r, "n2", []peer.Rename{{Old: []byte("d"), New: []byte("e"), Dir: true}})
	if !res[0].Applied {
		t.Fatalf("rename refused: %s", res[0].Reason)
	}
	mustOK(t, r.Index.View(func(tx *index.Tx) error {
		for p, local := range map[string]bool{"e/x": true, "e/y": false} {
			if e, ok, err := tx.Get(p); err != nil || !ok || (e.Size == -1) != local {
				t.Errorf("%s recorded %+v (%v, %v); want this member's own (size -1): %v", p, e, ok, err, local)
			}
		}
		return nil
	}))
	found := false
	for _, p := range rescans {
		found = found || p == "e/x" || p == "e"
	}
	if !found {
		t.Errorf("e/x not compared again (rescans %q)", rescans)
	}
}
