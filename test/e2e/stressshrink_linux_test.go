//go:build linux && stress

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jailsync/jailsync/test/stressops"
)

func readOps(t *testing.T, file string) []sop {
	ops, err := stressops.Read(file)
	must(t, err)
	return ops
}

// TestStressShrink: ddmin over the ops of JAILSYNC_STRESS_REPLAY (errors
// and notes dropped), each trial a fresh cluster, ops run on their own
// node with JAILSYNC_SHRINK_GAP ms between them, failing = not identical
// within JAILSYNC_SHRINK_LIMIT.
func TestStressShrink(t *testing.T) {
	file := os.Getenv("JAILSYNC_STRESS_REPLAY")
	if file == "" {
		t.Fatal("JAILSYNC_STRESS_REPLAY names no ops.jsonl to shrink")
	}
	ops := readOps(t, file)
	if n, err := strconv.Atoi(os.Getenv("JAILSYNC_SHRINK_FIRST")); err == nil && n < len(ops) {
		ops = ops[:n]
	}
	limit := 12 * time.Second
	if d, err := time.ParseDuration(os.Getenv("JAILSYNC_SHRINK_LIMIT")); err == nil {
		limit = d
	}
	gap, _ := strconv.Atoi(os.Getenv("JAILSYNC_SHRINK_GAP"))
	tries := 1
	if n, err := strconv.Atoi(os.Getenv("JAILSYNC_SHRINK_TRIES")); err == nil {
		tries = n
	}
	trial := 0
	fails := func(sub []sop) bool {
		for range tries {
			trial++
			failed := false
			t.Run(fmt.Sprintf("trial%d-%dops", trial, len(sub)), func(t *testing.T) {
				r := newRun(t, "shrink", uint64(trial), 19100+10*(trial%8))
				r.noFail = true
				for i := range sub {
					o := sub[i]
					r.do(o.Node, &o)
					if gap > 0 {
						time.Sleep(time.Duration(gap) * time.Millisecond)
					}
				}
				failed = !r.settle("trial", nil, limit)
				t.Logf("trial %d: %d ops, failed=%v", trial, len(sub), failed)
			})
			if failed {
				return true
			}
		}
		return false
	}
	if !fails(ops) {
		t.Fatalf("the full sequence (%d ops) converges: not reproduced", len(ops))
	}
	n := 2
	for len(ops) >= 2 {
		chunk := (len(ops) + n - 1) / n
		reduced := false
		for i := 0; i < len(ops); i += chunk {
			cand := append(append([]sop{}, ops[:i]...), ops[min(i+chunk, len(ops)):]...)
			if len(cand) > 0 && fails(cand) {
				ops, n, reduced = cand, max(n-1, 2), true
				break
			}
		}
		if !reduced {
			if n >= len(ops) {
				break
			}
			n = min(2*n, len(ops))
		}
		b, _ := json.Marshal(ops)
		_ = os.WriteFile("/tmp/so/shrunk.json", b, 0o644)
		t.Logf("now %d ops (n=%d)", len(ops), n)
	}
	for _, o := range ops {
		b, _ := json.Marshal(o)
		t.Logf("MIN: %s", b)
	}
}
