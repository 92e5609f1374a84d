package detect

import (
	"testing"
	"time"
)

func TestIncoming(t *testing.T) {
	in := &Incoming{TTL: 50 * time.Millisecond}
	changed := in.Changed()
	in.Add("a", "b")
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
	in.Done("a", "b")
	select {
	case <-changed:
	default:
		t.Fatal("Done did not signal Changed")
	}
	if !in.Has("a") || in.Has("b") {
		t.Fatal("a was announced by two runs and confirmed by one: still held; b released")
	}
	time.Sleep(60 * time.Millisecond)
	if in.Has("a") || in.Carries("a") {
		t.Fatal("an announcement past its TTL (a dead sender) still holds the path")
	}
}

// TestIncoming_Extend: a run announced again holds its paths for another
// TTL from then, without counting as a second run; a path not held is
// not added.
func TestIncoming_Extend(t *testing.T) {
	in := &Incoming{TTL: 80 * time.Millisecond}
	in.Add("big")
	time.Sleep(50 * time.Millisecond)
	in.Extend("big", "other")
	time.Sleep(50 * time.Millisecond) // 100 ms after Add, 50 ms after Extend
	if !in.Has("big") {
		t.Fatal("an extended announcement expired at its first TTL")
	}
	if in.Has("other") {
		t.Fatal("Extend added a path that was not announced")
	}
	in.Done("big")
	if in.Has("big") {
		t.Fatal("one Done after Add and Extend still holds the path")
	}
}
