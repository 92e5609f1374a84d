package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestSender_Start_aLinkedFileWrittenAnewWhileARunSendsIt: p/a and p/h
// are one file, sent in one run behind a slow file; while big is on its
// way, one of them is written anew and renamed over (another inode). rsync
// sends a group's content once, read through one name (the last, with
// rsync 3.5.0: the first row is a control), and links the others to it on
// the peer: when it reads the name written anew, the peer
// gets the new content under the other name too, while that name here
// still holds the old one. That name goes again (its group changed), and
// the peer records what the run left there without taking it for its own
// change; the members end identical. Before, it was confirmed with its
// planned state, the peer took what it held for its own change (the stress
// test, seed 34, where the writer then adopted it and lost its own), and
// here it stayed apart for good.
func TestSender_Start_aLinkedFileWrittenAnewWhileARunSendsIt(t *testing.T) {
	for _, tc := range []struct {
		name, anew, mate string
		slot             int
		port             uint16
	}{
		{"the first name written anew", "p/a", "p/h", 79, basePort + 108},
		{"the last name written anew", "p/h", "p/a", 80, basePort + 109},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			recv := peerReceiver(t, r)
			serveHandler(t, r, recv, tc.port)
			r.sender.Links = func(ino uint64, limit int) []string {
				names, err := r.idx.Links(ino, limit)
				if err != nil {
					t.Error(err)
				}
				return names
			}
			r.onBoth([]string{"p"}, nil)
			r.write(tc.mate, "the old content, linked")
			if err := os.Link(filepath.Join(r.root, tc.mate), filepath.Join(r.root, tc.anew)); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(r.slowBig(), change.Change{Path: tc.anew, Op: change.Create})
			r.start()
			r.untilInTransfer()
			tmp := filepath.Join(r.root, "p", ".new.tmp")
			if err := os.WriteFile(tmp, []byte("written anew"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(r.root, tc.anew)); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: tc.anew, Op: change.Rename, OldPath: "p/.new.tmp"})
			r.untilNothingPending()
			for p, want := range map[string]string{tc.anew: "written anew", tc.mate: "the old content, linked"} {
				if data, err := os.ReadFile(filepath.Join(r.peerRoot, p)); err != nil || string(data) != want {
					t.Errorf("%s on the peer: %q (%v), want %q", p, data, err, want)
				}
			}
			if !recordedAsItIs(t, recv, tc.mate) {
				t.Errorf("the peer does not hold %s as recorded: it takes what the run left there for a change of its own", tc.mate)
			}
		})
	}
}

// TestSender_Start_aLinkedFileChangedWhileRsyncListsTheRun: l/a and l/b,
// one file, and twenty files listed after them, made here and sent in
// one run; l/a's mode changes between rsync's look at l/a and at l/b
// (chmodWhileListed). rsync's list then hands the peer l/a's old mode for
// every later file whose mode is l/a's new one (batch.skewedBy): without
// a word, rsync's exit and itemized lines say they arrived as sent. The
// sender sends every path of such a run again, and the peer ends with
// each file's mode and mtime as here. Before, the twenty kept the wrong
// mode there (the stress test, seed 162, the fifty-first session: mtimes
// with another file's seconds).
func TestSender_Start_aLinkedFileChangedWhileRsyncListsTheRun(t *testing.T) {
	r := newRig(t, 124)
	serveReceiver(t, r, basePort+125)
	if err := os.Mkdir(filepath.Join(r.root, "l"), 0o755); err != nil {
		t.Fatal(err)
	}
	cs := []change.Change{{Path: "l/a", Op: change.Create | change.Write}, {Path: "l/b", Op: change.Create}}
	if err := os.WriteFile(filepath.Join(r.root, "l/a"), []byte("one file, two names"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(r.root, "l/a"), filepath.Join(r.root, "l/b")); err != nil {
		t.Fatal(err)
	}
	var files []string
	for i := range 20 {
		p := fmt.Sprintf("l/v%02d", i) // beside them: a directory's entry between would set both sides again
		if err := os.WriteFile(filepath.Join(r.root, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		cs = append(cs, change.Change{Path: p, Op: change.Create | change.Write})
	}
	r.journalFinished(cs...)
	r.chmodWhileListed("l/a", 0o644, "l/a", "l/b")
	r.start()
	// The chmod's event, once the run that sent l/a and l/b while it was
	// made is over (it holds them until they are journaled again); Again,
	// as the sender's index holds them as they are by then.
	r.firstReport()
	if err := r.journal.Again([]string{"peer"}, change.Attrib, []string{"l/a", "l/b"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r.sender.Wake <- struct{}{}:
	default:
	}
	r.untilNothingPending()
	for _, p := range append([]string{"l/a", "l/b"}, files...) {
		here, there := attrsOf(t, filepath.Join(r.root, p)), attrsOf(t, filepath.Join(r.peerRoot, p))
		if here != there {
			t.Errorf("%s: %s here, %s on the peer", p, here, there)
		}
	}
}

// attrsOf returns p's mode, mtime and link count, for the test to compare.
func attrsOf(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("mode %o mtime %d.%09d links %d", st.Mode, st.Mtim.Sec, st.Mtim.Nsec, st.Nlink)
}
