package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// TestSender_Start_aFileWithMoreNamesThanTheBound: a written file with more
// other names than MaxLinkNames reaches the peer as one file under all its
// names, and so does a second linked file written with it, which waits for
// a run of its own. Before, the bound cut the last names from the run:
// they kept their old content on the peer, as files of their own, for
// good.
func TestSender_Start_aFileWithMoreNamesThanTheBound(t *testing.T) {
	r := newRig(t, 48)
	many := []string{"a"}
	for i := range MaxLinkNames + 4 {
		many = append(many, fmt.Sprintf("l/%04d", i))
	}
	few := []string{"w", "w2"}
	for _, root := range []string{r.root, r.peerRoot} {
		if err := os.Mkdir(filepath.Join(root, "l"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, names := range [][]string{many, few} {
			for i, name := range names {
				p := filepath.Join(root, name)
				if i == 0 || root == r.peerRoot {
					// The peer holds each name as a file of its own.
					if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.Link(filepath.Join(root, names[0]), p); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	all := slices.Concat([]string{"l"}, many, few)
	for start := 0; start < len(all); start += 500 {
		r.settle(all[start:min(start+500, len(all))]...)
	}
	r.sender.Links = func(ino uint64, limit int) []string {
		names, err := r.idx.Links(ino, limit)
		if err != nil {
			t.Error(err)
		}
		return names
	}
	for _, name := range []string{"a", "w"} {
		if err := os.WriteFile(filepath.Join(r.root, name), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.journalFinished(change.Change{Path: "a", Op: change.Write}, change.Change{Path: "w", Op: change.Write})
	r.runUntilIdentical()
	for _, names := range [][]string{many, few} {
		inodes := r.peerInodes(names)
		if n := len(slices.Compact(slices.Sorted(slices.Values(inodes)))); n != 1 || inodes[0] == 0 {
			t.Errorf("%s's %d names are %d files on the peer, want one", names[0], len(names), n)
		}
	}
}
