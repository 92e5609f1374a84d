package detect

import (
	"slices"
	"testing"
	"time"
)

// clock is a test's clock for Incoming: it moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newIncoming(ttl time.Duration) (*Incoming, *clock) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	return &Incoming{TTL: ttl, Now: c.now}, c
}

func TestIncoming(t *testing.T) {
	in, c := newIncoming(time.Minute)
	changed := in.Changed()
	h1 := in.Add("a", "b")
	in.Add("a")
	if !in.Has("a") || !in.Has("b") || in.Has("c") {
		t.Fatal("Has after Add")
	}
	if !in.Has("a/below/deep") || in.Has("ab") {
		t.Fatal("a path below an announced directory is held; a sibling with a common prefix is not")
	}
	if !in.Carries("a") || in.Carries("a/below") || in.Carries("c") {
		t.Fatal("Carries: the announced path itself only")
	}
	in.Done(h1, "a", "b")
	select {
	case <-changed:
	default:
		t.Fatal("Done did not signal Changed")
	}
	if !in.Has("a") || in.Has("b") {
		t.Fatal("a was announced by two runs and confirmed by one: still held; b released")
	}
	c.advance(time.Minute)
	if in.Has("a") || in.Carries("a") {
		t.Fatal("an announcement past its TTL (a dead sender) still holds the path")
	}
}

// TestIncoming_Extend: a run announced again holds its paths for another
// TTL from then, without counting as a second run; a path not held is
// not added, and another run's hold of a path is not extended.
func TestIncoming_Extend(t *testing.T) {
	in, c := newIncoming(80 * time.Second)
	big := in.Add("big")
	in.Add("shared")
	mine := in.Add("shared")
	c.advance(50 * time.Second)
	in.Extend(big, "big", "other", "shared")
	c.advance(50 * time.Second) // 100 s after Add, 50 s after Extend
	if !in.Has("big") {
		t.Fatal("an extended announcement expired at its first TTL")
	}
	if in.Has("other") {
		t.Fatal("Extend added a path that was not announced")
	}
	if in.Has("shared") {
		t.Fatal("Extend of one hold extended other holds of a path it does not hold")
	}
	in.Done(big, "big")
	if in.Has("big") {
		t.Fatal("one Done after Add and Extend still holds the path")
	}
	in.Done(mine, "shared")
	// An expired hold is not brought back, whether or not a look at the
	// path dropped it before.
	for _, look := range []bool{false, true} {
		h := in.Add("late")
		c.advance(81 * time.Second)
		if look {
			in.Has("late")
		}
		in.Extend(h, "late")
		if in.Has("late") {
			t.Errorf("Extend brought back an expired hold (looked at before: %v)", look)
		}
	}
}

// TestIncoming_lateDoneEndsOnlyItsOwnHold: a run whose hold expired (its
// sender stalled past the TTL) and that is confirmed after another run
// announced the same path must not end that other run's hold. With a
// count of runs per path, the late Done took the other's.
func TestIncoming_lateDoneEndsOnlyItsOwnHold(t *testing.T) {
	in, c := newIncoming(10 * time.Minute)
	stalled := in.Add("p", "q")
	c.advance(11 * time.Minute)
	if in.Has("p") {
		t.Fatal("an expired hold still holds")
	}
	fresh := in.Add("p")
	in.Done(stalled, "p", "q")
	if !in.Has("p") || !in.Carries("p") {
		t.Fatal("the late Done of an expired run ended another run's hold")
	}
	// The same without a look in between (nothing dropped the expired hold
	// before the second Add).
	stalled2 := in.Add("r")
	c.advance(11 * time.Minute)
	fresh2 := in.Add("r")
	in.Done(stalled2, "r")
	if !in.Has("r") {
		t.Fatal("the late Done of an expired run ended another run's hold (not looked at in between)")
	}
	in.Done(fresh, "p")
	in.Done(fresh2, "r")
	if in.Has("p") || in.Has("r") || len(in.paths) != 0 {
		t.Fatalf("held after every hold's Done: %v", in.paths)
	}
}

