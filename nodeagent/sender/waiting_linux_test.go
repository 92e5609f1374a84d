package sender

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

// TestSender_next_aRenameDoesNotWaitForAWaitingRenameBelowItsOldName: mv
// h19 a/d21/d29/m21, then a swap of the directory a/d21 with the file
// b/c5 (mv b/c5 b/t; mv a/d21 b/c5; mv b/t a/d21), with m21's rename held
// as waiting (for its old name in flight, as it was once). The rename to
// b/c5 goes: it does not wait for m21, pending below its old name before
// it, because m21 waits itself, and now for a/d21's entry, which waits
// for the rename to b/c5 (a rename onto its old name, changed after it).
// Waiting for m21 closed that circle: every plan found the three waiting,
// and the peer never got the tree (the stress test, seed 23).
func TestSender_next_aRenameDoesNotWaitForAWaitingRenameBelowItsOldName(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/d21/d29", "b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"h19", "b/c5", "a/d21/d29/f0"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rootfd, j := openJournal(t, root)
	settle(t, j, rootfd, "h19", "a", "a/d21", "a/d21/d29", "a/d21/d29/f0", "b", "b/c5")
	mv := func(from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(root, from), filepath.Join(root, to)); err != nil {
			t.Fatal(err)
		}
		if err := j.Record(rootfd, []string{"peer"}, []change.Change{{Path: to, OldPath: from, Op: change.Rename, Finished: true}}); err != nil {
			t.Fatal(err)
		}
	}
	mv("h19", "a/d21/d29/m21")
	mv("b/c5", "b/t")
	mv("a/d21", "b/c5")
	mv("b/t", "a/d21")
	s := &Sender{Peer: "peer", Journal: j, Log: logr.Discard()}
	s.defaults()
	m21, ok, err := j.Entry("peer", "a/d21/d29/m21")
	if err != nil || !ok {
		t.Fatalf("m21's entry: %v, %v", ok, err)
	}
	s.wait([]journal.Entry{m21}, time.Now().Add(time.Hour-waitAgain))

	b, _ := s.next(rootfd)
	if !slices.Contains(pathsOf(b.renames), "b/c5") {
		t.Errorf("renames %q, waiting %q: the rename to b/c5 waits for m21, which waits itself", pathsOf(b.renames), pathsOf(b.waiting))
	}
}
