package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

// TestLstats_plan: a plan of an entry (its path and Seq) takes what
// another plan of that entry saw within lstatReuse, and looks for itself
// otherwise. Between the two plans the tree changes under the entries;
// a plan that shared the look plans as the first did, one that looked
// again plans the tree as it is.
func TestLstats_plan(t *testing.T) {
	tests := []struct {
		name string
		// entry is planned twice; between the plans, change runs and the
		// first look is made age old. second is the entry of the second plan.
		entry, second journal.Entry
		change        func(t *testing.T, root string)
		age           time.Duration
		// shared: the second plan plans as the first did.
		shared bool
	}{
		{
			name:  "the same entry: the file grew since, the first look serves",
			entry: journal.Entry{Path: "f", Op: change.Write, Seq: 5}, second: journal.Entry{Path: "f", Op: change.Write, Seq: 5},
			change: grow("f"), shared: true,
		},
		{
			name:  "journaled again (another Seq): looked at again",
			entry: journal.Entry{Path: "f", Op: change.Write, Seq: 5}, second: journal.Entry{Path: "f", Op: change.Write, Seq: 6},
			change: grow("f"),
		},
		{
			name:  "the same entry, its look older than lstatReuse: looked at again",
			entry: journal.Entry{Path: "f", Op: change.Write, Seq: 5}, second: journal.Entry{Path: "f", Op: change.Write, Seq: 5},
			change: grow("f"), age: lstatReuse,
		},
		{
			name:  "an entry with no Seq: never shared",
			entry: journal.Entry{Path: "f", Op: change.Write}, second: journal.Entry{Path: "f", Op: change.Write},
			change: grow("f"),
		},
		{
			name:  "found gone: the removal is shared",
			entry: journal.Entry{Path: "gone", Op: change.Remove, Seq: 5}, second: journal.Entry{Path: "gone", Op: change.Remove, Seq: 5},
			change: func(t *testing.T, root string) { writeFile(t, filepath.Join(root, "gone"), "back") }, shared: true,
		},
		{
			name:  "outside the root through a symlink: looked at again",
			entry: journal.Entry{Path: "out/f", Op: change.Write, Seq: 5}, second: journal.Entry{Path: "out/f", Op: change.Write, Seq: 5},
			change: func(t *testing.T, root string) {
				if err := os.Remove(filepath.Join(root, "out")); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(root, "out"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(root, "out", "f"), "in")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "f"), "1")
			if err := os.Symlink(t.TempDir(), filepath.Join(root, "out")); err != nil {
				t.Fatal(err)
			}
			rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(rootfd)

			l := new(Lstats)
			first := l.plan(rootfd, []journal.Entry{tc.entry})
			tc.change(t, root)
			for p, s := range l.cur {
				s.at = s.at.Add(-tc.age)
				l.cur[p] = s
			}
			second := l.plan(rootfd, []journal.Entry{tc.second})
			fresh := plan(rootfd, []journal.Entry{tc.second})
			want := fresh
			if tc.shared {
				want = first
			}
			if got, w := planned(second), planned(want); !slices.Equal(got, w) {
				t.Errorf("second plan %q, want %q (first %q, the tree now %q)", got, w, planned(first), planned(fresh))
			}
			if slices.Equal(planned(first), planned(fresh)) {
				t.Fatalf("the change left the plan as it was (%q): the case shows nothing", planned(fresh))
			}
		})
	}
}

// TestLstats_planConcurrently: the senders of a group plan the same
// entries at once; each gets the plan of the tree.
func TestLstats_planConcurrently(t *testing.T) {
	rootfd := rootWithFiles(t, "a", "b", "c")
	var entries []journal.Entry
	for i, name := range []string{"a", "b", "c", "gone"} {
		entries = append(entries, journal.Entry{Path: name, Op: change.Write, Seq: uint64(i + 1)})
	}
	want := planned(plan(rootfd, entries))
	l := new(Lstats)
	got := make([][]string, 3)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = planned(l.plan(rootfd, slices.Clone(entries))) })
	}
	wg.Wait()
	for i, g := range got {
		if !slices.Equal(g, want) {
			t.Errorf("sender %d planned %q, want %q", i, g, want)
		}
	}
}

// planned describes b: each send with its planned size, then each delete.
func planned(b batch) []string {
	var out []string
	for _, e := range b.sends {
		out = append(out, fmt.Sprintf("send %s %d", e.Path, b.state[e.Path].size))
	}
	for _, e := range b.deletes {
		out = append(out, "delete "+e.Path)
	}
	for _, e := range b.skipped {
		out = append(out, "skip "+e.Path)
	}
	return out
}

func grow(name string) func(t *testing.T, root string) {
	return func(t *testing.T, root string) { writeFile(t, filepath.Join(root, name), "grown") }
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