// TestIncoming_HasBelow: a directory above a path being received is one
// rsync may make (an implied parent); a sibling with a common prefix, the
// path itself, and an expired hold are not.
func TestIncoming_HasBelow(t *testing.T) {
	in, c := newIncoming(time.Minute)
	in.Add("a/b/c")
	for dir, want := range map[string]bool{"a": true, "a/b": true, ".": true, "a/b/c": false, "a/bb": false, "x": false} {
		if got := in.HasBelow(dir); got != want {
			t.Errorf("HasBelow(%q) = %v, want %v", dir, got, want)
		}
	}
	c.advance(time.Minute)
	if in.HasBelow("a") {
		t.Error("HasBelow past the hold's TTL")
	}
}

// TestIncoming_OtherAtOrBelow: a directory is another run's when a hold
// not among own holds it or a path below it; own holds, a sibling with a
// common prefix, a path above it and an expired hold are not.
func TestIncoming_OtherAtOrBelow(t *testing.T) {
	in, c := newIncoming(time.Minute)
	mine := in.Add("a/gone", "m/x")
	in.Add("a/b/f", "c", "x/y")
	for _, tc := range []struct {
		dir  string
		own  []Hold
		want bool
	}{
		{"a", []Hold{mine}, true},      // another run's file below
		{"a/b", []Hold{mine}, true},    // its implied parent
		{"c", []Hold{mine}, true},      // its own listed directory
		{"c", nil, true},               // no hold of one's own
		{"m", []Hold{mine}, false},     // only this run's hold below
		{"a/bb", []Hold{mine}, false},  // a sibling with a common prefix
		{"x/y/z", []Hold{mine}, false}, // above it, not below
		{".", []Hold{mine}, true},
	} {
		if got := in.OtherAtOrBelow(tc.dir, tc.own); got != tc.want {
			t.Errorf("OtherAtOrBelow(%q, %v) = %v, want %v", tc.dir, tc.own, got, tc.want)
		}
	}
	c.advance(time.Minute)
	if in.OtherAtOrBelow("a", []Hold{mine}) {
		t.Error("OtherAtOrBelow past the other hold's TTL")
	}
}

// TestIncoming_HoldsAround: a removal below a directory above a run's
// paths waits for that run (HoldsAround), until its hold ends by Done or
// expiry (Holding); a path beside no run's paths, the root, a sibling
// with a common prefix and an expired run wait for nothing.
func TestIncoming_HoldsAround(t *testing.T) {
	in, c := newIncoming(time.Minute)
	deep := in.Add("h/d22/x", "h/d22/y")
	top := in.Add("top", "k/v")
	for _, tc := range []struct {
		rel  string
		want []Hold
	}{
		{"h/m28", []Hold{deep}},         // below h, above the run's paths
		{"h/sub/kept", []Hold{deep}},    // deeper, below h still
		{"h/d22/old", []Hold{deep}},     // beside them
		{"h", nil},                      // the root is not replaced
		{"hh/m", nil},                   // a sibling with a common prefix
		{"top2", nil},                   // a path at the root: nothing above
		{"k/w", []Hold{top}},            // another run's directory
		{"elsewhere/f", nil},            // no run's paths below its directory
		{"h/d22/x/below", []Hold{deep}}, // below a run's path (Has holds it too)
	} {
		got := in.HoldsAround(tc.rel)
		if !slices.Equal(got, tc.want) {
			t.Errorf("HoldsAround(%q) = %v, want %v", tc.rel, got, tc.want)
		}
	}
	ids := in.HoldsAround("h/m28")
	in.Done(deep, "h/d22/x")
	if !in.Holding(ids) {
		t.Fatal("a run with a path still held is over")
	}
	in.Done(deep, "h/d22/y")
	if in.Holding(ids) || in.HoldsAround("h/m28") != nil {
		t.Fatal("a run whose every path is done still holds")
	}
	if in.Holding(nil) {
		t.Fatal("no holds hold")
	}
	// Extended, a run holds on past its first TTL; expired, it holds
	// nothing, whether or not a look dropped its paths.
	c.advance(50 * time.Second)
	in.Extend(top, "top", "k/v")
	c.advance(50 * time.Second)
	if !in.Holding([]Hold{top}) || !slices.Equal(in.HoldsAround("k/w"), []Hold{top}) {
		t.Fatal("an extended run expired at its first TTL")
	}
	c.advance(time.Minute)
	if in.Holding([]Hold{top}) || in.HoldsAround("k/w") != nil {
		t.Fatal("an expired run still holds")
	}
	in.Done(top, "top", "k/v")
	if len(in.runs) != 0 || len(in.paths) != 0 {
		t.Fatalf("held after every hold's Done: %v %v", in.runs, in.paths)
	}
}
