package detect

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// TestDetector_changed compares a batch of ready changes with the index in
// one read transaction: those as recorded are dropped (echoes, undone
// changes), every other one is reported, and one that cannot be compared
// does not hide the others.
func TestDetector_changed(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{root, filepath.Join(dir, "outside")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"echo", "edited", "renamed-to"} {
		write(n, "recorded")
	}
	if err := os.Symlink("../outside", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	rootfd, err := beneath.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	idx, err := index.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	err = idx.Update(func(tx *index.Tx) error {
		for _, n := range []string{"echo", "edited", "renamed-to"} {
			if err := tx.Record(rootfd, n); err != nil {
				return err
			}
		}
		// The old name of a rename still recorded as present: the rename
		// is news even though its new name matches.
		return tx.Put("old-name", index.Entry{Size: 8})
	})
	if err != nil {
		t.Fatal(err)
	}
	write("edited", "changed after the record")
	write("new", "never recorded")

	d := &Detector{Root: root, Index: idx, Log: logr.Discard()}
	in := []change.Change{
		{Path: "echo", Op: change.Write},
		{Path: "edited", Op: change.Write},
		{Path: "new", Op: change.Create},
		{Path: "renamed-to", OldPath: "old-name", Op: change.Rename},
		{Path: "link/secret", Op: change.Write}, // cannot be compared: outside
		{Path: "gone", Op: change.Remove},       // absent here and in the index
	}
	var got []string
	for _, c := range d.changed(rootfd, in) {
		got = append(got, c.Path)
	}
	want := []string{"edited", "new", "renamed-to", "link/secret"}
	if !slices.Equal(got, want) {
		t.Errorf("changed = %q, want %q", got, want)
	}
	if d.changed(rootfd, nil) != nil {
		t.Error("an empty batch reported changes")
	}
}
