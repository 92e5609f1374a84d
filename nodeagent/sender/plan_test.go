package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

func TestPlan(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "dir"), 0o755))
	must(os.WriteFile(filepath.Join(root, "dir", "file"), []byte("12345"), 0o644))
	must(os.WriteFile(filepath.Join(root, "new-name"), []byte("abc"), 0o644))
	must(os.Symlink(outside, filepath.Join(root, "evil")))
	must(os.WriteFile(filepath.Join(root, "was-a-dir"), []byte("now a file"), 0o644))
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(rootfd)

	entries := []journal.Entry{
		{Path: "dir/file", Op: change.Write},
		{Path: "new-name", Op: change.Rename, OldPath: "old-name"},
		{Path: "gone", Op: change.Rmdir},
		{Path: "gone/a", Op: change.Remove},
		{Path: "gone/b/c", Op: change.Remove},
		{Path: "gone-too", Op: change.Remove},
		{Path: "evil/secret", Op: change.Write},
		{Path: ".", Op: change.Attrib},
		{Path: "was-a-dir/a", Op: change.Remove, Seq: 7},
		{Path: "was-a-dir/b/c", Op: change.Remove, Seq: 8},
		{Path: "renamed-then-removed", Op: change.Rename | change.Remove, OldPath: "its-old-name"},
		{Path: "renamed-then-removed-too", Op: change.Rename | change.Remove, OldPath: "new-name"}, // the old name exists again
		{Path: "renamed-from-a-busy-path", Op: change.Rename, OldPath: "busy"},
	}
	b := plan(rootfd, entries, nil, func(p string) bool { return p == "busy" }, nil, nil)
	tests := []struct {
		name string
		got  []journal.Entry
		want []string
	}{
		{"sends: what exists", b.sends, []string{"dir/file", "new-name"}},
		{"under a file: removed with the peer's directory when the file replaces it", b.underFile, []string{"was-a-dir/a", "was-a-dir/b/c"}},
		{"renames: asked of the peer first", b.renames, []string{"new-name"}},
		{"deletes: top-most removed paths only, and the old names of renamed paths gone", b.deletes,
			[]string{"gone", "gone-too", "its-old-name", "renamed-then-removed", "renamed-then-removed-too"}},
		{"old names: confirmed once deleted", b.oldNames, []string{"renamed-then-removed"}},
		{"waiting: an old name in flight in another run", b.waiting, []string{"renamed-from-a-busy-path"}},
		{"covered: below a deleted dir", b.covered, []string{"gone/a", "gone/b/c"}},
		{"skipped: the root, what leaves the root", b.skipped, []string{".", "evil/secret"}},
	}
	for _, tc := range tests {
		got := pathsOf(tc.got)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if b.bytes != 8 {
		t.Errorf("bytes %d, want 8", b.bytes)
	}
	for _, e := range b.deletes {
		if e.Path == "its-old-name" && e.Seq != 0 {
			t.Errorf("an old name is deleted as sequence %d; want 0, which confirms no journal entry", e.Seq)
		}
	}
	for _, p := range []string{"was-a-dir/a", "was-a-dir/b/c"} {
		if got := b.fileAbove[p]; got != "was-a-dir" {
			t.Errorf("file above %q: %q, want was-a-dir", p, got)
		}
	}
}

