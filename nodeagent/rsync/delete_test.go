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

// TestDelete_AParentSwappedWithAFileWhileListed: a delete of h/d/x while
// another process here swaps the directory h/d with a file, over and over.
// rsync reads each listed path's parents after the path itself (flist.c,
// send_implied_dirs): when it found x missing (h/d mid-swap) and then h/d
// a file, it sends h/d as that file, and the peer deletes its directory
// h/d with everything in it (--force), a file never listed included, and
// aborts the run or puts the file there. Each such run names h/d
// (Result.NotDirs, or Unmade for an abort) and what went with it
// (Removed), so that the sender tells the peer, which would take both for
// changes of its own.
func TestDelete_AParentSwappedWithAFileWhileListed(t *testing.T) {
	d := startDaemon(t, 62)
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "h/d"), 0o755))
	write(t, root, "h/f", []byte("a file"))
	ctx, cancel := context.WithCancel(context.Background())
	swapped := make(chan error, 1)
	go func() {
		h := filepath.Join(root, "h")
		for ctx.Err() == nil {
			for _, mv := range [][2]string{{"d", "t"}, {"f", "d"}, {"t", "f"}} {
				if err := os.Rename(filepath.Join(h, mv[0]), filepath.Join(h, mv[1])); err != nil {
					swapped <- err
					return
				}
			}
		}
		swapped <- nil
	}()
	defer func() {
		cancel()
		if err := <-swapped; err != nil {
			t.Errorf("swapping: %v", err)
		}
	}()
	const runs, enough = 1000, 3
	hits := 0
	for i := 0; i < runs && hits < enough; i++ {
		must(t, os.RemoveAll(d.path("h")))
		write(t, d.dir, "h/d/x/below", []byte("x"))
		write(t, d.dir, "h/d/never listed", []byte("the peer's"))
		res, _ := Delete(ctx, root, []string{"h/d/x"}, d.target(), fastOptions())
		if _, err := os.Lstat(d.path("h/d/never listed")); err == nil {
			if len(res.NotDirs)+len(res.Unmade) > 0 {
				t.Fatalf("run %d: the peer's directory stayed, and the result names parents sent as files: %q, %q", i, res.NotDirs, res.Unmade)
			}
			continue
		}
		hits++
		// The file is there (NotDirs), or the peer stopped before it
		// put it there (Unmade).
		if _, err := os.Lstat(d.path("h/d")); err == nil && !slices.Equal(res.NotDirs, []string{"h/d"}) ||
			err != nil && !slices.Equal(res.Unmade, []string{"h/d"}) {
			t.Errorf("run %d: the peer's h/d was replaced (%v); parents sent as files %q, unmade %q, want h/d\n%s", i, err, res.NotDirs, res.Unmade, res.Stderr)
		}
		if len(res.Unmade) > 0 && res.Class != Retry {
			t.Errorf("run %d: stopped at a parent read as a file, class %v, want retry (the list changed here)", i, res.Class)
		}
		if !slices.Contains(res.Removed, "h/d/never listed") {
			t.Errorf("run %d: removed %q, want the file never listed among them", i, res.Removed)
		}
	}
	if hits == 0 {
		t.Fatalf("the race never hit in %d runs: rsync read no parent as a file (its order of reading changed? revisit Result.NotDirs)", runs)
	}
	t.Logf("%d runs replaced the peer's directory", hits)
}
