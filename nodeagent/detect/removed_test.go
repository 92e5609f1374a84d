package detect

import (
	"fmt"
	"testing"
	"time"
)

// TestRecentRemovals: a path reported removed, and what was below it, is
// known for removedHold; its parent, a sibling and a longer name sharing
// its prefix are not; a later report of the path keeps it past the first
// one's expiry.
func TestRecentRemovals(t *testing.T) {
	t0 := time.Now()
	var r recentRemovals
	r.add("d", t0)
	r.add("f", t0)
	r.add("a/b", t0.Add(time.Second))
	r.add("f", t0.Add(30*time.Second))
	tests := []struct {
		path  string
		after time.Duration
		want  bool
	}{
		{"d", 0, true},
		{"d/e/g", time.Second, true},
		{"dd", 0, false},
		{"a", time.Second, false},
		{"a/b", time.Second, true},
		{"a/c", time.Second, false},
		{"d", removedHold - time.Nanosecond, true},
		{"d", removedHold, false},
		{"d/e", removedHold, false},
		{"f", removedHold, true},
		{"f", 30*time.Second + removedHold, false},
		{"never", 0, false},
	}
	for _, tc := range tests {
		if got := r.has(tc.path, t0.Add(tc.after)); got != tc.want {
			t.Errorf("has(%q) %s after: %v, want %v", tc.path, tc.after, got, tc.want)
		}
	}
}

// TestRecentRemovals_forgets: reports past removedHold go when the next
// comes, and past maxRemoved the oldest go first.
func TestRecentRemovals_forgets(t *testing.T) {
	t0 := time.Now()
	var r recentRemovals
	r.add("old", t0)
	r.add("new", t0.Add(removedHold))
	if _, ok := r.at["old"]; ok || len(r.order) != 1 {
		t.Errorf("after removedHold: %d reports, old kept %v; want only new", len(r.order), ok)
	}
	for i := range maxRemoved + 10 {
		r.add(fmt.Sprint("p", i), t0.Add(removedHold))
	}
	if len(r.order) != maxRemoved || len(r.at) != maxRemoved {
		t.Fatalf("%d reports, %d paths: want %d", len(r.order), len(r.at), maxRemoved)
	}
	now := t0.Add(removedHold)
	if r.has("new", now) || r.has("p9", now) {
		t.Errorf("the oldest reports past maxRemoved are still known")
	}
	if !r.has("p10", now) || !r.has(fmt.Sprint("p", maxRemoved+9), now) {
		t.Errorf("the latest maxRemoved reports are not all known")
	}
}
