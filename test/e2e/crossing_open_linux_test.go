//go:build linux && stress

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestStress_WritesBelowARenamedDirectory: n1 writes files into d/sub
// (making it again where it is gone) while n2 renames d to e, then e to
// f: n1's runs of d/sub/... cross n2's renames, on n2 and on n3. Where
// each file ends is the multi-master capability's; every member must end
// identical. It does not yet (found in the sixty-second session: 3 of 3
// runs ended with n1 holding f/sub/w000 and on, which n2 and n3 lack):
// a file that lands on n2 or n3 after that member made or replayed the
// rename, under the old name, stays there, while n2's replayed rename
// carries n1's copy on to f. See docs/design.md, "Crossing renames and
// writes of one tree". Under the stress tag, with the scenarios that do
// not pass yet, until it does:
//
//	go test -tags stress -count=1 -run TestStress_WritesBelowARenamedDirectory ./test/e2e/
func TestStress_WritesBelowARenamedDirectory(t *testing.T) {
	c := startCluster(t, 3, 18630, clusterOptions{args: []string{"-v"}})
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
