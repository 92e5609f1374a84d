package sender

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

// TestSender_take_deletionsBelowAFile: removed paths below a directory
// that became a file here go by that file (the file above): with its own
// entry in their batch, confirmed without a run once the peer holds a
// non-directory there, and otherwise they wait.
func TestSender_take_deletionsBelowAFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup runs after the deletions and the file's change were
		// journaled (unless notJournaled), the deletions first.
		setup        func(t *testing.T, s *Sender, fileEntry journal.Entry)
		notJournaled bool // the file is still being written: its change not journaled
		renamed      bool // the file is f renamed into d's place, not written there
		batchFiles   int
		want         map[string][]string // batch part: paths
	}{
		{
			name:       "the file pending behind them: taken into their batch",
			batchFiles: 2,
			want:       map[string][]string{"sends": {"d"}, "underFile": {"d/sub/y", "d/x"}},
		},
		{
			name: "the file confirmed on the peer: confirmed without a run",
			setup: func(t *testing.T, s *Sender, fileEntry journal.Entry) {
				if err := s.Journal.Done("peer", []journal.Entry{fileEntry}); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string][]string{"replacedBefore": {"d/sub/y", "d/x"}},
		},
		{
			name: "the file in flight in another run: they are not taken (paths below one in flight)",
			setup: func(t *testing.T, s *Sender, fileEntry journal.Entry) {
				s.inflight.add("d")
			},
			want: map[string][]string{},
		},
		{
			name: "the file held (it changed during its run): they wait",
			setup: func(t *testing.T, s *Sender, fileEntry journal.Entry) {
				s.held["d"] = hold{seq: fileEntry.Seq, until: time.Now().Add(time.Hour)}
			},
			want: map[string][]string{"waiting": {"d/sub/y", "d/x"}},
		},
		{
			name:       "the file renamed into the directory's place: not taken as a plain send (its old name would stay on the peer); they wait for its rename",
			renamed:    true,
			batchFiles: 2,
			want:       map[string][]string{"waiting": {"d/sub/y", "d/x"}},
		},
		{
			name:         "the file still being written: they wait",
			notJournaled: true,
			want:         map[string][]string{"waiting": {"d/sub/y", "d/x"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "d", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"d/x", "d/sub/y"} {
				if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rootfd, j := openJournal(t, root)
			if err := os.WriteFile(filepath.Join(root, "f"), []byte("now a file"), 0o644); err != nil {
				t.Fatal(err)
			}
			settle(t, j, rootfd, "d", "d/sub", "d/x", "d/sub/y", "f")
			if err := os.RemoveAll(filepath.Join(root, "d")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(root, "f"), filepath.Join(root, "d")); err != nil {
				t.Fatal(err)
			}
			ch := []change.Change{
				{Path: "d/x", Op: change.Remove, Finished: true},
				{Path: "d/sub/y", Op: change.Remove, Finished: true},
			}
			switch {
			case tc.renamed:
				ch = append(ch, change.Change{Path: "d", OldPath: "f", Op: change.Rename, Finished: true})
			case !tc.notJournaled:
				ch = append(ch, change.Change{Path: "d", Op: change.Rmdir | change.Create | change.Write, Finished: true})
			}
			if err := j.Record(rootfd, []string{"peer"}, ch); err != nil {
				t.Fatal(err)
			}
			s := &Sender{Peer: "peer", Journal: j, BatchFiles: tc.batchFiles, Log: logr.Discard()}
			s.defaults()
			if tc.setup != nil {
				own, ok, err := j.Entry("peer", "d")
				if err != nil || !ok {
					t.Fatalf("d's entry: %v, %v", ok, err)
				}
				tc.setup(t, s, own)
			}
			b, _ := s.take(rootfd)
			parts := map[string][]journal.Entry{
				"sends": b.sends, "underFile": b.underFile, "replacedBefore": b.replacedBefore,
				"waiting": b.waiting, "deletes": b.deletes, "covered": b.covered, "skipped": b.skipped,
			}
			for name, es := range parts {
				got := pathsOf(es)
				slices.Sort(got)
				if !slices.Equal(got, tc.want[name]) {
					t.Errorf("%s: %q, want %q", name, got, tc.want[name])
				}
			}
		})
	}
}

