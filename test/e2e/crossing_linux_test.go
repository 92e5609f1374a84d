package e2e

import (
	"fmt"
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
	c := start(t, 3, 18605)
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