// TestBatch_large pins what makes a run a large one (its lane is a long one
// at once, and it keeps partial files): a file of 16 MiB or more, never
// many smaller ones that add up to as much.
// TestPlan_aDeletionBelowARenamesOldNameGoesFirst: rm d/x; mv d e in one
// batch: the rename waits for the next run, and this one deletes d/x (on
// the peer, still below d); asked first, the rename moved d/x to e/x on
// the peer, and the deletion found nothing. e/y, changed after the rename
// below its new name, waits with it. A rename with no deletion below its
// old name is asked for as before.
func TestPlan_aDeletionBelowARenamesOldNameGoesFirst(t *testing.T) {
	rootfd := rootWithFiles(t, "e/y", "g/z")
	entries := []journal.Entry{
		{Path: "d/x", Op: change.Remove, Seq: 1},
		{Path: "e", Op: change.Rename, OldPath: "d", Seq: 2},
		{Path: "e/y", Op: change.Create, Seq: 3},
		{Path: "g", Op: change.Rename, OldPath: "f", Seq: 4},
		{Path: "dd", Op: change.Remove, Seq: 5}, // not below d: "d/" is the prefix
	}
	b := plan(rootfd, entries, nil, nil, nil, nil)
	for _, tc := range []struct {
		name string
		got  []journal.Entry
		want []string
	}{
		{"renames", b.renames, []string{"g"}},
		{"waiting", b.waiting, []string{"e", "e/y"}},
		{"deletes", b.deletes, []string{"d/x", "dd"}},
		{"sends", b.sends, []string{"g"}},
	} {
		got := pathsOf(tc.got)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPlan_aRenameWaitingForALaterOneThatWaitsForItGoes: c/d -> a/b/m12
// (both names gone here, c now a file) waits for the later rename c ->
// a/b/m12/f4, which moves the peer's c, and c/d with it, first
// (oldDirsRenamedAfter). That later rename's new name is gone here too,
// below a/b/m12, so it waits for the earlier rename (holdBack). Both
// waited for good, planned again every waitAgain (RANDOM_OPS_LIVE seed
// 59, 10 paths pending after 20 s). The earlier rename now goes, and the
// later one with it: neither is asked of the peer (their new names are
// gone), and the file c replaces the peer's directory c.
func TestPlan_aRenameWaitingForALaterOneThatWaitsForItGoes(t *testing.T) {
	rootfd := rootWithFiles(t, "c")
	entries := []journal.Entry{
		{Path: "a/b/m12", Op: change.Rename, OldPath: "c/d", Seq: 16},
		{Path: "a/b/m12/f4", Op: change.Rename | change.Remove, OldPath: "c", Seq: 48},
		{Path: "c", Op: change.Create | change.Write, Seq: 49},
	}
	b := plan(rootfd, entries, nil, nil, nil, nil)
	for _, tc := range []struct {
		name string
		got  []journal.Entry
		want []string
	}{
		{"waiting", b.waiting, nil},
		{"sends", b.sends, []string{"c"}},
		// The new names, gone: c/d, below the file c, goes with the
		// peer's directory that the file replaces (--force).
		{"deletes", b.deletes, []string{"a/b/m12"}},
		{"covered", b.covered, []string{"a/b/m12/f4"}},
	} {
		got := pathsOf(tc.got)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPlan_belowAWaitingRenamesNewNameWaits: mv d e; rm e/x, with d in
// flight to the peer in another run: the rename waits, and so does the
// deletion of e/x (the peer holds e/x only once it applies the rename,
// so deleted first, it found nothing there and e/x stayed); so does a
// send below e. What is not below e goes now.
func TestPlan_belowAWaitingRenamesNewNameWaits(t *testing.T) {
	rootfd := rootWithFiles(t, "e/y", "ee", "g", "h", "m", "d/k/z")
	entries := []journal.Entry{
		{Path: "e", Op: change.Rename, OldPath: "d", Seq: 1},
		{Path: "e/x", Op: change.Remove, Seq: 2},
		{Path: "e/y", Op: change.Create, Seq: 3},
		{Path: "ee", Op: change.Create, Seq: 4}, // not below e: "e/" is the prefix
		{Path: "gone", Op: change.Remove, Seq: 5},
		{Path: "g", Op: change.Rename, OldPath: "e/f", Seq: 6},  // out of e
		{Path: "h", Op: change.Rename, OldPath: "ee/f", Seq: 7}, // not out of e
		{Path: "m", Op: change.Rename, OldPath: "g/n", Seq: 8},  // out of g, which waits if e does
	}
	renameOfD := journal.Entry{Path: "e", Op: change.Rename, OldPath: "d", Seq: 1}
	for _, tc := range []struct {
		name        string
		entries     []journal.Entry
		behind      []journal.Entry
		busy        string
		wantWaiting []string
		wantDeletes []string
		wantSends   []string
		wantRenames []string
	}{
		{
			name: "old name busy", entries: entries, busy: "d",
			wantWaiting: []string{"e", "e/x", "e/y", "g", "m"}, wantDeletes: []string{"gone"},
			wantSends: []string{"ee", "h"}, wantRenames: []string{"h"},
		},
		{
			name: "nothing busy", entries: entries,
			wantDeletes: []string{"e/x", "gone"},
			wantSends:   []string{"e", "e/y", "ee", "g", "h", "m"}, wantRenames: []string{"e", "g", "h", "m"},
		},
		{
			// mv d e; mkdir d: sent first, d would go with the peer's
			// rename. A rename out of the old name would move the peer's
			// d/s, the renamed tree's.
			name: "the old name made again", busy: "d",
			entries: []journal.Entry{renameOfD,
				{Path: "d", Op: change.Create, Seq: 2},
				{Path: "d/k", Op: change.Create, Seq: 3},
				{Path: "ee", Op: change.Create, Seq: 4},
				{Path: "d/q", Op: change.Remove, Seq: 5}, // the new d's: deleted first, the peer's d/q would go
				{Path: "h", Op: change.Rename, OldPath: "d/s", Seq: 6},
			},
			wantWaiting: []string{"d", "d/k", "d/q", "e", "h"}, wantSends: []string{"ee"},
		},
		{
			name: "a rename onto the old name", busy: "d",
			entries:     []journal.Entry{renameOfD, {Path: "d", Op: change.Rename, OldPath: "q", Seq: 2}},
			wantWaiting: []string{"d", "e"},
		},
		{
			// The rename is behind the batch in the journal's order:
			// d/k was pending before it, and changed after it.
			name: "a rename behind the batch", behind: []journal.Entry{renameOfD},
			entries:     []journal.Entry{{Path: "d/k", Op: change.Create, Seq: 5}, {Path: "ee", Op: change.Create, Seq: 6}},
			wantWaiting: []string{"d/k"}, wantSends: []string{"ee"},
		},
		{
			// mv d e; mkdir -p d/f; mv d/f gone; rm gone: the deletion
			// of d/f (of Seq 0) would remove the renamed tree's on the
			// peer.
			name: "a rename out of the old name, gone again", busy: "d",
			entries:     []journal.Entry{renameOfD, {Path: "gone", Op: change.Rename, OldPath: "d/f", Seq: 2}},
			wantWaiting: []string{"e", "gone"},
		},
		{
			// mv d e; mv e/f gone; rm gone: the deletion of e/f (of
			// Seq 0) would find nothing before d's rename.
			name: "a rename out of the new name, gone again", busy: "d",
			entries:     []journal.Entry{renameOfD, {Path: "gone", Op: change.Rename, OldPath: "e/f", Seq: 2}},
			wantWaiting: []string{"e", "gone"},
		},
		{
			// mv d/f g; mv g/h d (d made again): each is out of the
			// other's new name. Only the later one waits for the
			// earlier: never both for each other.
			name: "renames out of each other's new names, the earlier waiting", busy: "d/f",
			entries: []journal.Entry{
				{Path: "g", Op: change.Rename, OldPath: "d/f", Seq: 1},
				{Path: "d", Op: change.Rename, OldPath: "g/h", Seq: 2},
			},
			wantWaiting: []string{"d", "g"},
		},
		{
			name: "renames out of each other's new names, the later waiting", busy: "g/h",
			entries: []journal.Entry{
				{Path: "g", Op: change.Rename, OldPath: "d/f", Seq: 1},
				{Path: "d", Op: change.Rename, OldPath: "g/h", Seq: 2},
			},
			wantWaiting: []string{"d"}, wantSends: []string{"g"}, wantRenames: []string{"g"},
		},
		{
			// rm d/k/y; mv d e; mkdir d; mv e/f d/k, in one batch: e
			// waits for the deletion below its old name, which came
			// first; d/k waits for e. The deletion goes: it is not
			// d/k's (it came before that rename), and never waits for
			// what waits for it.
			name: "a deletion a rename waits for goes first",
			entries: []journal.Entry{
				{Path: "d/k/y", Op: change.Remove, Seq: 1},
				{Path: "e", Op: change.Rename, OldPath: "d", Seq: 2},
				{Path: "d/k", Op: change.Rename, OldPath: "e/f", Seq: 3},
			},
			wantWaiting: []string{"d/k", "e"}, wantDeletes: []string{"d/k/y"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := plan(rootfd, tc.entries, tc.behind, func(p string) bool { return p == tc.busy }, nil, nil)
			for _, got := range []struct {
				name string
				got  []journal.Entry
				want []string
			}{
				{"waiting", b.waiting, tc.wantWaiting},
				{"deletes", b.deletes, tc.wantDeletes},
				{"sends", b.sends, tc.wantSends},
				{"renames", b.renames, tc.wantRenames},
			} {
				paths := pathsOf(got.got)
				slices.Sort(paths)
				if !slices.Equal(paths, got.want) {
					t.Errorf("%s: %q, want %q", got.name, paths, got.want)
				}
			}
		})
	}
}

// rootWithFiles makes a root holding files (and their directories), and
// returns it open, closed when the test ends.
// TestPlan_aSwapsTreeFollowedThroughARenameNotInTheBatch: mv c/d c/t;
// mv x/e c/d; mv c/t x/e, with the last rename waiting (its old name in
// flight) or behind the batch. The first rename's new name is gone here,
// and its old name is a directory again: the peer, which never gets it,
// keeps the renamed tree there, whose names are read where the rename
// not in the batch put it (x/e) and deleted under the old name. Before,
// the tree was read only through the batch's own renames, nothing was
// deleted, and the peer's c/d kept a and b for good (the stress test).
func TestPlan_aSwapsTreeFollowedThroughARenameNotInTheBatch(t *testing.T) {
	rootfd := rootWithFiles(t, "c/d/d7/z", "x/e/a", "x/e/b")
	first := journal.Entry{Path: "c/t", OldPath: "c/d", Op: change.Rename, Seq: 1}
	last := journal.Entry{Path: "x/e", OldPath: "c/t", Op: change.Rename, Seq: 3}
	for _, tc := range []struct {
		name            string
		entries, behind []journal.Entry
		busy            string
	}{
		{"waiting", []journal.Entry{first, last}, nil, "c/t"},
		{"behind", []journal.Entry{first}, []journal.Entry{last}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := plan(rootfd, tc.entries, tc.behind, func(p string) bool { return p == tc.busy }, nil, nil)
			if got, want := pathsOf(b.deletes), []string{"c/d/a", "c/d/b", "c/t"}; !slices.Equal(got, want) {
				t.Errorf("deletes %q, want %q", got, want)
			}
		})
	}
}

func rootWithFiles(t *testing.T, files ...string) int {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte("y"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(rootfd) })
	return rootfd
}

func TestBatch_large(t *testing.T) {
	root := t.TempDir()
	sizes := map[string]int64{"small": 4 << 10, "large": largeFileThreshold}
	for i := range 20 {
		sizes[fmt.Sprintf("mib%02d", i)] = 1 << 20
	}
	for name, size := range sizes {
		f, err := os.Create(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil { // sparse: the size is what counts
			t.Fatal(err)
		}
		f.Close()
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	twentyMiB := make([]journal.Entry, 20)
	for i := range twentyMiB {
		twentyMiB[i] = journal.Entry{Path: fmt.Sprintf("mib%02d", i), Op: change.Write}
	}
	tests := []struct {
		name    string
		entries []journal.Entry
		want    bool
	}{
		{"one small file", []journal.Entry{{Path: "small", Op: change.Write}}, false},
		{"20 x 1 MiB, 20 MiB in all", twentyMiB, false},
		{"one 16 MiB file", []journal.Entry{{Path: "large", Op: change.Write}}, true},
		{"a file that grew large after it was journaled, among small ones", []journal.Entry{{Path: "small", Op: change.Write}, {Path: "large", Op: change.Write, Size: 1}}, true},
		{"a deleted path", []journal.Entry{{Path: "gone", Op: change.Remove}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := plan(rootfd, tc.entries, nil, nil, nil, nil)
			if b.large() != tc.want {
				t.Errorf("large() = %v with %d bytes, want %v", b.large(), b.bytes, tc.want)
			}
		})
	}
}

// TestBatch_sentStates: what a run tells the peer it sent, for the peer to
// tell its own later changes from what it received: a regular file's size,
// mtime, mode and owner as planned, a symlink's target; nothing for a
// file that changed during the run, a directory or a path not planned.
func TestBatch_sentStates(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "file"), []byte("12345"), 0o640))
	must(os.WriteFile(filepath.Join(root, "changed"), []byte("x"), 0o644))
	must(os.Mkdir(filepath.Join(root, "dir"), 0o755))
	must(os.Symlink("file", filepath.Join(root, "link")))
	must(os.Symlink("file", filepath.Join(root, "swapped")))
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(rootfd)
	var entries []journal.Entry
	for _, p := range []string{"file", "changed", "dir", "link", "swapped"} {
		entries = append(entries, journal.Entry{Path: p, Op: change.Write})
	}
	b := plan(rootfd, entries, nil, nil, nil, nil)
	var st unix.Stat_t
	must(unix.Lstat(filepath.Join(root, "file"), &st))

	// swapped is replaced after the run's look (changedSince) and before
	// the confirmation: its new target was never sent.
	must(os.Symlink("dir", filepath.Join(root, "swapped.new")))
	must(os.Rename(filepath.Join(root, "swapped.new"), filepath.Join(root, "swapped")))

	paths := []string{"file", "changed", "dir", "link", "swapped", "not-planned"}
	got := b.sentStates(rootfd, paths, map[string]bool{"changed": true})
	want := []peer.FileState{
		{Regular: true, Size: 5, MtimeNs: st.Mtim.Nano(), Mode: unix.S_IFREG | 0o640, UID: st.Uid, GID: st.Gid},
		{}, {},
		{Symlink: true, Link: []byte("file")},
		{},
		{},
	}
	for i, p := range paths {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s: %+v, want %+v", p, got[i], want[i])
		}
	}
}

