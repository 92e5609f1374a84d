package journal

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// TestJournal_PendingAt: a path has a pending change at or below it until
// every peer confirmed it; a sibling whose name shares a prefix does not.
func TestJournal_PendingAt(t *testing.T) {
	root := t.TempDir()
	f := open(t, root, filepath.Join(t.TempDir(), "db"), "p1", "p2")
	if err := os.MkdirAll(filepath.Join(root, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.j.Record(f.rootfd, []string{"p1", "p2"}, []change.Change{f.write("d/e/a", 3)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{".", true}, {"d", true}, {"d/e", true}, {"d/e/a", true}, {"d/e/a/x", false}, {"d/e/b", false}, {"d/e-x", false}, {"de", false}} {
		if got := f.j.PendingAt(tc.path); got != tc.want {
			t.Errorf("before the peers confirmed it: PendingAt(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	f.confirmAll("p1")
	if !f.j.PendingAt("d") {
		t.Error("confirmed by one peer of two: PendingAt(\"d\") = false, want true")
	}
	f.confirmAll("p2")
	for _, p := range []string{".", "d", "d/e/a"} {
		if f.j.PendingAt(p) {
			t.Errorf("confirmed by every peer: PendingAt(%q) = true, want false", p)
		}
	}
}

// TestJournal_PendingBelow: the paths below a directory that an entry is
// pending at, for any peer, each once, until every peer confirmed it; not
// the directory itself, nor a sibling whose name shares a prefix.
func TestJournal_PendingBelow(t *testing.T) {
	root := t.TempDir()
	f := open(t, root, filepath.Join(t.TempDir(), "db"), "p1", "p2")
	for _, d := range []string{"d/e", "d-x"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.j.Record(f.rootfd, []string{"p1", "p2"}, []change.Change{f.write("d/e/a", 3), f.write("d/b", 1), f.write("d-x/c", 1)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		want []string
	}{{"d", []string{"d/b", "d/e/a"}}, {"d/e", []string{"d/e/a"}}, {"d/e/a", nil}, {"de", nil}, {".", nil}} {
		got := f.j.PendingBelow(tc.dir, 100)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("PendingBelow(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
	if got := f.j.PendingBelow("d", 1); len(got) != 1 {
		t.Errorf("PendingBelow(\"d\", 1) = %q, want one path", got)
	}
	f.confirmAll("p1")
	if got := f.j.PendingBelow("d", 100); len(got) != 2 {
		t.Errorf("confirmed by one peer of two: PendingBelow(\"d\") = %q, want both", got)
	}
	f.confirmAll("p2")
	if got := f.j.PendingBelow("d", 100); got != nil {
		t.Errorf("confirmed by every peer: PendingBelow(\"d\") = %q, want none", got)
	}
}

// TestJournal_RemovalLogsWhatWasRemoved: the rename log's record of a
// removal says what the index held of the removed path (removalOf): a
// file's or symlink's size and mtime, or that it was a directory. A peer
// with a change of its own pending there compares them with what it holds
// (receiver: peer.RenameResult.Newer).
func TestJournal_RemovalLogsWhatWasRemoved(t *testing.T) {
	root := t.TempDir()
	f := open(t, root, filepath.Join(t.TempDir(), "db"), "p1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(root, "d"), 0o755))
	must(os.Symlink("target", filepath.Join(root, "l")))
	made := []change.Change{f.write("file", 5),
		{Path: "d", Op: change.Create, Finished: true},
		{Path: "l", Op: change.Create, Finished: true}}
	must(f.j.Record(f.rootfd, []string{"p1"}, made))
	var st [2]unix.Stat_t
	must(unix.Lstat(filepath.Join(root, "file"), &st[0]))
	must(unix.Lstat(filepath.Join(root, "l"), &st[1]))
	f.confirmAll("p1")
	for _, p := range []string{"file", "l"} {
		must(os.Remove(filepath.Join(root, p)))
	}
	must(os.Remove(filepath.Join(root, "d")))
	must(f.j.Record(f.rootfd, []string{"p1"}, []change.Change{
		{Path: "file", Op: change.Remove, Finished: true},
		{Path: "d", Op: change.Rmdir, Finished: true},
		{Path: "l", Op: change.Remove, Finished: true},
		{Path: "never", Op: change.Remove, Finished: true}, // not held: nothing logged
	}))
	log, err := f.j.RenameLog("p1", 10)
	must(err)
	for i := range log {
		log[i].Seq = 0
	}
	want := []LoggedRename{
		{Old: "file", Size: 5, MtimeNs: st[0].Mtim.Nano()},
		{Old: "d", Dir: true},
		{Old: "l", Size: int64(len("target")), MtimeNs: st[1].Mtim.Nano()},
	}
	if !slices.Equal(log, want) {
		t.Errorf("rename log after the removals:\n%+v\nwant\n%+v", log, want)
	}
}

// TestJournal_PendingFor: the paths at or below a name that an entry is
// pending at for one peer, the name first, at most max; a peer that
// confirmed them has none, and an unknown peer none either.
func TestJournal_PendingFor(t *testing.T) {
	root := t.TempDir()
	f := open(t, root, filepath.Join(t.TempDir(), "db"), "p1", "p2")
	if err := os.MkdirAll(filepath.Join(root, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.j.Record(f.rootfd, []string{"p1", "p2"}, []change.Change{f.write("d/e/a", 3), f.write("d/b", 1), f.write("d-x", 1)}); err != nil {
		t.Fatal(err)
	}
	f.confirmAll("p1")
	for _, tc := range []struct {
		peer, path string
		max        int
		want       []string
	}{
		{"p2", "d", 10, []string{"d/b", "d/e/a"}},
		{"p2", "d", 1, []string{"d/b"}},
		{"p2", "d/e/a", 10, []string{"d/e/a"}},
		{"p2", "d/e/a/x", 10, nil},
		{"p2", "d/c", 10, nil},
		{"p2", ".", 10, nil}, // the root is never removed
		{"p1", "d", 10, nil}, // confirmed
		{"p3", "d", 10, nil}, // not a peer
	} {
		got := f.j.PendingFor(tc.peer, tc.path, tc.max)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("PendingFor(%s, %q, %d) = %q, want %q", tc.peer, tc.path, tc.max, got, tc.want)
		}
	}
}
