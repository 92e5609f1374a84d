//go:build linux

package fanotify

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// TestSource_renameChanges maps rename events read after later changes to
// either name: what is reported is what the names hold when read.
func TestSource_renameChanges(t *testing.T) {
	type side int
	const (
		in side = iota
		out
	)
	file := func(t *testing.T, p string) { writeFile(t, p, "x") }
	dir := func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o755)) }
	tests := []struct {
		name     string
		make     func(t *testing.T, p string)
		from, to side
		after    func(t *testing.T, oldAbs, newAbs string)
		want     []change.Change
	}{{
		name: "file renamed within the root",
		make: file, from: in, to: in,
		want: []change.Change{{Path: "new", OldPath: "old", Op: change.Rename, Finished: true}},
	}, {
		name: "old name made again since",
		make: file, from: in, to: in,
		after: func(t *testing.T, o, n string) { file(t, o) },
		want: []change.Change{
			{Path: "new", OldPath: "old", Op: change.Rename, Finished: true},
			{Path: "old", Op: change.Create, Finished: true},
		},
	}, {
		// The rename is reported whatever came after it (a peer replays
		// every rename, in order), then what the names hold now.
		name: "new name holds another file since",
		make: file, from: in, to: in,
		after: func(t *testing.T, o, n string) { must(t, os.Remove(n)); file(t, n) },
		want: []change.Change{
			{Path: "new", OldPath: "old", Op: change.Rename, Finished: true},
			{Path: "new", Op: change.Create, Finished: true},
		},
	}, {
		name: "new name gone since",
		make: file, from: in, to: in,
		after: func(t *testing.T, o, n string) { must(t, os.Remove(n)) },
		want:  []change.Change{{Path: "new", OldPath: "old", Op: change.Rename, Finished: true}},
	}, {
		name: "renamed back since",
		make: file, from: in, to: in,
		after: func(t *testing.T, o, n string) { must(t, os.Rename(n, o)) },
		want: []change.Change{
			{Path: "new", OldPath: "old", Op: change.Rename, Finished: true},
			{Path: "old", Op: change.Create, Finished: true},
		},
	}, {
		name: "directory renamed, then gone since",
		make: dir, from: in, to: in,
		after: func(t *testing.T, o, n string) { must(t, os.Remove(n)) },
		want:  []change.Change{{Path: "new", OldPath: "old", Op: change.Rename | change.Subtree, Finished: true}},
	}, {
		name: "directory renamed",
		make: dir, from: in, to: in,
		want: []change.Change{{Path: "new", OldPath: "old", Op: change.Rename | change.Subtree, Finished: true}},
	}, {
		name: "directory made again at the old name",
		make: dir, from: in, to: in,
		after: func(t *testing.T, o, n string) { dir(t, o) },
		want: []change.Change{
			{Path: "new", OldPath: "old", Op: change.Rename | change.Subtree, Finished: true},
			{Path: "old", Op: change.Mkdir | change.Subtree, Finished: true},
		},
	}, {
		name: "file moved in",
		make: file, from: out, to: in,
		want: []change.Change{{Path: "new", Op: change.Create, Finished: true}},
	}, {
		name: "directory moved in",
		make: dir, from: out, to: in,
		want: []change.Change{{Path: "new", Op: change.Subtree, Finished: true}},
	}, {
		name: "file moved out",
		make: file, from: in, to: out,
		want: []change.Change{{Path: "old", Op: change.Remove, Finished: true}},
	}, {
		name: "directory moved out",
		make: dir, from: in, to: out,
		want: []change.Change{{Path: "old", Op: change.Rmdir, Finished: true}},
	}, {
		name: "file moved out, made again since",
		make: file, from: in, to: out,
		after: func(t *testing.T, o, n string) { file(t, o) },
		want:  []change.Change{{Path: "old", Op: change.Create, Finished: true}},
	}, {
		name: "moved around outside",
		make: file, from: out, to: out,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, outside := sharedTmpfs(t)
			base := map[side]string{in: root, out: outside}
			oldAbs, newAbs := filepath.Join(base[tc.from], "old"), filepath.Join(base[tc.to], "new")
			tc.make(t, oldAbs)
			ev := event{
				mask: unix.FAN_RENAME, fd: -1,
				dir: handleOf(t, base[tc.from]), name: "old", hasDir: true,
				newDir: handleOf(t, base[tc.to]), newName: "new", hasNew: true,
				obj: handleOf(t, oldAbs), hasObj: true,
			}
			if st, err := os.Lstat(oldAbs); err == nil && st.IsDir() {
				ev.mask |= unix.FAN_ONDIR
			}
			must(t, os.Rename(oldAbs, newAbs))
			if tc.after != nil {
				tc.after(t, oldAbs, newAbs)
			}
			s := &Source{opts: source.Options{Root: root}, root: root, res: newTestResolver(t, root)}
			got := s.eventChanges(nil, &ev, time.Now())
			if len(got) != len(tc.want) {
				t.Fatalf("got\n%swant\n%s", list(got), list(tc.want))
			}
			for i, c := range got {
				w := tc.want[i]
				if c.Path != w.Path || c.OldPath != w.OldPath || c.Op != w.Op || c.Finished != w.Finished {
					t.Errorf("change %d: %s, want %s", i, show(c), show(w))
				}
			}
		})
	}
}

// TestSource_renameReadAfterADirectoryAboveMoved: events read after a
// directory above their paths was renamed report the names they had when
// they happened. Here the rename of a file into d, a directory just moved
// into s, is read after s was swapped with u: it is s/c0 -> s/d/x, not
// s/c0 -> u/d/x (d resolved as it is when read, s as the cache knew it),
// which peers replayed into a u/d of their own (the stress test, seed 372
// of the fifty-third session).
func TestSource_renameReadAfterADirectoryAboveMoved(t *testing.T) {
	root := filepath.Join(mountTmpfs(t), "root")
	for _, d := range []string{"t/d", "s", "u"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	writeFile(t, filepath.Join(root, "s/c0"), "x")
	s, err := New(source.Options{Root: root})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w := runInto(t, s, make(chan change.Change))
	for _, d := range []string{"s", "t", "u"} {
		w.sync(filepath.Join(root, d)) // each directory's path is cached
	}
	// The source holds at the marker's change until the test receives it:
	// every event below is read after the last of them happened.
	must(t, os.WriteFile(filepath.Join(root, "hold"), nil, 0o644))
	abs := func(p string) string { return filepath.Join(root, p) }
	must(t, os.Rename(abs("t/d"), abs("s/d")))
	must(t, os.Rename(abs("s/c0"), abs("s/d/x")))
	must(t, os.Rename(abs("s"), abs("tmp")))
	must(t, os.Rename(abs("u"), abs("s")))
	must(t, os.Rename(abs("tmp"), abs("u")))

	c := w.waitFor("of the rename of s/c0", func(c change.Change) bool { return c.OldPath == "s/c0" })
	if c.Path != "s/d/x" || !c.Op.Has(change.Rename) {
		t.Errorf("rename read late: %s, want s/c0 -> s/d/x", show(c))
	}
	w.waitFor("of the swap's last rename", func(c change.Change) bool { return c.Path == "u" && c.OldPath == "tmp" })
}
