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
	if in.Has("a") {
		t.Fatal("an announcement past its TTL (a dead sender) still holds the path")
	}
}
