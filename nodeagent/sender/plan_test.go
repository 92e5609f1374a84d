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
		{Path: "new-name", Op: change.Rename},
		{Path: "old-name", Op: change.Remove}, // a rename's old name: an entry of its own
		{Path: "gone", Op: change.Rmdir},
		{Path: "gone/a", Op: change.Remove},
		{Path: "gone/b/c", Op: change.Remove},
		{Path: "gone-too", Op: change.Remove},
		{Path: "evil/secret", Op: change.Write},
		{Path: ".", Op: change.Attrib},
		{Path: "was-a-dir/a", Op: change.Remove, Seq: 7},
		{Path: "was-a-dir/b/c", Op: change.Remove, Seq: 8},
		{Path: "renamed-then-removed", Op: change.Rename | change.Remove},
		{Path: "its-old-name", Op: change.Remove},
		{Path: "renamed-from-gone", Op: change.Rename},
		{Path: "gone-old", Op: change.Remove},
	}
	b := plan(rootfd, asPaths(entries))
	tests := []struct {
		name string
		got  []journal.Entry
		want []string
	}{
		{"sends: what exists", b.sends, []string{"dir/file", "new-name"}},
		{"under a file: removed with the peer's directory when the file replaces it", b.underFile, []string{"was-a-dir/a", "was-a-dir/b/c"}},
		{"deletes: top-most removed paths only", b.deletes,
			[]string{"gone", "gone-old", "gone-too", "its-old-name", "old-name", "renamed-from-gone", "renamed-then-removed"}},
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
	for _, p := range []string{"was-a-dir/a", "was-a-dir/b/c"} {
		if got := b.fileAbove[p]; got != "was-a-dir" {
			t.Errorf("file above %q: %q, want was-a-dir", p, got)
		}
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
			b := plan(rootfd, tc.entries)
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
	b := plan(rootfd, entries)
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
// both the renames and the sends included.
func TestFailures(t *testing.T) {
	renamed := journal.Entry{Path: "new", Op: change.Rename, Seq: 3}
	entries := []journal.Entry{
		renamed,                      // b.renames
		{Path: "a", Seq: 1}, renamed, // b.sends
		{Path: "b", Seq: 2},
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

// TestTopMost: deletions below another's are covered by it.
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

// TestBatch_SkewedBy: which changed paths can have parted rsync's file
// list (batch.skewedBy) and which cannot, on real files.
func TestBatch_SkewedBy(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"one", "two-a", "lone"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// two-a got another name after the run was planned (ln two-a two-b).
	if err := os.Link(filepath.Join(root, "two-a"), filepath.Join(root, "two-b")); err != nil {
		t.Fatal(err)
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	planned := batch{
		linked: []linkedFile{{path: "g/first", id: inode{1, 2}}},
		links:  []string{"g/second"},
	}
	for _, tc := range []struct {
		name    string
		changed []string
		want    string
	}{
		{"nothing changed", nil, ""},
		{"a file of one name", []string{"one"}, ""},
		{"gone since", []string{"lone-gone"}, ""},
		{"a planned group's file", []string{"one", "g/first"}, "g/first"},
		{"a planned group's other name", []string{"g/second"}, "g/second"},
		{"a file with other names now", []string{"one", "two-a"}, "two-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := make(map[string]bool)
			for _, p := range tc.changed {
				changed[p] = true
			}
			if got := planned.skewedBy(rootfd, changed); got != tc.want {
				t.Errorf("skewedBy(%q) = %q, want %q", tc.changed, got, tc.want)
			}
		})
	}
}
