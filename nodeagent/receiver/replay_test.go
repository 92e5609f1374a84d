package receiver

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// TestReceiver_Replay: a member's rename log is replayed in order, as its
// renames were made there, and never twice: the receiver keeps the last
// sequence number it replayed from each member's journal, committed with
// what it applied, so a request sent again (its sender stopped before it
// recorded the answer) is answered without touching anything; a journal
// made anew counts from the start.
func TestReceiver_Replay(t *testing.T) {
	swap := func(seq uint64) []peer.Rename {
		return []peer.Rename{
			{Old: []byte("x"), New: []byte("t"), Size: 2, AsHeld: true, Seq: seq},
			{Old: []byte("y"), New: []byte("x"), Size: 3, AsHeld: true, Seq: seq + 1},
			{Old: []byte("t"), New: []byte("y"), Size: 2, AsHeld: true, Seq: seq + 2, After: []int{0}},
		}
	}
	type request struct {
		journal string
		renames []peer.Rename
		applied []bool
	}
	for _, tc := range []struct {
		name     string
		pending  []string          // changed here, not sent yet (Receiver.Pending)
		written  map[string]string // written here, not journaled yet
		links    map[string]string // name: the file it is another name of, recorded
		keep     bool              // spec.deletes: Keep
		indexed  []string          // held by the index after
		requests []request
		want     map[string]string // path: content ("/" a directory, "" gone)
	}{{
		name: "a swap sent twice swaps once",
		requests: []request{
			{"j1", swap(1), []bool{true, true, true}},
			{"j1", swap(1), []bool{true, true, true}}, // replayed before
		},
		want: map[string]string{"x": "yyy", "y": "xx", "t": ""},
	}, {
		name: "a journal made anew replays from its start",
		requests: []request{
			{"j1", swap(1), []bool{true, true, true}},
			{"j2", swap(1), []bool{true, true, true}},
		},
		want: map[string]string{"x": "xx", "y": "yyy", "t": ""},
	}, {
		name: "only what is past the position is replayed",
		requests: []request{
			{"j1", swap(1)[:2], []bool{true, true}},
			{"j1", swap(1), []bool{true, true, true}}, // the first two before
		},
		want: map[string]string{"x": "yyy", "y": "xx", "t": ""},
	}, {
		name: "a file replaces a file, as the writer's rename did, unless changed here",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("x"), New: []byte("y"), Size: 2, AsHeld: true, Seq: 1},
			{Old: []byte("y"), New: []byte("changed"), Size: 2, AsHeld: true, Seq: 2},
		}, []bool{true, false}}},
		// The second, refused, removes its old name: the object left it.
		want: map[string]string{"x": "", "y": "", "changed": "changed here"},
	}, {
		// The writer's rename could not have replaced a file: it left
		// that name before, by a rename the log lacks.
		name: "a directory replaces a file",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("dir"), New: []byte("y"), Dir: true, AsHeld: true, Seq: 1},
		}, []bool{true}}},
		want: map[string]string{"dir": "", "y/b": "12345"},
	}, {
		name: "a directory replaces an empty directory, not one that holds anything",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("dir"), New: []byte("empty"), Dir: true, AsHeld: true, Seq: 1},
			{Old: []byte("empty"), New: []byte("full"), Dir: true, AsHeld: true, Seq: 2},
		}, []bool{true, false}}},
		// The second, refused, removes its old name, tree and all.
		want: map[string]string{"dir": "", "empty": "", "full/f": "12345"},
	}, {
		name: "a rename, then a removal of its new name, in one request",
		requests: []request{
			{"j1", []peer.Rename{
				{Old: []byte("dir"), New: []byte("d2"), Dir: true, AsHeld: true, Seq: 1},
				{Old: []byte("d2"), Remove: true, Seq: 2},
			}, []bool{true, true}},
			// Recorded (the position with it): the second asks nothing.
			{"j1", []peer.Rename{{Old: []byte("x"), New: []byte("x2"), Size: 2, AsHeld: true, Seq: 2}}, []bool{true}},
		},
		want: map[string]string{"dir": "", "d2": "", "x": "xx", "x2": ""},
	}, {
		name: "a rename whose old name is not here removes what its new name holds",
		requests: []request{{"j1", []peer.Rename{
			// An atomic write's temporary file, renamed before it was sent.
			{Old: []byte(".tmp-1"), New: []byte("x"), Size: 9, AsHeld: true, Seq: 1},
			{Old: []byte("x"), New: []byte("moved"), Size: 9, AsHeld: true, Seq: 2, After: []int{0}},
			{Old: []byte(".tmp-2"), New: []byte("full"), Dir: true, AsHeld: true, Seq: 3},
			{Old: []byte(".tmp-3"), New: []byte("changed"), Size: 9, AsHeld: true, Seq: 4},
		}, []bool{false, false, false, false}}},
		// What the writer's renames replaced is gone here; a directory
		// that holds anything, or a file changed here, stays.
		want: map[string]string{"x": "", "moved": "", "full/f": "12345", "changed": "changed here"},
	}, {
		// The writer's history moved the object away from its old name;
		// here it cannot follow (its new name's directory is a file
		// here), and it comes by content there.
		name: "a rename refused with its object here removes its old name",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("x"), New: []byte("y/inside"), Size: 2, AsHeld: true, MakeParents: true, Seq: 1},
		}, []bool{false}}},
		want: map[string]string{"x": "", "y": "yyy"},
	}, {
		// Left, later renames carried it along (stress seed 25: into a
		// directory that a swap moved).
		name: "a directory's rename refused with its tree here removes the tree",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("dir"), New: []byte("y/inside"), Dir: true, AsHeld: true, MakeParents: true, Seq: 1},
		}, []bool{false}}},
		want: map[string]string{"dir": "", "dir/b": "", "dir/c": "", "y": "yyy"},
	}, {
		// The writer renamed a directory from a name that holds a file
		// here (and a file from one that holds a directory): the
		// name's path entry would delete each, but a later rename of
		// the log, of a directory above it, carried it along first
		// (stress seed 29 of the forty-fifth session). Held here as
		// sent, neither stays.
		name: "a rename refused for an old name of another type removes it",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("x"), New: []byte("moved"), Dir: true, AsHeld: true, Seq: 1},
			{Old: []byte("full"), New: []byte("moved2"), Size: 5, AsHeld: true, Seq: 2},
		}, []bool{false, false}}},
		want: map[string]string{"x": "", "full": "", "full/f": "", "moved": "", "moved2": ""},
	}, {
		// The writer moved q there (refused here: another object, or
		// none), made q/d/f and renamed q/d away: here q/d holds what a
		// made rename put there, not the writer's object. Left, a later
		// rename of a directory above it carried it on before the old
		// name's path entry came (stress seed 40, the forty-eighth
		// session).
		name: "a rename not tried after a refused one removes its old name",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("gone"), New: []byte("q"), Dir: true, AsHeld: true, Seq: 1},
			{Old: []byte(".tmp-1"), New: []byte("q/d/f"), Dir: true, AsHeld: true, MakeParents: true, Seq: 2},
			{Old: []byte("q/d"), New: []byte("elsewhere"), Dir: true, AsHeld: true, Seq: 3, After: []int{0}},
			{Old: []byte("q"), New: []byte("q2"), Dir: true, AsHeld: true, Seq: 4},
		}, []bool{false, true, false, true}}},
		want: map[string]string{"q2": "/", "q2/d": "", "q/d": "", "elsewhere": ""},
	}, {
		name:    "a rename not tried keeps what changed here at its old name",
		written: map[string]string{"q/d/new": "new here"},
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("gone"), New: []byte("q"), Dir: true, AsHeld: true, Seq: 1},
			{Old: []byte(".tmp-1"), New: []byte("q/d/f"), Dir: true, AsHeld: true, MakeParents: true, Seq: 2},
			{Old: []byte("q/d"), New: []byte("elsewhere"), Dir: true, AsHeld: true, Seq: 3, After: []int{0}},
		}, []bool{false, true, false}}},
		want: map[string]string{"q/d/new": "new here", "q/d/f": "", "elsewhere": ""},
	}, {
		name:    "an old name of another type stays where it changed here",
		pending: []string{"full/f"},
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("changed"), New: []byte("moved"), Dir: true, AsHeld: true, Seq: 1},
			{Old: []byte("full"), New: []byte("moved2"), Size: 5, AsHeld: true, Seq: 2},
		}, []bool{false, false}}},
		want: map[string]string{"changed": "changed here", "full/f": "12345", "moved": "", "moved2": ""},
	}, {
		// Not recorded, their events (read once the request's hold
		// ends) were this member's own changes, and went back to the
		// writer with this member's times.
		name: "the directories made for a rename are recorded with it, also where it then fails",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("x"), New: []byte("p/q/x2"), Size: 2, AsHeld: true, MakeParents: true, Seq: 1},
			{Old: []byte("gone"), New: []byte("r/s/t"), Size: 2, AsHeld: true, MakeParents: true, Seq: 2},
			{Old: []byte(".tmp-1"), New: []byte("u/v"), Dir: true, AsHeld: true, MakeParents: true, Seq: 3},
		}, []bool{true, false, true}}},
		want:    map[string]string{"p/q/x2": "xx", "u/v": "/"},
		indexed: []string{"p", "p/q", "p/q/x2", "u", "u/v"},
	}, {
		name: "with deletes kept, nothing is removed",
		keep: true,
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("full"), Remove: true, Seq: 1},
			{Old: []byte("dir"), New: []byte("y/inside"), Dir: true, AsHeld: true, MakeParents: true, Seq: 2},
			{Old: []byte("x"), New: []byte("x2"), Size: 2, AsHeld: true, Seq: 3},
		}, []bool{false, false, true}}},
		want: map[string]string{"full/f": "12345", "dir/b": "12345", "dir/c": "cc", "y": "yyy", "x2": "xx"},
	}, {
		name:    "what was changed here stays in a tree a refused rename removes",
		pending: []string{"dir/b"},
		written: map[string]string{"dir/d/new": "new here"},
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("dir"), New: []byte("y/inside"), Dir: true, AsHeld: true, MakeParents: true, Seq: 1},
		}, []bool{false}}},
		want: map[string]string{"dir/b": "12345", "dir/c": "", "dir/d/new": "new here", "y": "yyy"},
	}, {
		name:    "what this member changed and has not sent is neither removed nor replaced",
		pending: []string{"dir/b", "y", "empty"},
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("dir"), Remove: true, Seq: 1},
			{Old: []byte("x"), New: []byte("y"), Size: 2, AsHeld: true, Seq: 2},
			{Old: []byte(".tmp-1"), New: []byte("empty"), Dir: true, AsHeld: true, Seq: 3},
		}, []bool{false, false, false}}},
		// x left its old name: it goes (a refused rename's).
		want: map[string]string{"dir/b": "12345", "x": "", "y": "yyy", "empty": "/"},
	}, {
		// The shape of stress seed 650 (the fifty-sixth session): a
		// directory made in a tree, the tree moved deep, a directory
		// above it moved, then removed.
		name: "a tree moved in and removed in one request leaves nothing indexed",
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte(".tmp-1"), New: []byte("dir/-n0"), Dir: true, AsHeld: true, MakeParents: true, Seq: 1},
			{Old: []byte("dir"), New: []byte("t1/d5/D24/d17/d21/D0"), Dir: true, AsHeld: true, MakeParents: true, Seq: 2},
			{Old: []byte("t1/d5"), New: []byte("m24/D16"), Dir: true, AsHeld: true, MakeParents: true, Seq: 3},
			{Old: []byte("m24/D16/D24"), Remove: true, Seq: 4},
		}, []bool{true, true, true, true}}},
		want: map[string]string{"dir": "", "t1/d5": "", "m24/D16": "/", "m24/D16/D24": "",
			"m24/D16/D24/d17/d21/D0": "", "m24/D16/D24/d17/d21/D0/b": "", "m24/D16/D24/d17/d21/D0/c": "", "m24/D16/D24/d17/d21/D0/-n0": ""},
		indexed: []string{"m24", "m24/D16"},
	}, {
		// rename(2) of a name onto another name of the same file does
		// nothing and succeeds (POSIX). Left, the old name read as a
		// create of this member's own and went to every member, the
		// writer too (stress seed 180, the fifty-first session: a run
		// had put the new name there as a hard link before the replay).
		name:  "a file renamed onto another of its names leaves its old name",
		links: map[string]string{"x-link": "x"},
		requests: []request{{"j1", []peer.Rename{
			{Old: []byte("x"), New: []byte("x-link"), Size: 2, AsHeld: true, Seq: 1},
		}, []bool{true}}},
		want:    map[string]string{"x": "", "x-link": "xx"},
		indexed: []string{"x-link"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r, root, _, _ := newReceiver(t)
			r.KeepDeletes = tc.keep
			r.Pending = func(rel string) bool {
				for _, p := range tc.pending {
					if p == rel || strings.HasPrefix(p, rel+"/") {
						return true
					}
				}
				return false
			}
			for p, content := range map[string]string{"x": "xx", "y": "yyy", "empty": "/", "full/f": "12345", "changed": "as sent", "dir/c": "cc"} {
				writeTree(t, root, p, content)
			}
			for name, of := range tc.links {
				if err := os.Link(filepath.Join(root, of), filepath.Join(root, name)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Index.Update(func(tx *index.Tx) error {
				for _, p := range append([]string{"x", "y", "dir", "dir/b", "dir/c", "empty", "full", "full/f", "changed"}, slices.Collect(maps.Keys(tc.links))...) {
					if err := tx.Record(r.RootFD, p); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			writeTree(t, root, "changed", "changed here") // not sent yet
			for p, content := range tc.written {
				writeTree(t, root, p, content)
			}
			for n, q := range tc.requests {
				res := r.Replay(context.Background(), "writer", peer.ReplayRequest{Journal: q.journal, Renames: q.renames}).Results
				for i, want := range q.applied {
					if res[i].Applied != want {
						t.Errorf("request %d, rename %d: %+v; want applied %v", n, i, res[i], want)
					}
				}
			}
			if err := r.Index.View(func(tx *index.Tx) error {
				for _, p := range tc.indexed {
					if _, ok, _ := tx.Get(p); !ok {
						t.Errorf("the index does not hold %s", p)
					}
					if same, err := tx.Unchanged(r.RootFD, p, false); err != nil || !same {
						t.Errorf("the index does not hold %s as it is (%v)", p, err)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.want {
				got := readTree(t, root, p)
				if got != want {
					t.Errorf("%s holds %q, want %q", p, got, want)
				}
				if want == "" {
					if err := r.Index.View(func(tx *index.Tx) error {
						if _, ok, _ := tx.Get(p); ok {
							t.Errorf("the index still holds %s, which the replay took away", p)
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// writeTree makes p below root: a directory for "/", else a file holding
// content (its directories made).
func writeTree(t *testing.T, root, p, content string) {
	t.Helper()
	abs := filepath.Join(root, p)
	if content == "/" {
		if err := os.MkdirAll(abs, 0o755); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(abs, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readTree is what p below root holds, as writeTree writes it ("" gone).
func readTree(t *testing.T, root, p string) string {
	t.Helper()
	abs := filepath.Join(root, p)
	st, err := os.Lstat(abs)
	switch {
	case os.IsNotExist(err):
		return ""
	case err != nil:
		t.Fatal(err)
	case st.IsDir():
		return "/"
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReceiver_ReplayTakesWhatItsSendersDeadRunsLeft: a sender's run that
// put files here died unconfirmed with its sender (kill -9), and the
// sender, restarted, replays renames of those files. What the run left at
// the renames' names is the sender's: the renames move it as such, record
// it under the new names, and compare nothing again as this member's own;
// the dead run's paths are released. A run its sender still has under
// way (peer.ReplayRequest.Live), another sender's run, and a path
// changed here and not sent yet keep the comparison with the index.
// The answer names where the renames took what such a run had put here
// (peer.RenameResponse.Verify), for the sender to bring to its state.
func TestReceiver_ReplayTakesWhatItsSendersDeadRunsLeft(t *testing.T) {
	const written = "the run's content"
	for _, tc := range []struct {
		name      string
		deadRun   string   // sender and run that put the files here
		deadPaths []string // its paths
		live      []string // runs the replaying sender has under way
		pending   string   // changed here and not sent yet
		restart   bool     // this member restarts before the replay: both runs restored
		put       func(t *testing.T, root string) peer.Rename
		applied   bool
		at        []string // where the renamed object is, indexed as it is
		rescanned bool     // compared again as this member's own
		stillHeld string   // by the dead run, after the replay's run is confirmed
		verify    []string // names the answer has the sender verify
	}{{
		name: "a file it wrote", deadRun: "n1/run-1", deadPaths: []string{"a"},
		put:     writeAt("a", written),
		applied: true, at: []string{"c"}, verify: []string{"c"},
	}, {
		// The sender renamed dir just before rsync read dir/x, which
		// it pushed into this member's dir: the replay takes it along.
		name: "a file it put in a directory, renamed", deadRun: "n1/run-1", deadPaths: []string{"dir/x"},
		put: func(t *testing.T, root string) peer.Rename {
			writeTree(t, root, "dir/x", written)
			return peer.Rename{Old: []byte("dir"), New: []byte("c"), Dir: true, AsHeld: true, MakeParents: true}
		},
		// dir, the directory above dir/x that the push sent, is the
		// sender's too (withImpliedParents), and verified as c.
		applied: true, at: []string{"c", "c/x"}, verify: []string{"c", "c/x"},
	}, {
		// The sender wrote it again before it renamed it: the rename's
		// size is the newer one's, and the file here is as the index
		// holds it only once the dead run's content is taken.
		name: "a file it wrote, written again on the sender before the rename", deadRun: "n1/run-1", deadPaths: []string{"a"},
		put: func(t *testing.T, root string) peer.Rename {
			rn := writeAt("a", written)(t, root)
			rn.Size, rn.MtimeNs = 3, 0
			return rn
		},
		applied: true, at: []string{"c"}, verify: []string{"c"},
	}, {
		name: "a directory it made in place of a file, and filled", deadRun: "n1/run-1", deadPaths: []string{"taken", "taken/f"},
		put: func(t *testing.T, root string) peer.Rename {
			if err := os.Remove(filepath.Join(root, "taken")); err != nil {
				t.Fatal(err)
			}
			writeTree(t, root, "taken/f", written)
			return peer.Rename{Old: []byte("taken"), New: []byte("c"), Dir: true, AsHeld: true, MakeParents: true}
		},
		applied: true, at: []string{"c", "c/f"}, verify: []string{"c", "c/f"},
	}, {
		// The dead run's replay of tmp -> a, refused (no tmp here),
		// removed what a held, and its sender died before the record
		// (or this member did): a's removal is the sender's, recorded,
		// not this member's own (the stress test's Kill9 seed 111 of the
		// sixty-first session). The sender sends a's content.
		name: "a name its replay cleared", deadRun: "n1/run-1", deadPaths: []string{"tmp", "a"},
		put: func(t *testing.T, root string) peer.Rename {
			if err := os.Remove(filepath.Join(root, "a")); err != nil {
				t.Fatal(err)
			}
			return peer.Rename{Old: []byte("tmp"), New: []byte("a"), Size: 1, AsHeld: true, MakeParents: true}
		},
		applied: false, at: []string{"a"},
	}, {
		// The dead run listed dir/x, and its push sent dir, the
		// directory above it, as the sender had it by then: a symlink,
		// in place of this member's directory (rsync's implied
		// directories, --force). The replay's rename of dir, made on the
		// sender while dir was a directory, is refused here; dir is the
		// sender's, recorded, and not compared again as this member's
		// own change, which went to every member under the new name of
		// dir's parent (the stress test's Kill9 seed 487 of the
		// sixty-eighth session).
		name: "a directory above its path that its push replaced", deadRun: "n1/run-1", deadPaths: []string{"dir/x"},
		put: func(t *testing.T, root string) peer.Rename {
			if err := os.RemoveAll(filepath.Join(root, "dir")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("elsewhere", filepath.Join(root, "dir")); err != nil {
				t.Fatal(err)
			}
			return peer.Rename{Old: []byte("dir"), New: []byte("c"), Dir: true, AsHeld: true, MakeParents: true}
		},
		applied: false, at: []string{"dir"},
	}, {
		// The dead run's push into dir was cut by this member's kill -9
		// (its daemon's connection was stopped at the restart), while
		// the run that replays dir's rename, announced before the kill,
		// waited for that push; it replays once this member is back,
		// where both runs are restored. Left to the dead run's hold,
		// c/x read as this member's new file, and held a removal of c's
		// parent that the sender replayed next (the stress test's Kill9
		// seed 571 of the seventieth session: two removed directories
		// came back on every member).
		name: "a file it put in a directory, renamed, both runs announced before this member's restart", deadRun: "n1/run-1", deadPaths: []string{"dir/x"},
		restart: true,
		put: func(t *testing.T, root string) peer.Rename {
			writeTree(t, root, "dir/x", written)
			return peer.Rename{Old: []byte("dir"), New: []byte("c"), Dir: true, AsHeld: true, MakeParents: true}
		},
		applied: true, at: []string{"c", "c/x"}, verify: []string{"c", "c/x"},
	}, {
		name: "a run its sender has under way", deadRun: "n1/run-1", deadPaths: []string{"a"}, live: []string{"run-1"},
		put:     writeAt("a", written),
		applied: true, rescanned: true, stillHeld: "a",
	}, {
		name: "another sender's run", deadRun: "n3/run-1", deadPaths: []string{"a"},
		put:     writeAt("a", written),
		applied: true, rescanned: true, stillHeld: "a",
	}, {
		name: "changed here and not sent yet", deadRun: "n1/run-1", deadPaths: []string{"a"}, pending: "a",
		put:     writeAt("a", written),
		applied: true, rescanned: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r, root, _, _ := newReceiver(t)
			ctx := context.Background()
			indexed(t, r, "a", "dir", "dir/b", "taken")
			var rescanned []string
			r.Rescan = func(p string) { rescanned = append(rescanned, p) }
			r.Pending = func(p string) bool { return p == tc.pending }
			sender, deadRun, _ := strings.Cut(tc.deadRun, "/")
			if err := r.Incoming(ctx, sender, "", deadRun, tc.deadPaths, nil, nil); err != nil {
				t.Fatal(err)
			}
			rn := tc.put(t, root) // the dead run's rsync
			rn.Seq = 1
			// n1, restarted, announces the rename's names and replays it.
			names := []string{string(rn.Old), string(rn.New)}
			if err := r.Incoming(ctx, "n1", "", "run-2", names, nil, nil); err != nil {
				t.Fatal(err)
			}
			if tc.restart {
				// Both runs' paths restored.
				rr := restarted(t, r, len(tc.deadPaths)+len(names))
				rr.Modes, rr.Owners, rr.Rescan, rr.Pending = r.Modes, r.Owners, r.Rescan, r.Pending
				r = rr
				// The sender announces the replaying run again
				// (Sender.announceWhileRunning).
				if err := r.Incoming(ctx, "n1", "", "run-2", names, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			resp := r.Replay(ctx, "n1", peer.ReplayRequest{Journal: "j1", Run: "run-2", Live: tc.live, Renames: []peer.Rename{rn}})
			res := resp.Results
			var verify []string
			for _, p := range resp.Verify {
				verify = append(verify, string(p))
			}
			slices.Sort(verify)
			if !slices.Equal(verify, tc.verify) {
				t.Errorf("the answer has the sender verify %q, want %q", verify, tc.verify)
			}
			if res[0].Applied != tc.applied {
				t.Fatalf("rename %+v: %+v; want applied %v", rn, res[0], tc.applied)
			}
			if err := r.Received(ctx, "n1", "run-2", nil, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got := len(rescanned) > 0; got != tc.rescanned {
				t.Errorf("compared again as this member's own: %q; want %v", rescanned, tc.rescanned)
			}
			if err := r.Index.View(func(tx *index.Tx) error {
				for _, p := range tc.at {
					if same, err := tx.Unchanged(r.RootFD, p, false); err != nil || !same {
						t.Errorf("the index does not hold %s as it is (%v): the sender's object, renamed", p, err)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if tc.restart {
				// The dead run gave its path up to the replay; the
				// replaying run, restored, keeps its names, as a
				// restored run keeps what no confirmation recorded,
				// until its sender is quiet and asks for a compare
				// (docs/design.md).
				restarted(t, r, len(names))
				r.SenderQuiet("n1")
			}
			for _, p := range tc.deadPaths {
				if held := r.Held.Has(p); held != (p == tc.stillHeld) {
					t.Errorf("%s held after the replay's run was confirmed: %v; want %v", p, held, p == tc.stillHeld)
				}
			}
			// What the dead run keeps is what a restart holds again.
			want := 0
			if tc.stillHeld != "" {
				want = 1
			}
			restarted(t, r, want)
		})
	}
}

// writeAt returns a put for TestReceiver_ReplayTakesWhatItsSendersDeadRunsLeft
// that writes content at p, as a run's rsync does, and the sender's rename
// of p to c, with the size and mtime written.
func writeAt(p, content string) func(t *testing.T, root string) peer.Rename {
	return func(t *testing.T, root string) peer.Rename {
		writeTree(t, root, p, content)
		st, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return peer.Rename{Old: []byte(p), New: []byte("c"), Size: st.Size(), MtimeNs: st.ModTime().UnixNano(), AsHeld: true, MakeParents: true}
	}
}

// TestReceiver_ReplayedRemovalOfANewerVersion: a replayed removal of a name
// this member has a change of its own pending at or below is refused, as
// before, and the answer says whether what the name holds here is a
// version the remover never had (peer.RenameResult.Newer), so that the
// remover's path entry does not delete it either: a file or symlink that is
// not what the remover removed (its size and mtime), or a directory with a
// pending file below it. What the remover removed was this member's own
// version where it is the same (received there, still pending here for
// another member), and a name gone here keeps nothing. With nothing
// pending, a file written here since the index recorded it (a write not
// journaled yet: still open, or just closed) that is not what the remover
// removed is kept too, unless a peer's run is putting it here; a
// directory goes whole, as before.
func TestReceiver_ReplayedRemovalOfANewerVersion(t *testing.T) {
	const mtime = int64(1_700_000_000_123_456_789)
	for _, tc := range []struct {
		name      string
		tree      map[string]string // written here ("/" a directory, "->x" a symlink to x)
		pending   []string          // for the remover (and so for any member)
		others    []string          // for another member alone
		remove    peer.Rename       // Old and what the remover removed
		applied   bool
		newer     bool
		after     map[string]bool   // whether each path is here after the replay
		since     map[string]string // written after the index recorded the tree, 5 s later
		heldByRun []string          // held by a peer's run other than the replay's
		excluded  string            // a suffix excluded here
	}{
		{name: "a file changed here, the removed state not known",
			tree: map[string]string{"f": "v2"}, pending: []string{"f"},
			remove: peer.Rename{Old: []byte("f")}, newer: true},
		{name: "a file changed here, another size than the one removed",
			tree: map[string]string{"f": "v2 longer"}, pending: []string{"f"},
			remove: peer.Rename{Old: []byte("f"), Size: 2, MtimeNs: mtime}, newer: true},
		{name: "a file changed here, another mtime than the one removed",
			tree: map[string]string{"f": "v2"}, pending: []string{"f"},
			remove: peer.Rename{Old: []byte("f"), Size: 2, MtimeNs: mtime - 1}, newer: true},
		{name: "the file removed is the one here, pending for another member",
			tree: map[string]string{"f": "v2"}, pending: []string{"f"},
			remove: peer.Rename{Old: []byte("f"), Size: 2, MtimeNs: mtime}, newer: false},
		{name: "a file changed here, pending for another member alone",
			tree: map[string]string{"f": "v2"}, others: []string{"f"},
			remove: peer.Rename{Old: []byte("f"), Size: 9, MtimeNs: mtime}, newer: false},
		{name: "a directory removed, a file here",
			tree: map[string]string{"f": "v2"}, pending: []string{"f"},
			remove: peer.Rename{Old: []byte("f"), Dir: true}, newer: true},
		{name: "a symlink changed here",
			tree: map[string]string{"l": "->elsewhere"}, pending: []string{"l"},
			remove: peer.Rename{Old: []byte("l"), Size: 3, MtimeNs: mtime}, newer: true},
		{name: "the symlink removed is the one here",
			tree: map[string]string{"l": "->abc"}, pending: []string{"l"},
			remove: peer.Rename{Old: []byte("l"), Size: 3, MtimeNs: mtime}, newer: false},
		{name: "a directory with a file changed below it keeps that file alone",
			tree: map[string]string{"d/e/f": "v2", "d/g": "old", "d/h/i": "old"}, pending: []string{"d/e/f"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, newer: true,
			after: map[string]bool{"d/e/f": true, "d/g": false, "d/h": false}},
		{name: "a directory below which only a removal is pending",
			tree: map[string]string{"d/g": "old"}, pending: []string{"d/gone"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, newer: false},
		{name: "a directory below which only directories are pending",
			tree: map[string]string{"d/e": "/", "d/g": "old"}, pending: []string{"d/e"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, newer: false},
		{name: "a name gone here, its removal pending",
			tree: map[string]string{"other": "x"}, pending: []string{"f"},
			remove: peer.Rename{Old: []byte("f"), Size: 2, MtimeNs: mtime}, newer: false},
		{name: "nothing pending: removed",
			tree:   map[string]string{"f": "v2"},
			remove: peer.Rename{Old: []byte("f"), Size: 9, MtimeNs: mtime}, applied: true},
		{name: "nothing pending, written here since it was recorded: kept",
			tree: map[string]string{"f": "v1"}, since: map[string]string{"f": "v2 being written"},
			remove: peer.Rename{Old: []byte("f"), Size: 2, MtimeNs: mtime}, newer: true},
		{name: "nothing pending, written since, but what the remover removed: removed",
			tree: map[string]string{"f": "v1"}, since: map[string]string{"f": "v2"},
			remove: peer.Rename{Old: []byte("f"), Size: 2, MtimeNs: mtime + 5e9}, applied: true},
		{name: "nothing pending, written since, the removed state not known (an older sender): removed",
			tree: map[string]string{"f": "v1"}, since: map[string]string{"f": "v2 being written"},
			remove: peer.Rename{Old: []byte("f")}, applied: true},
		{name: "nothing pending, written since, but another run of a peer's holds it: removed",
			tree: map[string]string{"f": "v1"}, since: map[string]string{"f": "v2 arriving"}, heldByRun: []string{"f"},
			remove: peer.Rename{Old: []byte("f"), Size: 2, MtimeNs: mtime}, applied: true},
		{name: "nothing pending, a directory with a file written below it since keeps that file alone",
			tree:   map[string]string{"d/e/f": "v1", "d/g": "old", "d/h/i": "old", "d/h/j": "/"},
			since:  map[string]string{"d/e/f": "v2 being written"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, newer: true,
			after: map[string]bool{"d/e/f": true, "d/g": false, "d/h": false}},
		{name: "nothing pending, a directory with a new file written below it since keeps that file alone",
			tree:   map[string]string{"d/g": "old", "d/e": "/"},
			since:  map[string]string{"d/e/new": "being written"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, newer: true,
			after: map[string]bool{"d/e/new": true, "d/g": false}},
		{name: "nothing pending, a directory with a file below it that another run of a peer's holds: removed whole",
			tree:  map[string]string{"d/e/f": "v1", "d/g": "old"},
			since: map[string]string{"d/e/f": "v2 arriving"}, heldByRun: []string{"d/e/f"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, applied: true,
			after: map[string]bool{"d": false}},
		{name: "nothing pending, a directory with an excluded file below it: removed whole",
			tree:  map[string]string{"d/g": "old"},
			since: map[string]string{"d/cache.local": "never recorded"}, excluded: ".local",
			remove: peer.Rename{Old: []byte("d"), Dir: true}, applied: true,
			after: map[string]bool{"d": false}},
		{name: "nothing pending, a directory with a directory made below it since: removed whole",
			tree:   map[string]string{"d/g": "old"},
			since:  map[string]string{"d/new/deeper": "/"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, applied: true,
			after: map[string]bool{"d": false}},
		{name: "nothing pending, a directory all as recorded: removed whole",
			tree:   map[string]string{"d/e/f": "v1", "d/g": "old"},
			remove: peer.Rename{Old: []byte("d"), Dir: true}, applied: true,
			after: map[string]bool{"d": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, root, _, _ := newReceiver(t)
			for p, content := range tc.tree {
				if target, ok := strings.CutPrefix(content, "->"); ok {
					writeTree(t, root, filepath.Dir(p), "/")
					if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
						t.Fatal(err)
					}
				} else {
					writeTree(t, root, p, content)
				}
				ts := unix.NsecToTimespec(mtime)
				if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, p), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Index.Update(func(tx *index.Tx) error {
				for p := range tc.tree {
					for d := p; d != "."; d = filepath.Dir(d) {
						if err := tx.Record(r.RootFD, d); err != nil {
							return err
						}
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for p, content := range tc.since {
				writeTree(t, root, p, content)
				ts := unix.NsecToTimespec(mtime + 5e9)
				if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, p), []unix.Timespec{ts, ts}, 0); err != nil {
					t.Fatal(err)
				}
			}
			if len(tc.heldByRun) > 0 {
				r.Held.Add(tc.heldByRun...)
			}
			if tc.excluded != "" {
				r.Exclude = func(rel string, _ bool) bool { return strings.HasSuffix(rel, tc.excluded) }
			}
			atOrBelow := func(pending []string, rel string) []string {
				var out []string
				for _, p := range pending {
					if p == rel || strings.HasPrefix(p, rel+"/") {
						out = append(out, p)
					}
				}
				return out
			}
			r.Pending = func(rel string) bool { return len(atOrBelow(slices.Concat(tc.pending, tc.others), rel)) > 0 }
			r.PendingFor = func(peer, rel string, max int) []string {
				if peer != "remover" {
					t.Errorf("asked what is pending for %q, not the remover", peer)
				}
				out := atOrBelow(tc.pending, rel)
				return out[:min(max, len(out))]
			}
			rn := tc.remove
			rn.Remove, rn.Seq = true, 1
			res := r.Replay(context.Background(), "remover", peer.ReplayRequest{Journal: "j1", Renames: []peer.Rename{rn}}).Results
			if len(res) != 1 || res[0].Applied != tc.applied || res[0].Newer != tc.newer {
				t.Fatalf("replayed removal of %s: %+v; want applied %v, newer %v", rn.Old, res, tc.applied, tc.newer)
			}
			for p, want := range tc.after {
				if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
					t.Errorf("%s here after the replay: %v; want %v", p, err == nil, want)
				}
			}
			if _, ok := tc.tree[string(rn.Old)]; ok {
				_, err := os.Lstat(filepath.Join(root, string(rn.Old)))
				if gone := os.IsNotExist(err); gone != tc.applied {
					t.Errorf("%s gone here: %v (%v); want %v", rn.Old, gone, err, tc.applied)
				}
			}
		})
	}
}
