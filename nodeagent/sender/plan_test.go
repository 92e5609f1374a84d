package sender

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
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
	}
	b := plan(rootfd, entries)
	tests := []struct {
		name string
		got  []journal.Entry
		want []string
	}{
		{"sends: what exists", b.sends, []string{"dir/file", "new-name"}},
		{"renames: asked of the peer first", b.renames, []string{"new-name"}},
		{"deletes: top-most removed paths only", b.deletes, []string{"gone", "gone-too"}},
		{"covered: below a deleted dir, the root, what leaves the root", b.covered, []string{".", "evil/secret", "gone/a", "gone/b/c"}},
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
