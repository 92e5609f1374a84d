package sender

import (
	"slices"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/journal"
)

// TestKeptThere_take: a removal the peer refused as newer there is done
// without a delete when its path entry is the removal's (Seq at or below
// the logged one), in the run that replays it or a later one, and only
// once; a path changed here since (a later Seq) is deleted as it is.
func TestKeptThere_take(t *testing.T) {
	for _, tc := range []struct {
		name       string
		refused    map[string]uint64
		deletes    []journal.Entry
		kept, rest []string
		after      []string // remembered after the take
	}{
		{name: "nothing refused", deletes: []journal.Entry{{Path: "a", Seq: 3}}, rest: []string{"a"}},
		{name: "the removal's own entry",
			refused: map[string]uint64{"a": 3},
			deletes: []journal.Entry{{Path: "a", Seq: 3}, {Path: "b", Seq: 4}},
			kept:    []string{"a"}, rest: []string{"b"}},
		{name: "an entry older than the logged removal (removed, then logged again below a rename)",
			refused: map[string]uint64{"a": 7},
			deletes: []journal.Entry{{Path: "a", Seq: 5}},
			kept:    []string{"a"}},
		{name: "changed here since: deleted as it is, and forgotten",
			refused: map[string]uint64{"a": 3},
			deletes: []journal.Entry{{Path: "a", Seq: 9}},
			rest:    []string{"a"}},
		{name: "a refusal whose entry goes in a later run is remembered",
			refused: map[string]uint64{"a": 3, "later": 4},
			deletes: []journal.Entry{{Path: "a", Seq: 3}},
			kept:    []string{"a"}, after: []string{"later"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k keptThere
			for p, seq := range tc.refused {
				k.add(p, seq)
			}
			kept, rest := k.take(tc.deletes)
			if got := pathsOf(kept); !slices.Equal(got, tc.kept) {
				t.Errorf("kept %q, want %q", got, tc.kept)
			}
			if got := pathsOf(rest); !slices.Equal(got, tc.rest) {
				t.Errorf("deleted %q, want %q", got, tc.rest)
			}
			var after []string
			for p := range k.seq {
				after = append(after, p)
			}
			slices.Sort(after)
			if !slices.Equal(after, tc.after) {
				t.Errorf("remembered after the take: %q, want %q", after, tc.after)
			}
			if again, _ := k.take(tc.deletes); len(again) > 0 {
				t.Errorf("kept again by a second take: %q", pathsOf(again))
			}
		})
	}
}
