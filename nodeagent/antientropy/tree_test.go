package antientropy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// root makes a data root with a directory, a file, a symlink to the
// directory and one outside, an excluded file and the reserved directory,
// all with one mtime, and returns it open.
func root(t *testing.T) (string, int) {
	t.Helper()
	r := t.TempDir()
	when := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(r, "d"), 0o750))
	must(os.WriteFile(filepath.Join(r, "d", "f"), []byte("content"), 0o640))
	must(os.WriteFile(filepath.Join(r, "skip.tmp"), []byte("excluded"), 0o644))
	must(os.MkdirAll(filepath.Join(r, ".jailsync", "tmp"), 0o700))
	must(os.WriteFile(filepath.Join(r, ".jailsync", "tmp", "x"), nil, 0o600))
	must(os.Symlink("d", filepath.Join(r, "l")))
	must(os.Symlink("/etc", filepath.Join(r, "out")))
	for _, p := range []string{"d/f", "skip.tmp", "d"} {
		must(os.Chtimes(filepath.Join(r, p), when, when))
	}
	for _, l := range []string{"l", "out"} {
		tv := unix.NsecToTimeval(when.UnixNano())
		must(unix.Lutimes(filepath.Join(r, l), []unix.Timeval{tv, tv}))
	}
	fd, err := unix.Open(r, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(err)
	t.Cleanup(func() { unix.Close(fd) })
	return r, fd
}

func excludeTmp(rel string, _ bool) bool { return filepath.Ext(rel) == ".tmp" }

func paths(t Tree) []string {
	var out []string
	for _, e := range t.Entries {
		out = append(out, string(e.Path))
	}
	return out
}

// TestRead: the tree is every path on disk but the excluded and the
// reserved directory, sorted, symlinks as links (never followed), a
// directory's time as set; two roots alike have one digest, and a mode
// changed gives another.
func TestRead(t *testing.T) {
	ctx := context.Background()
	_, fd1 := root(t)
	r2, fd2 := root(t)
	t1, err := Read(ctx, fd1, excludeTmp)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(t1), []string{"d", "d/f", "l", "out"}; !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
	for _, e := range t1.Entries {
		switch string(e.Path) {
		case "l":
			if string(e.Link) != "d" {
				t.Errorf("l's target is %q, want d", e.Link)
			}
		case "out":
			if string(e.Link) != "/etc" {
				t.Errorf("out's target is %q, want /etc", e.Link)
			}
		case "d":
			if e.MtimeNs != time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano() {
				t.Errorf("d's mtime is %d, want the one set", e.MtimeNs)
			}
		}
	}
	t2, err := Read(ctx, fd2, excludeTmp)
	if err != nil {
		t.Fatal(err)
	}
	// Both roots' files belong to this test's user: the same owner.
	if t1.Digest != t2.Digest {
		t.Errorf("two roots alike: digests %s and %s", t1.Digest, t2.Digest)
	}
	if err := os.Chmod(filepath.Join(r2, "d", "f"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Read again through the same descriptor: the same paths, another
	// digest.
	if t2, err = Read(ctx, fd2, excludeTmp); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(paths(t2), paths(t1)) {
		t.Errorf("read again: paths %q, want %q", paths(t2), paths(t1))
	}
	if t1.Digest == t2.Digest {
		t.Error("a mode changed, and the digest did not")
	}
}
