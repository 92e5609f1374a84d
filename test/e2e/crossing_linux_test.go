package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestStandalone_CrossingWritesEndIdentical: every member writes the same
// files at once, round after round, with contents of one size (so that two
// versions can share a size and, within one tick of the kernel's clock,
// an mtime). Which version wins is the multi-master capability's; every
// member must end identical, and soon: each member pushes its version
// while the others' land on it, and two members could each end with the
// other's (a swap), or a third with the version that lost on both. A
// member whose file changed during its run into a peer's version, as its
// index records it, sends that version to every peer (sender.Crossed),
// staggered by its place in the group. Before, such a file waited out the
// coalescer's longest hold (30 s) and went to that one peer only, and a
// version with the size and mtime of another was never sent at all (the
// quick check: the merged create|write was not compared by checksum). A
// last round removes files on one member while the others write them:
// whether they stay is the multi-master capability's (modify beats
// delete); that they end the same everywhere is this one's.
func TestStandalone_CrossingWritesEndIdentical(t *testing.T) {
	// At -v: a failure's log then shows each run's phases and the files
	// that changed while it ran.
	c := startCluster(t, 3, 18605, clusterOptions{args: []string{"-v"}})
	const files, rounds = 40, 5
	for round := range rounds {
		var wg sync.WaitGroup
		for _, node := range c.nodes {
			wg.Go(func() {
				for i := range files {
					p := filepath.Join(c.roots[node], fmt.Sprintf("f%02d", i))
					if err := os.WriteFile(p, fmt.Appendf(nil, "%s round %d file %02d", node, round, i), 0o644); err != nil {
						t.Error(err)
					}
					if i%4 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(300 * time.Millisecond)
	}
	// A removal crossing writes: n1 removes files that n2 and n3 write.
	var wg sync.WaitGroup
	for _, node := range c.nodes {
		wg.Go(func() {
			for i := range files / 4 {
				p := filepath.Join(c.roots[node], fmt.Sprintf("f%02d", i))
				var err error
				if node == "n1" {
					err = os.Remove(p)
				} else {
					err = os.WriteFile(p, fmt.Appendf(nil, "%s round %d file %02d", node, rounds, i), 0o644)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Well under the 30 s hold a swapped file waited for before.
	c.convergedWithin("n1", 15*time.Second)
	for _, node := range c.nodes {
		for i := files / 4; i < files; i++ {
			if _, err := os.Stat(filepath.Join(c.roots[node], fmt.Sprintf("f%02d", i))); err != nil {
				t.Errorf("%s: %v", node, err)
			}
		}
	}
}

// TestStandalone_MixedChangesCrossingEndIdentical: every member makes the
// same mix of changes to 20 shared names at once, round after round:
// writes, renames onto names the others write, removals, files in new
// directories (each member's sequence drawn from a fixed seed). Every
// member must end identical within seconds. Before the twenty-first
// session, 1 of 2 runs took 30 s and the other never ended identical; a
// rename the peer refused (its new name held another member's file) sent
// content that rsync's quick check could find unchanged, and was trusted.
func TestStandalone_MixedChangesCrossingEndIdentical(t *testing.T) {
	// At -v: a failure's log then shows each run's phases and the files
	// that changed while it ran.
	c := startCluster(t, 3, 18615, clusterOptions{args: []string{"-v"}})
	for round := range 6 {
		var wg sync.WaitGroup
		for k, node := range c.nodes {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(round), uint64(k)))
				name := func() string { return filepath.Join(c.roots[node], fmt.Sprintf("g%02d", r.IntN(20))) }
				for i := range 60 {
					switch r.IntN(5) {
					case 0, 1:
						if err := os.WriteFile(name(), fmt.Appendf(nil, "%s %d %d", node, round, i), 0o644); err != nil {
							t.Error(err)
						}
					case 2:
						_ = os.Rename(name(), name()) // may find nothing to rename: another member's removal came first
					case 3:
						_ = os.Remove(name())
					case 4:
						dir := filepath.Join(c.roots[node], "d", fmt.Sprintf("s%d", r.IntN(3)))
						if err := os.MkdirAll(dir, 0o755); err != nil {
							t.Error(err)
						} else if err := os.WriteFile(filepath.Join(dir, "x"), []byte(node), 0o644); err != nil {
							t.Error(err)
						}
					}
					if i%5 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(200 * time.Millisecond)
	}
	c.convergedWithin("n1", 20*time.Second)
}

// TestStandalone_WritesCrossingARenameOfTheirDirectoryEndIdentical: n1
// writes files into d/sub (making it again where it is gone) while n2
// renames d to e, then e to f: n1's runs of d/sub/... cross n2's renames,
// on n2 and on n3. Where each file ends is the multi-master capability's;
// every member must end identical. On e05c49d's agent 0 of 3 runs did
// (n1's files written into d just before the replayed rename reached it
// went to no member; n1's run put d/sub/w000 on n2 after n2's rename,
// under the old name); after the sixty-second session's mends 5 of 10 (an
// empty d/sub left on n2, once a file n1 never journaled under its new
// name), and the sixty-third session's anti-entropy compare mends what
// such crossings leave apart. Until the seventy-fourth session it stood
// under the stress tag, with the scenarios that did not pass yet; there it
// passed 15 of 15 runs (4bb1f86 and 4003fcf) and joined the suite. See
// docs/design.md, "Crossing renames and writes of one tree".
func TestStandalone_WritesCrossingARenameOfTheirDirectoryEndIdentical(t *testing.T) {
	c := startCluster(t, 3, 18630, clusterOptions{args: []string{"-v"}})
	t.Cleanup(func() {
		// JAILSYNC_KEEP_LOGS=DIR keeps the agents' logs (the cluster's
		// state directories go with the test).
		if dir := os.Getenv("JAILSYNC_KEEP_LOGS"); dir != "" {
			for _, n := range c.nodes {
				b, _ := os.ReadFile(filepath.Join(c.states[n], "agent.log"))
				_ = os.WriteFile(filepath.Join(dir, n+".log"), b, 0o644)
			}
		}
	})
	d := func(node string, p ...string) string { return filepath.Join(append([]string{c.roots[node]}, p...)...) }
	must(t, os.MkdirAll(d("n1", "d", "sub"), 0o755))
	for i := range 20 {
		must(t, os.WriteFile(d("n1", "d", "sub", fmt.Sprintf("old%02d", i)), []byte("old"), 0o644))
	}
	c.convergedWithin("n1", 15*time.Second)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 300 {
			dir := d("n1", "d", "sub")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				continue // n2's replayed rename of d raced the mkdir
			}
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("w%03d", i)), fmt.Appendf(nil, "n1 %d", i), 0o644)
			time.Sleep(time.Millisecond)
		}
	})
	wg.Go(func() {
		time.Sleep(60 * time.Millisecond)
		if err := os.Rename(d("n2", "d"), d("n2", "e")); err != nil {
			t.Errorf("n2: rename d e: %v", err)
		}
		time.Sleep(150 * time.Millisecond)
		if err := os.Rename(d("n2", "e"), d("n2", "f")); err != nil {
			t.Errorf("n2: rename e f: %v", err)
		}
	})
	wg.Wait()
	c.convergedWithin("n1", 30*time.Second)
}
