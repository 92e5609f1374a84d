package sender

import (
	"slices"
	"testing"
)

// TestImpliedDirs: a list that ends after a later-numbered list set the
// same directories returns them (it set their older times last); one that
// ends first, or alone, returns none; the root is never a directory here;
// once no list is open, the record is dropped.
func TestImpliedDirs(t *testing.T) {
	type step struct {
		start  string   // name of a list to start
		finish string   // or of one to finish, with paths
		paths  []string // what it listed
		want   []string // stale directories finish returns
	}
	tests := []struct {
		name  string
		steps []step
		kept  []int // how many directories the record holds after each step (when given)
	}{
		{name: "older list ends last", steps: []step{
			{start: "a"}, {start: "b"},
			{finish: "b", paths: []string{"d/x", "e/f/y"}},
			{finish: "a", paths: []string{"d/z", "e/w", "g/v", "top"}, want: []string{"d", "e"}},
		}},
		{name: "in order", steps: []step{
			{start: "a"}, {start: "b"},
			{finish: "a", paths: []string{"d/z"}},
			{finish: "b", paths: []string{"d/x"}},
		}},
		{name: "one at a time", steps: []step{
			{start: "a"}, {finish: "a", paths: []string{"d/e/z"}},
			{start: "b"}, {finish: "b", paths: []string{"d/e/x"}},
			{start: "c"}, {finish: "c", paths: []string{"d/y"}},
		}},
		{name: "deep", steps: []step{
			{start: "a"}, {start: "b"},
			{finish: "b", paths: []string{"d/e/f/x"}},
			{finish: "a", paths: []string{"d/e/f/z", "d/e/y"}, want: []string{"d", "d/e", "d/e/f"}},
		}},
		{name: "an older list outlives a newer one: its record stays", steps: []step{
			{start: "a"}, {start: "b"},
			{finish: "b", paths: []string{"d/x"}},
			{start: "c"},
			{finish: "c", paths: []string{"e/x"}},
			{finish: "a", paths: []string{"d/y", "e/y"}, want: []string{"d", "e"}},
		}},
		{name: "records no open list is older than are dropped", steps: []step{
			{start: "a"}, {start: "b"}, {start: "c"},
			{finish: "a", paths: []string{"d/x"}}, // d set by a, older than b and c: dropped
			{start: "e"},
			{finish: "e", paths: []string{"f/x"}},
			{finish: "c", paths: []string{"d/y", "f/y"}, want: []string{"f"}},
			{finish: "b", paths: []string{"d/z"}, want: []string{"d"}},
		}, kept: []int{0, 0, 0, 0, 0, 1, 2, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d impliedDirs
			lists := make(map[string]uint64)
			for i, s := range tc.steps {
				if s.start != "" {
					lists[s.start] = d.start()
					if tc.kept != nil && len(d.landed) != tc.kept[i] {
						t.Errorf("step %d, %s starts: the record holds %v, want %d directories", i, s.start, d.landed, tc.kept[i])
					}
					continue
				}
				got := d.finish(lists[s.finish], s.paths)
				slices.Sort(got)
				if !slices.Equal(got, s.want) {
					t.Errorf("step %d, %s ends: stale %q, want %q", i, s.finish, got, s.want)
				}
				if tc.kept != nil && len(d.landed) != tc.kept[i] {
					t.Errorf("step %d, %s ends: the record holds %v, want %d directories", i, s.finish, d.landed, tc.kept[i])
				}
			}
			if len(d.open) != 0 || d.landed != nil {
				t.Errorf("with no list open: %d open, record %v, want none", len(d.open), d.landed)
			}
		})
	}
}
