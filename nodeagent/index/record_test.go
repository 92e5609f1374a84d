package index

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTx_RecordChanged_directories: a directory's times move with every
// entry made in it (changes of their own), so they do not make it changed;
// its mode does, and so does another directory made under its name (mv d
// e; mkdir d, compared before the rename was recorded: taken for the old
// d, it was dropped, and the peers lost d with their rename). Compared for
// a change of its own attributes (Compare.DirTimes), its times alone do:
// `touch -d` of a directory changes nothing else.
func TestTx_RecordChanged_directories(t *testing.T) {
	touch := func(t *testing.T, dir string) {
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		must(t, os.Chtimes(dir, old, old))
	}
	for _, tc := range []struct {
		name        string
		change      func(t *testing.T, dir string)
		cmp         Compare
		wantChanged bool
	}{
		{"an entry made in it", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "f")) }, Compare{}, false},
		{"its times", touch, Compare{}, false},
		{"its times, by its own attributes", touch, Compare{DirTimes: true}, true},
		{"nothing, by its own attributes", func(t *testing.T, dir string) {}, Compare{DirTimes: true}, false},
		{"its mode", func(t *testing.T, dir string) { must(t, os.Chmod(dir, 0o700)) }, Compare{}, true},
		{"made again", func(t *testing.T, dir string) {
			must(t, os.Rename(dir, dir+".old"))
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.Chmod(dir, 0o755)) // the same mode and owner as the old one
		}, Compare{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "d")
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.Chmod(dir, 0o755))
			rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			must(t, err)
			t.Cleanup(func() { unix.Close(rootfd) })
			x := openTemp(t)
			must(t, x.Update(func(tx *Tx) error { _, _, _, err := tx.RecordChanged(rootfd, "d", Compare{}); return err }))
			tc.change(t, dir)
			var changed, unchanged bool
			must(t, x.View(func(tx *Tx) (err error) { unchanged, err = tx.Unchanged(rootfd, "d", tc.cmp); return err }))
			must(t, x.Update(func(tx *Tx) (err error) { _, _, changed, err = tx.RecordChanged(rootfd, "d", tc.cmp); return err }))
			if changed != tc.wantChanged || unchanged == tc.wantChanged {
				t.Errorf("RecordChanged: changed %v, Unchanged %v; want changed %v", changed, unchanged, tc.wantChanged)
			}
		})
	}
}

func write(t *testing.T, path string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte("x"), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
