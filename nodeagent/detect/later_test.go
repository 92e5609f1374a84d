package detect

import (
	"testing"
	"time"
)

// TestLaterScans_wait: the wait doubles while paths keep coming back
// within twice the last wait, up to its bound, and starts again from the
// bottom after a quiet spell.
func TestLaterScans_wait(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	type step struct {
		queued time.Duration // when paths are queued, from t0
		want   time.Duration // their wait
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first", []step{{0, minLaterScan}}},
		{"failing again at once doubles", []step{{0, time.Second}, {time.Second, 2 * time.Second}, {3 * time.Second, 4 * time.Second}}},
		{"doubling stops at the bound", []step{
			{0, time.Second}, {1 * time.Second, 2 * time.Second}, {3 * time.Second, 4 * time.Second},
			{7 * time.Second, 8 * time.Second}, {15 * time.Second, 16 * time.Second}, {31 * time.Second, 32 * time.Second},
			{63 * time.Second, maxLaterScan}, {123 * time.Second, maxLaterScan},
		}},
		{"a quiet spell starts again", []step{{0, time.Second}, {time.Second, 2 * time.Second}, {time.Minute, time.Second}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l laterScans
			for i, s := range tc.steps {
				now := t0.Add(s.queued)
				if got := l.wait(now); got != s.want {
					t.Fatalf("step %d: wait %v, want %v", i, got, s.want)
				}
				l.take(now.Add(s.want)) // the round is scanned once its wait is over
			}
		})
	}
}
