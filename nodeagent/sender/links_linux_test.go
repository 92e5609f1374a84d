package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

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

// TestSender_Start_aWriteThroughAnotherNameReachesEveryName: a file given
// an old mtime, then two more names (one in a new directory), then written
// through the newest name: every name on the peer holds what was written
// (the write goes with the inode's other names; the stress test saw
// receivers keep the old version under the first name, with runs racing).
func TestSender_Start_aWriteThroughAnotherNameReachesEveryName(t *testing.T) {
	r := newRig(t, 53)
	r.sender.Links = func(ino uint64, limit int) []string {
		names, err := r.idx.Links(ino, limit)
		if err != nil {
			t.Error(err)
		}
		return names
	}
	wakeAndWait := func() {
		t.Helper()
		select {
		case r.sender.Wake <- struct{}{}:
		default:
		}
		r.untilNothingPending()
	}
	r.start()
	r.write("f26", "first version")
	wakeAndWait()
	old := time.Date(2016, 7, 13, 7, 8, 2, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(r.root, "f26"), old, old); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "f26", Op: change.Attrib})
	if err := os.MkdirAll(filepath.Join(r.root, "d16"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d16/h14", "#hash2"} {
		if err := os.Link(filepath.Join(r.root, "f26"), filepath.Join(r.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	r.journalFinished(change.Change{Path: "d16", Op: change.Mkdir}, change.Change{Path: "d16/h14", Op: change.Create},
		change.Change{Path: "#hash2", Op: change.Create})
	wakeAndWait()
	if err := os.WriteFile(filepath.Join(r.root, "#hash2"), []byte("written through another name"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "#hash2", Op: change.Write})
	wakeAndWait()
	for _, p := range []string{"f26", "d16/h14", "#hash2"} {
		if data, err := os.ReadFile(filepath.Join(r.peerRoot, p)); err != nil || string(data) != "written through another name" {
			t.Errorf("%s on the peer: %q, %v", p, data, err)
		}
	}
	inodes := r.peerInodes([]string{"f26", "d16/h14", "#hash2"})
	if inodes[0] != inodes[1] || inodes[1] != inodes[2] {
		t.Errorf("the three names are not one file on the peer: inodes %v", inodes)
	}
}
