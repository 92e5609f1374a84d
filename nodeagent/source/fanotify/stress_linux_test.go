//go:build linux

package fanotify

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// TestSource_burstEndsInFinalState runs thousands of random operations
// (writes, removals, renames of files and directories, across the root's
// edge too) as fast as they go while the source reads, then checks what a
// consumer replaying the changes in order would conclude: every path that
// exists at the end is last reported as existing (itself, or by a Subtree
// of an ancestor), every reported path that is gone is last reported as
// gone (removed or renamed away, itself or an ancestor) or under a Subtree.
func TestSource_burstEndsInFinalState(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			root, outside := sharedTmpfs(t)
			w := start(t, source.Options{Root: root})
			burst(t, rand.New(rand.NewPCG(seed, seed)), root, outside, 3000)
			w.sync(root)
			checkFinalState(t, root, w.seen)
		})
	}
}

// burst runs n random operations under root and outside; failures (a
// missing source, a rename into itself) are part of the game.
func burst(t *testing.T, rng *rand.Rand, root, outside string, n int) {
	t.Helper()
	dirs := []string{"a", "b", "a/c", "b/d", "a/c/e"}
	files := []string{"f", "g", "h with space", "\xff"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	path := func() string {
		base := root
		if rng.IntN(8) == 0 {
			base = outside
		}
		if rng.IntN(4) == 0 {
			return filepath.Join(base, pick(files))
		}
		return filepath.Join(base, pick(dirs), pick(files))
	}
	dir := func() string {
		base := root
		if rng.IntN(8) == 0 {
			base = outside
		}
		return filepath.Join(base, pick(dirs))
	}
	for range n {
		switch rng.IntN(10) {
		case 0, 1, 2:
			_ = os.WriteFile(path(), []byte(strings.Repeat("x", rng.IntN(8192))), 0o644)
		case 3:
			_ = os.Remove(path())
		case 4, 5:
			_ = os.Rename(path(), path())
		case 6:
			_ = os.MkdirAll(dir(), 0o755)
		case 7:
			_ = os.Rename(dir(), dir())
		case 8:
			if rng.IntN(4) == 0 {
				_ = os.RemoveAll(dir())
			} else {
				_ = os.Chmod(path(), 0o600)
			}
		case 9:
			_ = os.Link(path(), path())
		}
	}
}

// checkFinalState checks the changes against the tree under root.
func checkFinalState(t *testing.T, root string, seen []change.Change) {
	t.Helper()
	exists := map[string]bool{} // path: is a regular file
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := change.Rel(root, p); rel != "." && !strings.Contains(rel, ".marker-") {
			exists[rel] = d.Type().IsRegular()
		}
		return nil
	})
	must(t, err)
	reported := map[string]bool{}
	for _, c := range seen {
		if c.Op.Has(change.Rescan) {
			t.Errorf("rescan: %s", show(c))
		}
		if !strings.Contains(c.Path, ".marker-") {
			reported[c.Path] = true
		}
	}
	for p, regular := range exists {
		c, ok := lastAbout(seen, p)
		if regular && ok && c.Path == p && !c.Finished && c.Op == change.Create && isEmpty(t, filepath.Join(root, p)) {
			// An empty file last seen created (a link to an empty file
			// whose first name was removed since): the source cannot tell
			// it from a file whose writer has yet to open it; the
			// detector's probe finishes it (classify).
			continue
		}
		if !ok || saysGone(c, p) || regular && c.Path == p && !c.Finished {
			t.Errorf("%q exists, last reported by %s; its changes:\n%s", p, show(c), list(about(seen, p)))
		}
	}
	for p := range reported {
		if _, ok := exists[p]; ok {
			continue
		}
		if c, _ := lastAbout(seen, p); !saysGone(c, p) && !c.Op.Has(change.Subtree) {
			t.Errorf("%q is gone, last reported by %s; its changes:\n%s", p, show(c), list(about(seen, p)))
		}
	}
}

// lastAbout returns the last change that says something about p: one for
// p itself, or for an ancestor that was removed, renamed or is a Subtree.
func lastAbout(seen []change.Change, p string) (change.Change, bool) {
	for i := len(seen) - 1; i >= 0; i-- {
		c := seen[i]
		switch {
		case c.Path == p || c.OldPath == p:
			return c, true
		case c.Op&(change.Remove|change.Rmdir|change.Subtree) != 0 && under(p, c.Path):
			return c, true
		case c.Op.Has(change.Rename) && under(p, c.OldPath):
			return c, true
		}
	}
	return change.Change{}, false
}

// about returns the changes that name p, or an ancestor of it, for
// failure messages.
func about(seen []change.Change, p string) []change.Change {
	var cs []change.Change
	for _, c := range seen {
		if c.Path == p || c.OldPath == p || under(p, c.Path) || under(p, c.OldPath) {
			cs = append(cs, c)
		}
	}
	return cs
}

// saysGone reports whether c says that p no longer exists.
func saysGone(c change.Change, p string) bool {
	switch {
	case c.Op.Has(change.Rename) && (c.OldPath == p || under(p, c.OldPath)):
		return true
	case c.Path == p || under(p, c.Path):
		return c.Op&(change.Remove|change.Rmdir) != 0
	}
	return false
}

// under reports whether p is strictly below dir.
func under(p, dir string) bool {
	return dir != "" && (dir == "." || strings.HasPrefix(p, dir+"/"))
}

func isEmpty(t *testing.T, p string) bool {
	t.Helper()
	st, err := os.Lstat(p)
	must(t, err)
	return st.Size() == 0
}
