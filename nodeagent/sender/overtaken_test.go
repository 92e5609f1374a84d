package sender

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

func TestOvertaken_Replayed(t *testing.T) {
	mv := func(seq uint64, old, new string) journal.LoggedRename {
		return journal.LoggedRename{Seq: seq, Old: old, New: new}
	}
	swap := []journal.LoggedRename{mv(11, "p/d", "p/t"), mv(12, "p/e", "p/d"), mv(13, "p/t", "p/e")}
	all := func(n int) []bool { return slices.Repeat([]bool{true}, n) }
	for _, tc := range []struct {
		name         string
		run          overtakenRun
		log          []journal.LoggedRename
		applied      []bool
		want         map[change.Op][]string
		wantKept     bool
		wantNewPaths []string
	}{
		{
			name: "a swap takes a path of the run through both of its renames",
			run:  overtakenRun{paths: []string{"p/d/f", "p/x"}, op: change.Attrib, after: 10},
			log:  swap, applied: all(3),
			want:     map[change.Op][]string{change.Attrib: {"p/e/f"}},
			wantKept: true, wantNewPaths: []string{"p/e/f", "p/x"},
		},
		{
			name: "a changed path goes as written",
			run:  overtakenRun{paths: []string{"p/e/f"}, op: change.Write, after: 10},
			log:  swap, applied: all(3),
			want:     map[change.Op][]string{change.Write: {"p/d/f"}},
			wantKept: true, wantNewPaths: []string{"p/d/f"},
		},
		{
			name: "renames replayed before the run pushed do not count",
			run:  overtakenRun{paths: []string{"p/d/f"}, op: change.Attrib, after: 13},
			log:  swap, applied: all(3),
			wantKept: true, wantNewPaths: []string{"p/d/f"},
		},
		{
			name: "renames logged past the grace do not count, and the run is forgotten once they are asked",
			run:  overtakenRun{paths: []string{"p/d/f"}, op: change.Attrib, after: 10, until: 11},
			log:  swap, applied: all(3),
			want:         map[change.Op][]string{change.Attrib: {"p/t/f"}},
			wantNewPaths: nil,
		},
		{
			name: "a rename the peer refused takes nothing",
			run:  overtakenRun{paths: []string{"p/d/f"}, op: change.Attrib, after: 10},
			log:  swap, applied: []bool{false, true, true},
			wantKept: true, wantNewPaths: []string{"p/d/f"},
		},
		{
			name:     "a removal ends a path",
			run:      overtakenRun{paths: []string{"p/d/f"}, op: change.Attrib, after: 10},
			log:      []journal.LoggedRename{mv(11, "p/d", "p/t"), {Seq: 12, Old: "p/t"}, mv(13, "q", "p/t")},
			applied:  all(3),
			wantKept: true, wantNewPaths: []string{""},
		},
		{
			name:     "a rename of a name beside the path, or of the path's own prefix, takes nothing",
			run:      overtakenRun{paths: []string{"p/dd/f", "p"}, op: change.Attrib, after: 10},
			log:      []journal.LoggedRename{mv(11, "p/d", "q"), mv(12, "p/dd/f/g", "h")},
			applied:  all(2),
			wantKept: true, wantNewPaths: []string{"p/dd/f", "p"},
		},
		{
			name:     "a rename of the path itself",
			run:      overtakenRun{paths: []string{"a"}, op: change.Attrib, after: 10},
			log:      []journal.LoggedRename{mv(11, "a", "b")},
			applied:  all(1),
			want:     map[change.Op][]string{change.Attrib: {"b"}},
			wantKept: true, wantNewPaths: []string{"b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := tc.run
			run.paths = slices.Clone(run.paths)
			o := &overtaken{runs: []*overtakenRun{&run}, n: len(run.paths)}
			last := tc.log[len(tc.log)-1].Seq
			got := o.replayed(tc.log, tc.applied, last)
			if !maps.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("replayed: %v, want %v", got, tc.want)
			}
			if kept := len(o.runs) == 1; kept != tc.wantKept {
				t.Fatalf("run kept: %v, want %v", kept, tc.wantKept)
			}
			if tc.wantKept && !slices.Equal(run.paths, tc.wantNewPaths) {
				t.Errorf("paths now %q, want %q", run.paths, tc.wantNewPaths)
			}
			// The same log again (a second run replays what it read
			// before the first dropped it): nothing moves twice.
			if again := o.replayed(tc.log, tc.applied, last); len(again) != 0 {
				t.Errorf("the same renames replayed again moved %v", again)
			}
		})
	}
}

func TestOvertaken_AddBoundsAndSetsUntil(t *testing.T) {
	var o overtaken
	o.add([]string{"a"}, change.Attrib, 3, time.Millisecond, func() uint64 { return 41 })
	poll.Until(t, 10*time.Second, func() error {
		o.mu.Lock()
		defer o.mu.Unlock()
		if len(o.runs) != 1 || o.runs[0].after != 3 || o.runs[0].until != 41 {
			return fmt.Errorf("run %+v; want after 3, until 41 once the grace is over", *o.runs[0])
		}
		return nil
	})
	o.add(nil, change.Attrib, 3, time.Hour, nil)
	if len(o.runs) != 1 {
		t.Errorf("a run with no paths was remembered")
	}
	big := make([]string, maxOvertaken)
	for i := range big {
		big[i] = "b"
	}
	o.add(big, change.Attrib, 3, time.Hour, func() uint64 { return 0 })
	if len(o.runs) != 1 || len(o.runs[0].paths) != maxOvertaken || o.n != maxOvertaken {
		t.Errorf("%d runs, %d paths remembered; want the oldest run forgotten past %d", len(o.runs), o.n, maxOvertaken)
	}
}
