package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestImpliedDirs: a list that ends after a later-numbered list set the
// same directories in another state returns them (it set their older
// times last); in the same state, or ending first, or alone, it returns
// none; the root is never one of them; records no open list is older than
// are dropped, and all once no list is open.
func TestImpliedDirs(t *testing.T) {
	type step struct {
		start  string   // a list to start, with paths
		touch  string   // or a directory whose mtime moves
		finish string   // or a list to finish
		paths  []string // what a started list lists
		want   []string // stale directories finish returns
		kept   int      // how many directories the record holds after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "older list ends last, the directories changed in between", steps: []step{
			{start: "a", paths: []string{"d/z", "e/w", "g/v", "top"}},
			{touch: "d"}, {touch: "e"},
			{start: "b", paths: []string{"d/x", "e/f/y"}},
			{finish: "b", kept: 3},
			{finish: "a", want: []string{"d", "e"}},
		}},
		{name: "older list ends last, nothing changed in between", steps: []step{
			{start: "a", paths: []string{"d/z", "e/w"}},
			{start: "b", paths: []string{"d/x", "e/y"}},
			{finish: "b", kept: 2},
			{finish: "a"},
		}},
		{name: "in order", steps: []step{
			{start: "a", paths: []string{"d/z"}},
			{touch: "d"},
			{start: "b", paths: []string{"d/x"}},
			{finish: "a"},
			{finish: "b"},
		}},
		{name: "one at a time", steps: []step{
			{start: "a", paths: []string{"d/e/z"}}, {finish: "a"},
			{touch: "d/e"},
			{start: "b", paths: []string{"d/e/x"}}, {finish: "b"},
		}},
		{name: "deep", steps: []step{
			{start: "a", paths: []string{"d/e/f/z", "d/e/y"}},
			{touch: "d"}, {touch: "d/e"}, {touch: "d/e/f"},
			{start: "b", paths: []string{"d/e/f/x"}},
			{finish: "b", kept: 3},
			{finish: "a", want: []string{"d", "d/e", "d/e/f"}},
		}},
		{name: "records no open list is older than are dropped", steps: []step{
			{start: "a", paths: []string{"d/x"}},
			{start: "b", paths: []string{"d/z"}},
			{touch: "d"}, {touch: "f"},
			{start: "c", paths: []string{"d/y", "f/y"}},
			{finish: "a"}, // d set by a, older than b and c: dropped
			{touch: "f"},
			{start: "e", paths: []string{"f/x"}},
			{finish: "e", kept: 1},
			{finish: "c", want: []string{"f"}, kept: 2},
			{finish: "b", want: []string{"d"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rootfd := rootWithFiles(t, "d/e/f/x", "e/f/x", "f/x", "g/x")
			root := filepath.Join("/proc/self/fd", fmt.Sprint(rootfd))
			var d impliedDirs
			lists := make(map[string]uint64)
			mtime := time.Unix(1_600_000_000, 0)
			for i, s := range tc.steps {
				switch {
				case s.start != "":
					lists[s.start] = d.start(rootfd, s.paths)
					continue
				case s.touch != "":
					mtime = mtime.Add(time.Second)
					if err := os.Chtimes(filepath.Join(root, s.touch), mtime, mtime); err != nil {
						t.Fatal(err)
					}
					continue
				}
				got := d.finish(lists[s.finish])
				slices.Sort(got)
				if !slices.Equal(got, s.want) {
					t.Errorf("step %d, %s ends: stale %q, want %q", i, s.finish, got, s.want)
				}
				if len(d.landed) != s.kept {
					t.Errorf("step %d, %s ends: the record holds %v, want %d directories", i, s.finish, d.landed, s.kept)
				}
			}
			if len(d.open) != 0 || d.landed != nil {
				t.Errorf("with no list open: %d open, record %v, want none", len(d.open), d.landed)
			}
		})
	}
}
