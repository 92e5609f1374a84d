package journal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// TestJournal_PendingAt: a path has a pending change at or below it until
// every peer confirmed it; a sibling whose name shares a prefix does not.
func TestJournal_PendingAt(t *testing.T) {
	root := t.TempDir()
	f := open(t, root, filepath.Join(t.TempDir(), "db"), "p1", "p2")
	if err := os.MkdirAll(filepath.Join(root, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.j.Record(f.rootfd, []string{"p1", "p2"}, []change.Change{f.write("d/e/a", 3)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{".", true}, {"d", true}, {"d/e", true}, {"d/e/a", true}, {"d/e/a/x", false}, {"d/e/b", false}, {"d/e-x", false}, {"de", false}} {
		if got := f.j.PendingAt(tc.path); got != tc.want {
			t.Errorf("before the peers confirmed it: PendingAt(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	f.confirmAll("p1")
	if !f.j.PendingAt("d") {
		t.Error("confirmed by one peer of two: PendingAt(\"d\") = false, want true")
	}
	f.confirmAll("p2")
	for _, p := range []string{".", "d", "d/e/a"} {
		if f.j.PendingAt(p) {
			t.Errorf("confirmed by every peer: PendingAt(%q) = true, want false", p)
		}
	}
}