func TestInflight_Overlaps(t *testing.T) {
	f := newInflight()
	f.add("a/b")
	f.add("x")
	tests := []struct {
		path string
		want bool
	}{
		{"a/b", true},     // the same path
		{"a/b/c/d", true}, // below a path in flight
		{"a", true},       // above a path in flight
		{"a/bc", false},   // a sibling with a common prefix
		{"x", true},
		{"y", false},
	}
	for _, tc := range tests {
		if got := f.overlaps(tc.path); got != tc.want {
			t.Errorf("overlaps(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	f.remove("a/b")
	if f.overlaps("a") || f.overlaps("a/b/c") || f.len() != 1 {
		t.Errorf("after remove: overlaps(a)=%v overlaps(a/b/c)=%v len=%d", f.overlaps("a"), f.overlaps("a/b/c"), f.len())
	}
}

// TestFailures: each unsettled journal entry once, a rename listed among
// both the renames and the sends included; an old name's deletion
// (sequence 0, no entry of the journal) never.
func TestFailures(t *testing.T) {
	renamed := journal.Entry{Path: "new", OldPath: "old", Op: change.Rename, Seq: 3}
	entries := []journal.Entry{
		renamed,                      // b.renames
		{Path: "a", Seq: 1}, renamed, // b.sends
		{Path: "b", Seq: 2},
		{Path: "old"}, // the old name's deletion
	}
	done := []journal.Entry{{Path: "a", Seq: 1}}
	got := failures(entries, done, nil, map[string]string{"new": "refused"}, nil)
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Entry.Path+":"+f.Reason)
	}
	if want := []string{"new:refused", "b:"}; !slices.Equal(paths, want) {
		t.Errorf("failures %q, want %q", paths, want)
	}
	if got := failures(entries[:2], entries[1:2], []journal.Entry{renamed}, nil, nil); len(got) != 0 {
		t.Errorf("failures of a settled run: %+v", got)
	}
}

// TestChainRenames: renames that follow each other, the later's old name
// the earlier's new name and gone here, are asked as one from the first
// old name; the earlier ones are confirmed with it. Others are left as
// they are.
func TestChainRenames(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"f", "g", "y", "x"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	rn := func(from, to string, seq uint64) journal.Entry {
		return journal.Entry{Path: to, OldPath: from, Op: change.Rename, Seq: seq, Order: seq}
	}
	for _, tc := range []struct {
		name    string
		entries []journal.Entry
		want    []journal.Entry
		chained map[string][]journal.Entry
	}{
		{"one rename", []journal.Entry{rn("d", "f", 1)}, []journal.Entry{rn("d", "f", 1)}, nil},
		{"d -> e -> f", []journal.Entry{rn("d", "e", 1), rn("e", "f", 2)},
			[]journal.Entry{rn("d", "f", 2)}, map[string][]journal.Entry{"f": {rn("d", "e", 1)}}},
		{"d -> e -> h -> g, listed out of order", []journal.Entry{rn("e", "h", 2), rn("h", "g", 3), rn("d", "e", 1)},
			[]journal.Entry{rn("d", "g", 3)}, map[string][]journal.Entry{"g": {rn("e", "h", 2), rn("d", "e", 1)}}},
		{"the middle name exists here again", []journal.Entry{rn("a", "x", 1), rn("x", "y", 2)},
			[]journal.Entry{rn("a", "x", 1), rn("x", "y", 2)}, nil},
		{"a file written between", []journal.Entry{rn("d", "e", 1), {Path: "z", Op: change.Write, Seq: 2}, rn("e", "f", 3)},
			[]journal.Entry{{Path: "z", Op: change.Write, Seq: 2}, rn("d", "f", 3)}, map[string][]journal.Entry{"f": {rn("d", "e", 1)}}},
		// mv e f; mv d e; rm e: the later rename came first.
		{"the later rename first", []journal.Entry{rn("e", "f", 1), {Path: "e", OldPath: "d", Op: change.Rename, Seq: 2, Order: 2}},
			[]journal.Entry{rn("e", "f", 1), {Path: "e", OldPath: "d", Op: change.Rename, Seq: 2, Order: 2}}, nil},
		{"the earlier rename's name removed", []journal.Entry{{Path: "e", OldPath: "d", Op: change.Rename | change.Remove, Seq: 2, Order: 1}, rn("e", "f", 3)},
			[]journal.Entry{{Path: "e", OldPath: "d", Op: change.Rename | change.Remove, Seq: 2, Order: 1}, rn("e", "f", 3)}, nil},
		// mv c t; mv a c; mv t a (a swap), then c gone: the rename onto c
		// came after the one that left it, and is not joined to it (a
		// rename of a onto a, which the peer refused).
		{"a swap's renames", []journal.Entry{rn("c", "t", 1), rn("a", "c", 2), rn("t", "a", 3)},
			[]journal.Entry{rn("a", "c", 2), rn("c", "a", 3)}, map[string][]journal.Entry{"a": {rn("c", "t", 1)}}},
		{"two renames of one old name", []journal.Entry{rn("d", "e", 1), rn("e", "f", 2), rn("e", "g", 3)},
			[]journal.Entry{rn("d", "e", 1), rn("e", "f", 2), rn("e", "g", 3)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, chained, _ := chainRenames(rootfd, slices.Clone(tc.entries), nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("entries %+v, want %+v", got, tc.want)
			}
			if len(chained) != len(tc.chained) || len(chained) > 0 && !reflect.DeepEqual(chained, tc.chained) {
				t.Errorf("chained %+v, want %+v", chained, tc.chained)
			}
		})
	}
}

// TestBatch_oldNamesFirst: the deletions of old names that go before the
// renames a run asks are the batch's own (or covered by a directory's it
// deletes), below the old name of one, above
// none's, and touched by no rename made before the name was left.
func TestBatch_oldNamesFirst(t *testing.T) {
	rename := func(old, new string, order uint64) journal.Entry {
		return journal.Entry{Path: new, OldPath: old, Op: change.Rename, Seq: order, Order: order, RenameSeq: order}
	}
	left := rename("c/d", "c/tmp", 17) // its new name gone here: not asked
	for _, tc := range []struct {
		name    string
		renames []journal.Entry
		chained map[string][]journal.Entry
		deletes []journal.Entry
		covered []journal.Entry
		want    []string
	}{
		{
			name:    "a later rename of a directory above it",
			renames: []journal.Entry{rename("c", "a/b", 26)},
			deletes: []journal.Entry{{Path: "c/d"}},
			want:    []string{"c/d"},
		},
		{
			name:    "no rename above it",
			renames: []journal.Entry{rename("x", "a/b", 26)},
			deletes: []journal.Entry{{Path: "c/d"}},
		},
		{
			name:    "a rename above it made before it",
			renames: []journal.Entry{rename("c", "a/b", 12)},
			deletes: []journal.Entry{{Path: "c/d"}},
		},
		{
			name:    "a rename above it joined with one made before it",
			renames: []journal.Entry{rename("c", "a/b", 26)},
			chained: map[string][]journal.Entry{"a/b": {rename("c", "m", 12)}},
			deletes: []journal.Entry{{Path: "c/d"}},
		},
		{
			// Made before it, beside it: the peer holds the name as it
			// was left either way.
			name:    "an earlier rename beside it",
			renames: []journal.Entry{rename("a/b", "c/m12", 15), rename("c", "x", 26)},
			deletes: []journal.Entry{{Path: "c/d"}},
			want:    []string{"c/d"},
		},
		{
			name:    "an earlier rename into it",
			renames: []journal.Entry{rename("a/b", "c/d/m12", 15), rename("c", "x", 26)},
			deletes: []journal.Entry{{Path: "c/d"}},
		},
		{
			name:    "a rename out of it",
			renames: []journal.Entry{rename("c", "a/b", 26), rename("c/d/f", "z", 20)},
			deletes: []journal.Entry{{Path: "c/d"}},
		},
		{
			name:    "its deletion one of the journal's, not the batch's own",
			renames: []journal.Entry{rename("c", "a/b", 26)},
			deletes: []journal.Entry{{Path: "c/d", Seq: 18}},
		},
		{
			// Covered by a directory the batch deletes, which the rename
			// moves away first.
			name:    "its deletion covered by a directory's",
			renames: []journal.Entry{rename("c", "a/b", 26)},
			deletes: []journal.Entry{{Path: "c", Seq: 30}},
			covered: []journal.Entry{{Path: "c/d"}},
			want:    []string{"c/d"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := batch{renames: tc.renames, chained: tc.chained, deletes: tc.deletes, covered: tc.covered, oldNames: []journal.Entry{left}}
			if got := b.oldNamesFirst(); !slices.Equal(got, tc.want) {
				t.Errorf("oldNamesFirst() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTopMost: deletions below another's are covered by it, and of two of
// one path the one of the lower Seq is kept, whatever order they come in:
// an old name's deletion (sequence 0) over an entry's own, so that the
// batch places it as an old name's (oldNamesFirst, oldNamesMovedOn).
func TestTopMost(t *testing.T) {
	for _, tc := range []struct {
		name         string
		gone         []journal.Entry
		top, covered []journal.Entry
	}{
		{
			name:    "below a deleted directory",
			gone:    []journal.Entry{{Path: "d/x", Seq: 3}, {Path: "d", Seq: 5}, {Path: "d-b", Seq: 4}},
			top:     []journal.Entry{{Path: "d", Seq: 5}, {Path: "d-b", Seq: 4}},
			covered: []journal.Entry{{Path: "d/x", Seq: 3}},
		},
		{
			name:    "an old name's deletion after an entry's own of the same path",
			gone:    []journal.Entry{{Path: "p", Seq: 49}, {Path: "q", Seq: 50}, {Path: "p"}},
			top:     []journal.Entry{{Path: "p"}, {Path: "q", Seq: 50}},
			covered: []journal.Entry{{Path: "p", Seq: 49}},
		},
		{
			name:    "an old name's deletion before an entry's own of the same path",
			gone:    []journal.Entry{{Path: "p"}, {Path: "p", Seq: 49}},
			top:     []journal.Entry{{Path: "p"}},
			covered: []journal.Entry{{Path: "p", Seq: 49}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			same := func(a, b journal.Entry) bool { return a.Path == b.Path && a.Seq == b.Seq }
			top, covered := topMost(tc.gone)
			if !slices.EqualFunc(top, tc.top, same) || !slices.EqualFunc(covered, tc.covered, same) {
				t.Errorf("topMost() = %+v, %+v; want %+v, %+v", top, covered, tc.top, tc.covered)
			}
		})
	}
}
