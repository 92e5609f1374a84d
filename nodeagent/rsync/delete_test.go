package rsync

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDelete_FilesAndNonEmptyDirectoriesConfirmedPerPath(t *testing.T) {
	d := startDaemon(t, 10)
	root := t.TempDir()
	names := hostileNames()
	for _, n := range names {
		write(t, d.dir, n, []byte("on the peer"))
	}
	write(t, d.dir, "tree/a/b/c", []byte("deep"))
	write(t, d.dir, "tree/#x/;y", []byte("deep"))
	must(t, os.Symlink("/etc", d.path("a link")))
	write(t, root, "kept", []byte("exists here"))
	write(t, d.dir, "kept", []byte("exists here"))

	// Callers list the top-most removed directory only.
	var top []string
	for _, n := range names {
		first, _, _ := strings.Cut(n, "/")
		if !slices.Contains(top, first) {
			top = append(top, first)
		}
	}
	paths := append([]string{"tree", "a link", "never-there", "kept"}, top...)
	res, err := Delete(context.Background(), root, paths, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("delete: %v\n%s", err, res.Stderr)
	}
	want := map[string]Outcome{"tree": Deleted, "a link": Deleted, "never-there": Absent, "kept": Present}
	for _, n := range top {
		want[n] = Deleted
	}
	wantOutcomes(t, res, want)
	for _, p := range append([]string{"tree", "a link"}, names...) {
		if _, err := os.Lstat(d.path(p)); err == nil {
			t.Errorf("%q is still on the peer", p)
		}
	}
	if _, err := os.Lstat(d.path("kept")); err != nil {
		t.Errorf("kept was deleted: %v", err)
	}
	if _, err := os.Lstat("/etc/passwd"); err != nil {
		t.Errorf("the link's target went: %v", err)
	}
	if res.Other < 4 { // the contents of tree/
		t.Errorf("other %d: the contents of tree/ were itemized as deleted", res.Other)
	}
}

// TestDelete_ParentGoneHereToo pins rsync's exit 24 when a deleted path's
// parent is missing on the sending side: the deletion still happens.
func TestDelete_ParentGoneHereToo(t *testing.T) {
	d := startDaemon(t, 11)
	root := t.TempDir()
	write(t, d.dir, "p/q/r", []byte("x"))
	write(t, d.dir, "p/keep", []byte("y"))
	res, err := Delete(context.Background(), root, []string{"p/q"}, d.target(), fastOptions())
	if code := codeOf(t, err); code != 24 {
		t.Fatalf("exit %d (%v), want 24: rsync's behaviour changed, revisit the doc\n%s", code, err, res.Stderr)
	}
	if res.Class != Partial {
		t.Errorf("class %v, want partial", res.Class)
	}
	wantOutcomes(t, res, map[string]Outcome{"p/q": Deleted})
	if _, err := os.Lstat(d.path("p/q")); err == nil {
		t.Error("p/q is still on the peer")
	}
	if _, err := os.Lstat(d.path("p/keep")); err != nil {
		t.Errorf("p/keep went: %v", err)
	}
}

// TestDelete_MadeParentsReported: a deleted path whose parents the peer
// lacks (it renamed them away) and this member still has. rsync
// --relative makes them there to reach the path, says so ("cd+++++++++"),
// and the result names them (Made), for the peer to remove again.
func TestDelete_MadeParentsReported(t *testing.T) {
	d := startDaemon(t, 61)
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "a/b"), 0o755))
	write(t, d.dir, "z/b/gone", []byte("renamed there"))
	res, err := Delete(context.Background(), root, []string{"a/b/gone"}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("delete: %v\n%s", err, res.Stderr)
	}
	if want := []string{"a", "a/b"}; !slices.Equal(res.Made, want) || !slices.Equal(res.Implied, want) {
		t.Errorf("made %q, implied %q; want both %q", res.Made, res.Implied, want)
	}
	if fi, err := os.Lstat(d.path("a/b")); err != nil || !fi.IsDir() {
		t.Errorf("the test's premise: rsync made a/b on the peer (%v)", err)
	}
}

// TestDelete_ADirectoryListedWithAPathBelowIt: a directory and a path
// below it, both gone here, listed in one delete. rsync reads the
// directory as the missing parent of the other (implied) and says it
// "vanished"; it still deletes it ("*deleting"), and that is its outcome.
// Read as vanished, the deletion went unconfirmed, and the peer, not told,
// took its disappearance for a deletion of its own (the stress test).
func TestDelete_ADirectoryListedWithAPathBelowIt(t *testing.T) {
	d := startDaemon(t, 60)
	root := t.TempDir()
	write(t, d.dir, "m/x", []byte("x"))
	write(t, d.dir, "m/y", []byte("y"))
	res, err := Delete(context.Background(), root, []string{"m", "m/x"}, d.target(), fastOptions())
	if code := codeOf(t, err); code != 24 {
		t.Fatalf("exit %d (%v), want 24: rsync's behaviour changed, revisit the doc\n%s", code, err, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "vanished") {
		t.Fatalf("the test's premise: rsync says the listed directory vanished; stderr %q", res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"m": Deleted})
	if _, err := os.Lstat(d.path("m")); err == nil {
		t.Error("m is still on the peer")
	}
}

func TestDelete_RefusesPathsThroughSymlinksAndTheRoot(t *testing.T) {
	d := startDaemon(t, 12)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	write(t, root, "dir/file", []byte("x"))
	must(t, os.Symlink(filepath.Join(base, "outside"), filepath.Join(root, "evil")))
	must(t, os.Symlink("dir", filepath.Join(root, "alias")))
	write(t, d.dir, "evil/gone", []byte("peer"))
	write(t, d.dir, "dir/file/under-a-file", []byte("peer"))
	// rsync would cut a listed name this long at MAXPATHLEN-1 bytes,
	// silently, and delete what the cut name names.
	long := strings.Repeat("d/", unix.PathMax/2) + "x"
	res, err := Delete(context.Background(), root, []string{"evil/gone", "alias/gone", ".", "../x", "dir/file/under-a-file", long}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("delete: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{
		"evil/gone": Dropped, "alias/gone": Dropped, ".": Dropped, "../x": Dropped,
		"dir/file/under-a-file": Present, long: Dropped,
	})
	if res.Args != nil {
		t.Errorf("nothing to list, yet rsync ran: %q", res.Args)
	}
	if _, err := os.Lstat(d.path("evil/gone")); err != nil {
		t.Errorf("evil/gone went: %v", err)
	}
}
