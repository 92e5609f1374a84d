//go:build randomops

package sender

import (
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// valid reports whether op can be applied to the rig's tree as it is.
func (r *rig) valid(op string) bool {
	verb, args, _ := strings.Cut(op, " ")
	a, b, _ := strings.Cut(args, " ")
	dirOf := func(p string) string { return cmp.Or(parent(p), ".") } // parent's "" is the root
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(r.root, p)); return err == nil }
	isDir := func(p string) bool { st, err := os.Lstat(filepath.Join(r.root, p)); return err == nil && st.IsDir() }
	switch verb {
	case "mv":
		return exists(a) && !exists(b) && isDir(dirOf(b)) && !atOrBelow(b, a)
	case "swap":
		return exists(a) && exists(b) && !atOrBelow(a, b) && !atOrBelow(b, a)
	case "rm":
		return exists(a)
	case "write":
		return isDir(dirOf(a)) && !isDir(a)
	case "mkdir":
		return isDir(dirOf(a)) && !exists(a)
	}
	return false
}

// TestMinimizeRandomOps shrinks RANDOM_OPS_MINIMIZE (a JSON list of
// operations that left the trees apart) to a shorter list that still does:
// go test -tags randomops -run TestMinimizeRandomOps ./nodeagent/sender/
// With RANDOM_OPS_LIVE=1 the operations are applied while the sender runs,
// and a list counts as failing if one of four tries of it fails.
func TestMinimizeRandomOps(t *testing.T) {
	var ops []string
	if err := json.Unmarshal([]byte(os.Getenv("RANDOM_OPS_MINIMIZE")), &ops); err != nil {
		t.Fatalf("RANDOM_OPS_MINIMIZE: %v", err)
	}
	live := os.Getenv("RANDOM_OPS_LIVE") == "1"
	gaps := []time.Duration{3 * time.Millisecond, 11 * time.Millisecond, 0, 17 * time.Millisecond, 7 * time.Millisecond}
	trial := 0
	once := func(ops []string) (failed bool, why string) {
		trial++
		t.Run(strconv.Itoa(trial), func(t *testing.T) {
			r := opsRig(t, 130+trial%20, basePort+150+uint16(trial%20))
			if live {
				// As the live mode of the random operations test: the
				// sender runs while they are applied, at the gaps drawn.
				r.sender.Backoff, r.sender.BackoffCap = DefaultBackoff, DefaultBackoffCap
				r.start()
			}
			for i, op := range ops {
				if r.valid(op) {
					r.do(op, 100+i)
				}
				if live {
					select {
					case r.sender.Wake <- struct{}{}:
					default:
					}
					time.Sleep(gaps[i%len(gaps)])
				}
			}
			if !live {
				r.start()
			}
			deadline := time.Now().Add(8 * time.Second)
			for r.journal.Stats("peer").Files != 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if n := r.journal.Stats("peer").Files; n != 0 {
				failed, why = true, strconv.FormatInt(n, 10)+" pending"
				return
			}
			here, there := treeOf(t, r.root), treeOf(t, r.peerRoot)
			if !slices.Equal(here, there) {
				failed, why = true, "here:  "+strings.Join(here, " ")+"\nthere: "+strings.Join(there, " ")
			}
		})
		return failed, why
	}
	// Live, a list fails if any of a few tries of it does: its runs meet
	// the operations at times no list fixes.
	fails := func(ops []string) (bool, string) {
		tries := 1
		if live {
			tries = 4
		}
		for range tries {
			if failed, why := once(ops); failed {
				return true, why
			}
		}
		return false, ""
	}
	if ok, _ := fails(ops); !ok {
		t.Fatalf("the operations end identical: nothing to minimize")
	}
	for changed := true; changed; {
		changed = false
		for i := len(ops) - 1; i >= 0; i-- {
			shorter := slices.Delete(slices.Clone(ops), i, i+1)
			if ok, _ := fails(shorter); ok {
				ops, changed = shorter, true
			}
		}
	}
	_, why := fails(ops)
	t.Logf("minimal (%d trials): %q\n%s", trial, ops, why)
}
