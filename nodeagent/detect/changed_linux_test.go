package detect

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// TestDetector_changed compares a batch of ready changes with the index in
// one read transaction: those as recorded are dropped (echoes, undone
// changes), every other one is reported, and one that cannot be compared
// does not hide the others. A write through a path gone since
// (WrittenIno) is reported whatever the path's entry. A directory's times
// are compared for an attribute change of its own (touch -d), not for a
// change of its tree (an entry made in it moves them).
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
	for _, n := range []string{"echo", "edited", "renamed-to", "racy"} {
		write(n, "recorded")
	}
	for _, d := range []string{"touched", "chmodded", "grown"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"link", "was-dir"} {
		if err := os.Symlink("../outside", filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
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
		for _, n := range []string{"echo", "edited", "renamed-to", "racy", "touched", "chmodded", "grown"} {
			if err := tx.Record(rootfd, n); err != nil {
				return err
			}
		}
		// A file below a directory that is a symlink now.
		if err := tx.Put("was-dir/f", index.Entry{Size: 8}); err != nil {
			return err
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
	write("echo-renamed-to", "never recorded")
	write("grown/f", "made in a recorded directory")
	old := time.Unix(1514746671, 0)
	if err := os.Chtimes(filepath.Join(root, "touched"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "chmodded"), 0o700); err != nil {
		t.Fatal(err)
	}

	// racy's entry may hide a write in its timestamp tick: its local write
	// passes, its echo does not (the journal's Racy decides which changes
	// are racy, TestJournal_Record_racyEntry; here it is given).
	d := &Detector{Root: root, Index: idx, Log: logr.Discard(), Racy: func(c change.Change) bool { return c.Path == "racy" && !c.Echo }}
	in := []change.Change{
		{Path: "echo", Op: change.Write},
		{Path: "edited", Op: change.Write},
		{Path: "new", Op: change.Create},
		{Path: "renamed-to", OldPath: "old-name", Op: change.Rename},
		// The agent's own rename (a peer's, replayed here) is the
		// peer's, whatever its names hold by the time it is read: the
		// receiver recorded it, and later renames may have moved its new
		// name on (stress seed 6, the forty-seventh session).
		{Path: "echo-renamed-to", OldPath: "old-name", Op: change.Rename, Echo: true},
		// Both names gone, neither indexed: a chain link read late,
		// unless it is the agent's own rename, which a scan found too
		// (change.Coalescer keeps its Echo: stress seed 9, the
		// forty-seventh session).
		{Path: "chain-to", OldPath: "chain-from", Op: change.Rename},
		{Path: "echo-found-to", OldPath: "echo-found-from", Op: change.Create | change.Write | change.Rename | change.Subtree | change.Found, Echo: true},
		// The agent's own rename merged with a peer's run's write and
		// the receiver's removal (EchoRename, not Echo): both names gone
		// and not indexed, the receiver's doing, not a chain link (stress
		// Kill9 seed 282, the sixty-fourth session). And one whose new
		// name holds a local change since: reported, as a write.
		{Path: "echo-then-gone-to", OldPath: "echo-then-gone-from", Op: change.Create | change.Write | change.Remove | change.Rename, EchoRename: true},
		{Path: "edited", OldPath: "echo-edited-from", Op: change.Write | change.Rename, EchoRename: true},
		// Through a symlink: no path of the root's, absent as the index
		// has it; and one that the index holds, gone now.
		{Path: "link/secret", Op: change.Write},
		{Path: "was-dir/f", Op: change.Write},
		// Absent here and in the index: a removal of a path that a
		// rename read before it may have moved here (the journal, in
		// order, decides), unless this agent or a peer's run made it.
		{Path: "gone", Op: change.Remove},
		{Path: "gone-echo", Op: change.Remove, Echo: true},
		{Path: "gone-dir", Op: change.Rmdir},
		{Path: "racy", Op: change.Write},
		{Path: "racy", Op: change.Write, Echo: true},
		// Absent here and in the index, but the write through it
		// changed a file that lives on under other names.
		{Path: "written-then-gone", Op: change.Remove, WrittenIno: 42},
		// A directory's times, held for a peer's run, are rsync's (the
		// writer's, or moved since by an entry made there): only its
		// mode and owner count then.
		{Path: "touched", Op: change.Attrib},
		{Path: "chmodded", Op: change.Attrib},
		{Path: "grown", Op: change.Mkdir},
	}
	for _, tc := range []struct {
		name     string
		received bool
		want     []string
	}{
		{name: "local", want: []string{"edited", "new", "renamed-to", "chain-to", "echo-then-gone-to", "edited", "was-dir/f", "gone", "gone-dir", "racy", "written-then-gone", "touched", "chmodded"}},
		{name: "held for a peer's run", received: true, want: []string{"edited", "new", "renamed-to", "chain-to", "edited", "was-dir/f", "racy", "written-then-gone", "chmodded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := make([]pending, len(in))
			for i, c := range in {
				ps[i] = pending{Change: c, received: tc.received}
			}
			var got []string
			for _, c := range d.changed(rootfd, ps) {
				got = append(got, c.Path)
				if c.EchoRename && (c.Op.Has(change.Rename) || c.OldPath != "") {
					t.Errorf("%s: the receiver's rename reported as this member's: %+v", c.Path, c)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("changed = %q, want %q", got, tc.want)
			}
			if d.changed(rootfd, nil) != nil {
				t.Error("an empty batch reported changes")
			}
		})
	}
}
