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
		// moved: the file's entry confirmed, the index then holds a Moved
		// entry of it (left by a rename of a directory above it).
		moved      bool
		renamed    bool // the file is f renamed into d's place, not written there
		batchFiles int
		want       map[string][]string // batch part: paths
		wantScans  []string            // paths the sender asks the detector to scan
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
			name:       "the file renamed into the directory's place: taken into their batch as well (the rename goes by the log, its old name's removal is an entry of its own)",
			renamed:    true,
			batchFiles: 2,
			want:       map[string][]string{"sends": {"d"}, "underFile": {"d/sub/y", "d/x"}},
		},
		{
			name:         "the file still being written: they wait, and a scan of it is asked (the scan finds it open, or records it)",
			notJournaled: true,
			want:         map[string][]string{"waiting": {"d/sub/y", "d/x"}},
			wantScans:    []string{"d"},
		},
		{
			name:      "the file confirmed, the index holding a Moved entry of it: they wait, and a scan of it is asked, which journals it (nothing else would)",
			moved:     true,
			want:      map[string][]string{"waiting": {"d/sub/y", "d/x"}},
			wantScans: []string{"d"},
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
			rootfd, j, idx := openJournalIndex(t, root)
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
			var scans []string
			s := &Sender{Peer: "peer", Journal: j, BatchFiles: tc.batchFiles, Log: logr.Discard(),
				Rescan: func(p string) { scans = append(scans, p) }}
			s.defaults()
			if tc.moved {
				own, ok, err := j.Entry("peer", "d")
				if err != nil || !ok {
					t.Fatalf("d's entry: %v, %v", ok, err)
				}
				if err := j.Done("peer", []journal.Entry{own}); err != nil {
					t.Fatal(err)
				}
				if err := idx.Update(func(tx *index.Tx) error { return tx.Put("d", index.Moved()) }); err != nil {
					t.Fatal(err)
				}
			}
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
			if !slices.Equal(scans, tc.wantScans) {
				t.Errorf("scans asked: %q, want %q", scans, tc.wantScans)
			}
			// Planned again at once: a scan of the same path is not
			// asked again within scanAskedEvery.
			s.finish(b)
			clear(s.held)
			s.take(rootfd)
			if !slices.Equal(scans, tc.wantScans) {
				t.Errorf("scans asked after a second plan: %q, want %q", scans, tc.wantScans)
			}
		})
	}
}

// openJournal opens root and a fresh index and journal for one peer,
// "peer", all closed when the test ends.
func openJournal(t *testing.T, root string) (int, *journal.Journal) {
	t.Helper()
	rootfd, j, _ := openJournalIndex(t, root)
	return rootfd, j
}

// openJournalIndex is openJournal, and returns the index too.
func openJournalIndex(t *testing.T, root string) (int, *journal.Journal, *index.Index) {
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
	return rootfd, j, idx
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
