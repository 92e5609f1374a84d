package index

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTx_RecordChanged_directories: a directory's times move with every
// entry made in it (changes of their own), so they do not make it changed;
// its mode does, and so does another directory made under its name (mv d
// e; mkdir d, compared before the rename was recorded: taken for the old
// d, it was dropped, and the peers lost d with their rename).
func TestTx_RecordChanged_directories(t *testing.T) {
	for _, tc := range []struct {
		name        string
		change      func(t *testing.T, dir string)
		wantChanged bool
	}{
		{"an entry made in it", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "f")) }, false},
		{"its mode", func(t *testing.T, dir string) { must(t, os.Chmod(dir, 0o700)) }, true},
		{"made again", func(t *testing.T, dir string) {
			must(t, os.Rename(dir, dir+".old"))
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.Chmod(dir, 0o755)) // the same mode and owner as the old one
		}, true},
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
			must(t, x.Update(func(tx *Tx) error { _, _, _, err := tx.RecordChanged(rootfd, "d"); return err }))
			tc.change(t, dir)
			var changed, unchanged bool
			must(t, x.View(func(tx *Tx) (err error) { unchanged, err = tx.Unchanged(rootfd, "d"); return err }))
			must(t, x.Update(func(tx *Tx) (err error) { _, _, changed, err = tx.RecordChanged(rootfd, "d"); return err }))
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
