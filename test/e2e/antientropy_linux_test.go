//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// behindTheAgent changes node's root while its agent is stopped, and
// records each change in its index as if the agent had seen and sent it:
// a difference between members that no change touches again, which only
// the anti-entropy compare finds (what crossing renames and writes of
// one tree leave, docs/design.md). Each change is a function of the path
// it changes, under the root.
func (c *cluster) behindTheAgent(node string, changes map[string]func(abs string) error) {
	c.t.Helper()
	idx, err := index.Open(filepath.Join(c.states[node], "index.db"))
	must(c.t, err)
	defer idx.Close()
	for rel, change := range changes {
		abs := filepath.Join(c.roots[node], rel)
		must(c.t, change(abs))
		must(c.t, idx.Update(func(tx *index.Tx) error {
			var st unix.Stat_t
			if err := unix.Lstat(abs, &st); err != nil {
				if err == unix.ENOENT {
					return tx.Delete(rel)
				}
				return err
			}
			return tx.Put(rel, index.FromStat(&st))
		}))
	}
}

// TestStandalone_AntiEntropyMendsWhatNoChangeTouches: members that ended
// apart without a change to carry the difference (here made on purpose
// behind a stopped agent, its index edited alike) end identical once
// they are quiet, by the compare's rule: a path only one member holds
// goes to the others (nothing is deleted), a newer mtime wins, the lower
// node name breaks a tie.
func TestStandalone_AntiEntropyMendsWhatNoChangeTouches(t *testing.T) {
	c := start(t, 3, 18635)
	r1 := c.roots["n1"]
	for _, f := range []string{"a", "b", "c", "d/e"} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(r1, f)), 0o755))
		must(t, os.WriteFile(filepath.Join(r1, f), []byte("first "+f), 0o644))
	}
	c.converged("n1")
	// Confirmed, not merely delivered: a run of n1's to n2 still
	// unconfirmed would go again after n2's restart and put n1's c over
	// n2's newer one, as crossing writes may resolve either way.
	c.nothingPending("n1")

	c.stop("n2")
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	c.behindTheAgent("n2", map[string]func(string) error{
		// Only n2 holds it: it reaches n1 and n3.
		"only-n2": func(p string) error { return os.WriteFile(p, []byte("n2's own"), 0o644) },
		// Gone on n2 alone: the others bring it back.
		"b": os.Remove,
		// Newer on n2: n2's wins.
		"c": func(p string) error {
			if err := os.WriteFile(p, []byte("n2's newer c"), 0o644); err != nil {
				return err
			}
			later := time.Now().Add(time.Hour)
			return os.Chtimes(p, later, later)
		},
		// Older on n2: n1's (and n3's) wins.
		"a": func(p string) error {
			if err := os.WriteFile(p, []byte("n2's older a"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(p, old, old)
		},
		// The same mtime, another mode: the lower node name (n1) wins.
		"d/e": func(p string) error { return os.Chmod(p, 0o600) },
	})
	c.startAgent("n2")
	c.waitReady()

	// Identical on every member (from n1, and n3 as n1), the versions the
	// rule says.
	c.convergedWithin("n1", 60*time.Second)
	poll.Until(t, 30*time.Second, func() error { return c.holds("n3", "n1") })
	for _, node := range c.nodes {
		r := c.roots[node]
		for rel, want := range map[string]string{"only-n2": "n2's own", "b": "first b", "c": "n2's newer c", "a": "first a", "d/e": "first d/e"} {
			got, err := os.ReadFile(filepath.Join(r, rel))
			if err != nil {
				t.Errorf("%s: %v", node, err)
				continue
			}
			if !bytes.Equal(got, []byte(want)) {
				t.Errorf("%s: %s holds %q, want %q", node, rel, got, want)
			}
		}
		if fi, err := os.Stat(filepath.Join(r, "d/e")); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: d/e is %v (%v), want mode 0644 (n1's, the lower name, at the same mtime)", node, fi.Mode(), err)
		}
	}
}

// TestStandalone_AntiEntropySeedsFromOneMember: a member that holds
// nothing of what the others hold, with nothing pending for it anywhere
// (a member joining empty; here n2, emptied behind its stopped agent and
// its index alike), gets each path from one member: n1, the lowest-named
// member holding it, sends it all; n3, holding the same, sends nothing
// (antientropy.Comparer leaves a path to a lower-named holder alike).
func TestStandalone_AntiEntropySeedsFromOneMember(t *testing.T) {
	c := start(t, 3, 18640)
	r1 := c.roots["n1"]
	var files []string
	for i := range 40 {
		files = append(files, fmt.Sprintf("f%02d", i), fmt.Sprintf("d/g%02d", i))
	}
	must(t, os.MkdirAll(filepath.Join(r1, "d"), 0o755))
	for _, f := range files {
		must(t, os.WriteFile(filepath.Join(r1, f), []byte("content of "+f), 0o644))
	}
	c.converged("n1")
	c.nothingPending("n1")
	before := map[string]map[string]sends{"n1": c.settledSends("n1"), "n3": c.settledSends("n3")}

	c.stop("n2")
	gone := map[string]func(string) error{}
	for _, f := range files {
		gone[f] = os.Remove
	}
	c.behindTheAgent("n2", gone)
	c.behindTheAgent("n2", map[string]func(string) error{"d": os.Remove})
	c.startAgent("n2")
	c.waitReady()

	c.convergedWithin("n1", 60*time.Second)
	poll.Until(t, 30*time.Second, func() error { return c.holds("n3", "n1") })
	after := map[string]map[string]sends{"n1": c.settledSends("n1"), "n3": c.settledSends("n3")}
	if got := after["n1"]["n2"].files - before["n1"]["n2"].files; got < int64(len(files)) {
		t.Errorf("n1 sent n2 %d paths, want at least the %d files", got, len(files))
	}
	if got := after["n3"]["n2"].files - before["n3"]["n2"].files; got != 0 {
		t.Errorf("n3 sent n2 %d paths that n1 holds alike and sends", got)
	}
}