// TestSender_take_belowAWaitingRenameWaits: mv d e, with d in flight to
// the peer: the rename waits; rm e/x, mv e/v v2 and mkdir d, journaled
// after that, wait for it too (deleted first, e/x was not on the peer yet,
// and stayed once the rename put it there; renamed first, the peer
// refused, and e/v stayed likewise; sent first, the new d went with the
// peer's rename); so does a write below e (sent first, it made e on the
// peer, which refused the rename). A removal elsewhere, and the others
// once the rename no longer waits, are taken.
func TestSender_take_belowAWaitingRenameWaits(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d/x", "d/y", "d/v", "d/u", "z"} {
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rootfd, j := openJournal(t, root)
	settle(t, j, rootfd, "d", "d/x", "d/y", "d/v", "d/u", "z")
	// Removed before the rename: the peer's d/u goes with the rename to
	// e/u, whose removal the journal adds.
	if err := os.Remove(filepath.Join(root, "d", "u")); err != nil {
		t.Fatal(err)
	}
	if err := j.Record(rootfd, []string{"peer"}, []change.Change{{Path: "d/u", Op: change.Remove, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "e")); err != nil {
		t.Fatal(err)
	}
	if err := j.Record(rootfd, []string{"peer"}, []change.Change{{Path: "e", OldPath: "d", Op: change.Rename | change.Subtree, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	s := &Sender{Peer: "peer", Journal: j, Log: logr.Discard()}
	s.defaults()
	s.inflight.add("d")
	// The journal moved d/u's removal behind the rename and journaled
	// e/u's (journal.behindRename): e/u waits with the rename.
	if b, _ := s.take(rootfd); !slices.Equal(pathsOf(b.waiting), []string{"e", "e/u"}) {
		t.Fatalf("first take: waiting %q, want the rename and e/u's removal", pathsOf(b.waiting))
	}
	for _, p := range []string{"e/x", "z"} {
		if err := os.Remove(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "e", "y"), []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "e", "v"), filepath.Join(root, "v2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := j.Record(rootfd, []string{"peer"}, []change.Change{
		{Path: "e/x", Op: change.Remove, Finished: true},
		{Path: "e/y", Op: change.Write, Finished: true},
		{Path: "z", Op: change.Remove, Finished: true},
		{Path: "v2", OldPath: "e/v", Op: change.Rename, Finished: true},
		{Path: "d", Op: change.Create, Finished: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.inflight.remove("d") // its run ended; the rename is still held for a moment
	b, _ := s.take(rootfd)
	if got := pathsOf(slices.Concat(b.deletes, b.covered)); !slices.Equal(got, []string{"z"}) {
		t.Errorf("while the rename waits: deletes %q, want z, not e/x, nor d/u (behind the rename now)", got)
	}
	if got := pathsOf(b.sends); len(got) > 0 {
		t.Errorf("while the rename waits: sends %q, want none (not e/y, below its new name, nor v2, renamed out of it, nor d, its old name made again)", got)
	}
	if len(b.renames) > 0 {
		t.Errorf("while the rename waits: renames %q, want none", pathsOf(b.renames))
	}
	s.finish(b) // that run ended, confirmed
	if err := j.Done("peer", slices.Concat(b.deletes, b.sends)); err != nil {
		t.Fatal(err)
	}
	s.held = map[string]hold{} // the rename waited its time
	b, _ = s.take(rootfd)
	// d/u's removal finds nothing once the peer renamed d; e/u's takes
	// what the rename brought there.
	if !slices.Equal(pathsOf(b.renames), []string{"e", "v2"}) || !slices.Equal(pathsOf(b.deletes), []string{"d/u", "e/u", "e/x"}) || !slices.Contains(pathsOf(b.sends), "d") || !slices.Contains(pathsOf(b.sends), "e/y") {
		t.Errorf("once the rename no longer waits: renames %q, deletes %q, sends %q; want e then v2, and d/u, e/u, e/x, d and e/y in their batch", pathsOf(b.renames), pathsOf(b.deletes), pathsOf(b.sends))
	}
}

// openJournal opens root and a fresh index and journal for one peer,
// "peer", all closed when the test ends.
func openJournal(t *testing.T, root string) (int, *journal.Journal) {
	t.Helper()
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(rootfd) })
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	j, err := journal.Open(idx, []string{"peer"})
	if err != nil {
		t.Fatal(err)
	}
	return rootfd, j
}

// settle records the paths as made, as the detector would, and confirms
// them as if they had gone to "peer" before: the index holds them, nothing
// is pending.
func settle(t *testing.T, j *journal.Journal, rootfd int, paths ...string) {
	t.Helper()
	var made []change.Change
	for _, p := range paths {
		made = append(made, change.Change{Path: p, Op: change.Create, Finished: true})
	}
	if err := j.Record(rootfd, []string{"peer"}, made); err != nil {
		t.Fatal(err)
	}
	pending, err := j.Next("peer", 1000, nil)
	if err != nil || len(pending) != len(made) {
		t.Fatalf("journaled %d of %d (%v)", len(pending), len(made), err)
	}
	if err := j.Done("peer", pending); err != nil {
		t.Fatal(err)
	}
}
