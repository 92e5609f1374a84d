package sender

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/receiver"
	"github.com/jailsync/jailsync/nodeagent/scan"
)

// serveReceiver serves a real receiver on the peer's root as the peer's
// endpoint, so that renames are applied there as the agent applies them.
func serveReceiver(t *testing.T, r *rig, port uint16) {
	t.Helper()
	serveHandler(t, r, peerReceiver(t, r), port)
}

// peerReceiver is a real receiver on the peer's root.
func peerReceiver(t *testing.T, r *rig) *receiver.Receiver {
	t.Helper()
	fd, err := unix.Open(r.peerRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	idx, err := index.Open(filepath.Join(t.TempDir(), "peer-index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return &receiver.Receiver{RootFD: fd, Index: idx, Held: &detect.Incoming{}, Log: testr.New(t)}
}

// recordingReceiver is a real receiver that also records every path
// announced to it.
type recordingReceiver struct {
	*receiver.Receiver
	mu        sync.Mutex
	announced map[string]bool
}

func (rr *recordingReceiver) Incoming(ctx context.Context, from, boot, run string, paths, over []string, replayed []peer.ReplayPos) error {
	rr.mu.Lock()
	for _, p := range paths {
		rr.announced[p] = true
	}
	rr.mu.Unlock()
	return rr.Receiver.Incoming(ctx, from, boot, run, paths, over, replayed)
}

// inodeOf returns the inode of path, 0 when it does not exist.
func inodeOf(path string) uint64 {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// onBoth makes the directories dirs and then the files files, each holding
// its own path and one fixed mtime, in this member's root and in the
// peer's, and settles them: both hold the same tree, recorded as synced.
func (r *rig) onBoth(dirs, files []string) {
	r.t.Helper()
	mtime := time.Unix(1_700_000_000, 0)
	for _, root := range []string{r.root, r.peerRoot} {
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				r.t.Fatal(err)
			}
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
				r.t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(root, f), mtime, mtime); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	r.settle(slices.Concat(dirs, files)...)
}

// numbered returns dir/f0 ... dir/f(n-1).
func numbered(dir string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s/f%d", dir, i)
	}
	return out
}

// peerInodes returns the inodes of paths on the peer (0: missing).
func (r *rig) peerInodes(paths []string) []uint64 {
	out := make([]uint64, len(paths))
	for i, p := range paths {
		out[i] = inodeOf(filepath.Join(r.peerRoot, p))
	}
	return out
}

// resent counts the paths whose inode on the peer is not before's (the
// same paths, under their old names): sent again as content, or missing.
func (r *rig) resent(before []uint64, paths []string) int {
	n := 0
	for i, got := range r.peerInodes(paths) {
		if got != before[i] {
			n++
		}
	}
	return n
}

// mvJournaled renames from to to here and journals the rename, as the
// detector does.
func (r *rig) mvJournaled(from, to string) {
	r.t.Helper()
	if err := os.Rename(filepath.Join(r.root, from), filepath.Join(r.root, to)); err != nil {
		r.t.Fatal(err)
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: to, OldPath: from, Op: change.Rename, Finished: true}}); err != nil {
		r.t.Fatal(err)
	}
}

// swapJournaled swaps a and b here through tmp (mv a tmp; mv b a; mv tmp
// b) and journals the three renames.
func (r *rig) swapJournaled(a, b, tmp string) {
	r.t.Helper()
	r.mvJournaled(a, tmp)
	r.mvJournaled(b, a)
	r.mvJournaled(tmp, b)
}

// mkdirAndMoveInto makes the directory dir (mode 0750) and moves src into
// it (mkdir n; mv d n/d), and journals both.
func (r *rig) mkdirAndMoveInto(dir, src string) {
	r.t.Helper()
	if err := os.Mkdir(filepath.Join(r.root, dir), 0o750); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(r.root, src), filepath.Join(r.root, dir, src)); err != nil {
		r.t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: dir, Op: change.Mkdir}, change.Change{Path: dir + "/" + src, OldPath: src, Op: change.Rename})
}

// runUntilIdentical starts the sender, waits until nothing is pending, and
// fails the test unless the peer's tree is this member's.
func (r *rig) runUntilIdentical() {
	r.t.Helper()
	r.start()
	r.untilIdentical()
}

// untilIdentical waits until nothing is pending, and fails the test
// unless the peer's tree is this member's.
func (r *rig) untilIdentical() {
	r.t.Helper()
	r.untilNothingPending()
	if here, there := treeOf(r.t, r.root), treeOf(r.t, r.peerRoot); !slices.Equal(here, there) {
		r.t.Errorf("the peer's tree differs:\n here:  %q\n there: %q", here, there)
	}
}

// mvDetected renames from to to here and journals what the detector
// does: the rename (Rename|Subtree for a directory) and, for a directory,
// what a scan of its new name finds (scanJournaled).
func (r *rig) mvDetected(from, to string) {
	r.t.Helper()
	if err := os.Rename(filepath.Join(r.root, from), filepath.Join(r.root, to)); err != nil {
		r.t.Fatal(err)
	}
	st, err := os.Lstat(filepath.Join(r.root, to))
	if err != nil {
		r.t.Fatal(err)
	}
	op := change.Rename
	if st.IsDir() {
		op |= change.Subtree
	}
	r.journalFinished(change.Change{Path: to, OldPath: from, Op: op})
	if st.IsDir() {
		r.scanJournaled(to)
	}
}

// scanJournaled journals what a scan of dir finds against the index, as
// the detector does after a directory's rename. The rig's index must
// hold the root's identity (scannable).
func (r *rig) scanJournaled(dir string) {
	r.t.Helper()
	sc := &scan.Scanner{Root: r.root, Index: r.idx}
	out := make(chan change.Change, 1024)
	if _, err := sc.Scan(context.Background(), dir, out); err != nil {
		r.t.Fatal(err)
	}
	close(out)
	var cs []change.Change
	for c := range out {
		cs = append(cs, c)
	}
	r.journalFinished(cs...)
}

// scannable records the rig's root in its index, still empty, as the agent
// does at start: a scan compares only a root the index knows.
func (r *rig) scannable() {
	r.t.Helper()
	if err := r.idx.CheckRoot(r.root); err != nil {
		r.t.Fatal(err)
	}
}

// journalFinished journals cs for the peer, each finished, as the
// detector does.
func (r *rig) journalFinished(cs ...change.Change) {
	r.t.Helper()
	for i := range cs {
		cs[i].Finished = true
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, cs); err != nil {
		r.t.Fatal(err)
	}
}

// journalFound journals paths as a scan of a renamed directory finds
// them (made, Found).
func (r *rig) journalFound(paths ...string) {
	r.t.Helper()
	cs := make([]change.Change, len(paths))
	for i, p := range paths {
		cs[i] = change.Change{Path: p, Op: change.Create | change.Found}
	}
	r.journalFinished(cs...)
}

// noneResent fails the test unless each of paths keeps on the peer the
// inode that before holds for it under its old name.
func (r *rig) noneResent(before []uint64, paths []string) {
	r.t.Helper()
	if n := r.resent(before, paths); n != 0 {
		r.t.Errorf("%d of %d files sent again (or missing) on the peer, instead of renamed", n, len(paths))
	}
}

// TestSender_Start_aRenameIntoADirectoryMadeInTheSameRun: mkdir n; mv d
// n/d, both in one run. The peer applies the rename (its files keep their
// inodes: nothing is sent again) into the directory made there first.
// Before, it refused the rename (no directory n yet), and every file of d
// went again as content.
func TestSender_Start_aRenameIntoADirectoryMadeInTheSameRun(t *testing.T) {
	const files = 10
	r := newRig(t, 27)
	serveReceiver(t, r, basePort+58)
	r.onBoth([]string{"d"}, numbered("d", files))
	before := r.peerInodes(numbered("d", files))
	r.mkdirAndMoveInto("n", "d")
	r.start()
	r.untilNothingPending()
	if _, err := os.Lstat(filepath.Join(r.peerRoot, "d")); err == nil {
		t.Error("d is still on the peer")
	}
	if st, err := os.Stat(filepath.Join(r.peerRoot, "n")); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("n on the peer: %v, %v; want a directory of mode 0750", st, err)
	}
	if resent := r.resent(before, numbered("n/d", files)); resent != 0 {
		t.Errorf("%d of %d files of d sent again (or missing) on the peer, instead of renamed into n", resent, files)
	}
}

// treeOf lists the names below root (relative, sorted), each with its type
// and, for a regular file, its content (its size and hash beyond 64 bytes).
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || rel == ".jailsync" && d.IsDir() {
			if rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			out = append(out, rel+"/")
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(data) > 64 {
				data = fmt.Appendf(nil, "%d bytes, sha256 %x", len(data), sha256.Sum256(data))
			}
			out = append(out, rel+"="+string(data))
		default:
			out = append(out, rel+" ("+d.Type().String()+")")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSender_Start_aRenamedTreesOldNameMadeAgain: a directory renamed, and
// its old name made again as a directory, where the peer does not get the
// rename (refused there, or never asked, the new name being gone here too)
// keeps the old tree there under the old name: pushed with --dirs, the
// peer's directory keeps its entries. The sender deletes there, by name,
// what the renamed tree had and the new directory does not, and the peer
// ends with this member's tree. Before, the old files stayed on the peer
// for good.
func TestSender_Start_aRenamedTreesOldNameMadeAgain(t *testing.T) {
	mv := func(r *rig, from, to string) {
		r.t.Helper()
		if err := os.Rename(filepath.Join(r.root, from), filepath.Join(r.root, to)); err != nil {
			r.t.Fatal(err)
		}
	}
	mkdir := func(r *rig, p string) {
		r.t.Helper()
		if err := os.MkdirAll(filepath.Join(r.root, p), 0o755); err != nil {
			r.t.Fatal(err)
		}
	}
	rmAll := func(r *rig, p string) {
		r.t.Helper()
		if err := os.RemoveAll(filepath.Join(r.root, p)); err != nil {
			r.t.Fatal(err)
		}
	}
	removals := func(paths ...string) []change.Change {
		var cs []change.Change
		for _, p := range paths {
			cs = append(cs, change.Change{Path: p, Op: change.Remove})
		}
		return cs
	}
	oldTree := []string{"d/f0", "d/f1", "d/sub/g", "d/keep"}
	// mv d e; mkdir d; rm -r e, journaled after all three, or each as it
	// happens.
	journaledAfter := func(r *rig) {
		mv(r, "d", "e")
		mkdir(r, "d")
		rmAll(r, "e")
		r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename}, change.Change{Path: "d", Op: change.Mkdir})
	}
	asTheyHappen := func(r *rig) {
		mv(r, "d", "e")
		r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
		mkdir(r, "d")
		r.journalFinished(change.Change{Path: "d", Op: change.Mkdir})
		rmAll(r, "e")
		r.journalFinished(removals("e/f0", "e/f1", "e/sub/g", "e/sub", "e/keep", "e")...)
	}
	for _, tc := range []struct {
		name   string
		slot   int
		port   uint16
		refuse bool
		// batchFiles bounds the runs (0: the default), below the old
		// tree's size.
		batchFiles int
		do         func(r *rig)
	}{
		{"mv d e; mkdir d; rm -r e, journaled after", 28, basePort + 59, false, 0, journaledAfter},
		{"mv d e; mkdir d; rm -r e, journaled as they happen", 29, basePort + 60, false, 0, asTheyHappen},
		{"mv d e; mkdir -p d/sub; a file of the old name written again; rm -r e", 30, basePort + 61, false, 0, func(r *rig) {
			mv(r, "d", "e")
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
			mkdir(r, "d/sub")
			if err := os.WriteFile(filepath.Join(r.root, "d/keep"), []byte("new keep"), 0o644); err != nil {
				r.t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "d", Op: change.Mkdir}, change.Change{Path: "d/sub", Op: change.Mkdir},
				change.Change{Path: "d/keep", Op: change.Create | change.Write})
			rmAll(r, "e")
			r.journalFinished(removals("e/f0", "e/f1", "e/sub/g", "e/sub", "e/keep", "e")...)
		}},
		{"rm d/f0; mv d e; mkdir d; echo > d/f0", 42, basePort + 73, false, 0, func(r *rig) {
			rmAll(r, "d/f0")
			r.journalFinished(removals("d/f0")...)
			mv(r, "d", "e")
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
			mkdir(r, "d")
			if err := os.WriteFile(filepath.Join(r.root, "d/f0"), []byte("new f0"), 0o644); err != nil {
				r.t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "d", Op: change.Mkdir}, change.Change{Path: "d/f0", Op: change.Create | change.Write})
			var found []change.Change
			for _, p := range []string{"e/f1", "e/sub", "e/sub/g", "e/keep"} {
				found = append(found, change.Change{Path: p, Op: change.Create | change.Found})
			}
			r.journalFinished(found...)
		}},
		// The removals below e not read yet when the run is planned (the
		// detector reads them after the rename and the mkdir): what the
		// index still holds below e names the old tree.
		{"mv d e; mkdir d; rm -r e, the removals not read yet", 47, basePort + 78, false, 0, func(r *rig) {
			mv(r, "d", "e")
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
			mkdir(r, "d")
			r.journalFinished(change.Change{Path: "d", Op: change.Mkdir})
			rmAll(r, "e")
		}},
		{"mv d e; rm -r e, journaled, then mkdir d", 41, basePort + 72, false, 0, func(r *rig) {
			mv(r, "d", "e")
			rmAll(r, "e")
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
			mkdir(r, "d")
			r.journalFinished(change.Change{Path: "d", Op: change.Mkdir})
		}},
		// The old tree larger than a run takes: the removals below e
		// that the first run leaves out are still pending.
		{"mv d e; mkdir d; rm -r e, journaled as they happen, two paths a run", 49, basePort + 79, false, 2, asTheyHappen},
		{"mv d e; mkdir d; rm -r e, journaled after, two paths a run", 50, basePort + 80, false, 2, journaledAfter},
		{"mv d e; mkdir d, the rename refused", 31, basePort + 62, true, 0, func(r *rig) {
			mv(r, "d", "e")
			mkdir(r, "d")
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename}, change.Change{Path: "d", Op: change.Mkdir})
			var found []change.Change
			for _, p := range []string{"e/f0", "e/f1", "e/sub", "e/sub/g", "e/keep"} {
				found = append(found, change.Change{Path: p, Op: change.Create | change.Found})
			}
			r.journalFinished(found...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			r.sender.BatchFiles = tc.batchFiles
			if tc.refuse {
				serveEndpoint(t, r, &announcements{incoming: map[string]int{}}, tc.port)
			} else {
				serveReceiver(t, r, tc.port)
			}
			r.onBoth([]string{"d", "d/sub"}, oldTree)
			tc.do(r)
			r.runUntilIdentical()
		})
	}
}

// TestSender_Start_aSwapOfTwoDirectories: mv d t; mv e d; mv t e, each
// journaled as it happens, then what the scans of the renamed directories
// find, all in one run, against the real receiver (which refuses the
// renames: their new names are taken there). The peer ends with this
// member's trees under both names. Before, each name kept the other's old
// entries beside its new ones there.
func TestSender_Start_aSwapOfTwoDirectories(t *testing.T) {
	r := newRig(t, 32)
	serveReceiver(t, r, basePort+63)
	r.onBoth([]string{"d", "e"}, []string{"d/f0", "d/f1", "d/f2", "d/f3", "e/g0", "e/g1"})
	r.mvJournaled("d", "t")
	r.mvJournaled("e", "d")
	r.mvJournaled("t", "e")
	// What the detector's scan of each renamed directory finds in it (a
	// directory renamed comes with a scan of it, detect's Subtree).
	var found []change.Change
	for _, dir := range []string{"d", "e"} {
		ents, err := os.ReadDir(filepath.Join(r.root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			found = append(found, change.Change{Path: dir + "/" + ent.Name(), Op: change.Create | change.Found, Finished: true})
		}
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, found); err != nil {
		t.Fatal(err)
	}
	r.runUntilIdentical()
}

// TestSender_Start_aRemovalBelowARenamesOldNameLeftBehindTheBatch: rm e;
// rm d/f0; mv d e, where e's entry keeps its earlier place in the journal
// (its first change, the removal of a file e that the peer never had) and
// the batch's bounds (one path a batch; a large file) leave d/f0's removal
// behind. The rename waits for it, and e/f0 is gone on the peer too.
// Before, the peer renamed d first, the removal of d/f0 then found
// nothing, and the peer kept e/f0 for good.
func TestSender_Start_aRemovalBelowARenamesOldNameLeftBehindTheBatch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		slot       int
		port       uint16
		batchFiles int
		large      bool
	}{
		{"one path a batch", 33, basePort + 64, 1, false},
		{"a large file closes the batch", 34, basePort + 65, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			serveReceiver(t, r, tc.port)
			r.sender.BatchFiles = tc.batchFiles
			r.onBoth([]string{"d"}, numbered("d", 4))
			if err := os.WriteFile(filepath.Join(r.root, "e"), []byte("short-lived"), 0o644); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "e", Op: change.Create | change.Write})
			if tc.large {
				if err := os.WriteFile(filepath.Join(r.root, "large"), make([]byte, largeFileThreshold+1), 0o644); err != nil {
					t.Fatal(err)
				}
				r.journalFinished(change.Change{Path: "large", Op: change.Create | change.Write})
			}
			if err := os.Remove(filepath.Join(r.root, "e")); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "e", Op: change.Remove})
			if err := os.Remove(filepath.Join(r.root, "d/f0")); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "d/f0", Op: change.Remove})
			if err := os.Rename(filepath.Join(r.root, "d"), filepath.Join(r.root, "e")); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
			r.runUntilIdentical()
		})
	}
}

// TestSender_Start_aDirectoryChangedBeforeItsRenameIsNotResent: chmod d
// (or d/s) and a file made in it, then mv d e, all pending in one run
// with what the scan of e finds: the peer applies the rename, keeps the
// files' inodes (nothing is sent again), and ends with the new mode.
// Before, the pending chmod's path, gone here, was deleted on the peer
// with its whole tree, and every file went again as content.
func TestSender_Start_aDirectoryChangedBeforeItsRenameIsNotResent(t *testing.T) {
	const files = 10
	for _, tc := range []struct {
		name    string
		slot    int
		port    uint16
		chmoded string // below d
	}{
		{"chmod d", 35, basePort + 66, ""},
		{"chmod d/s", 36, basePort + 67, "/s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			serveReceiver(t, r, tc.port)
			r.onBoth([]string{"d", "d/s"}, numbered("d/s", files))
			before := r.peerInodes(numbered("d/s", files))
			if err := os.Chmod(filepath.Join(r.root, "d"+tc.chmoded), 0o750); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "d" + tc.chmoded, Op: change.Attrib})
			if err := os.WriteFile(filepath.Join(r.root, "d/s/new"), []byte("new"), 0o644); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "d/s/new", Op: change.Create | change.Write})
			if err := os.Rename(filepath.Join(r.root, "d"), filepath.Join(r.root, "e")); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
			// What the detector's scan of the renamed directory finds.
			found := []change.Change{{Path: "e/s", Op: change.Mkdir | change.Found}, {Path: "e/s/new", Op: change.Create | change.Found}}
			for i := range files {
				found = append(found, change.Change{Path: fmt.Sprintf("e/s/f%d", i), Op: change.Create | change.Found})
			}
			r.journalFinished(found...)
			r.runUntilIdentical()
			if st, err := os.Stat(filepath.Join(r.peerRoot, "e"+tc.chmoded)); err != nil || st.Mode().Perm() != 0o750 {
				t.Errorf("e%s on the peer: %v, %v; want mode 0750", tc.chmoded, st, err)
			}
			r.noneResent(before, numbered("e/s", files))
		})
	}
}

// TestSender_Start_aChainOfRenames: mv d e; mv e f, both pending in one
// run: the peer replays d -> e -> f and keeps the files' inodes (nothing
// is sent again). Where the peer holds a full e (a file there that this
// member never had: rename(2) would not have replaced that directory
// here either), it refuses d -> e, and e -> f with it; d goes there
// (nothing in it changed there), e is deleted there, as it is gone here,
// and the files go as content.
func TestSender_Start_aChainOfRenames(t *testing.T) {
	const files = 10
	for _, tc := range []struct {
		name     string
		slot     int
		port     uint16
		peerFull bool // the peer holds e/sub/x
	}{
		{"the peer holds d", 37, basePort + 68, false},
		{"the peer holds d, and a full e", 56, basePort + 84, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			serveReceiver(t, r, tc.port)
			r.onBoth([]string{"d"}, numbered("d", files))
			before := r.peerInodes(numbered("d", files))
			if tc.peerFull {
				if err := os.MkdirAll(filepath.Join(r.peerRoot, "e/sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(r.peerRoot, "e/sub/x"), []byte("not here"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r.mvJournaled("d", "e")
			r.mvJournaled("e", "f")
			r.journalFound(numbered("f", files)...)
			r.runUntilIdentical()
			if tc.peerFull {
				if resent := r.resent(before, numbered("f", files)); resent != files {
					t.Errorf("%d of %d files sent again; want all (the peer refused the renames)", resent, files)
				}
				return
			}
			r.noneResent(before, numbered("f", files))
		})
	}
}

// TestSender_Start_aNameRenamedOutOfARefusedRenamesTree: mv d e; mv e/s y;
// mkdir d, where the peer refuses d -> e (it holds an e of its own, with
// z changed there and not sent yet), and e/s -> y with it: the peer
// removes its old tree at d, s among it, as it holds it as sent and
// nothing in it changed there (receiver.Receiver.Replay); e and y go as
// content, and the peer keeps its own e/z. Before, the peer kept d/s for
// good (the stress test).
func TestSender_Start_aNameRenamedOutOfARefusedRenamesTree(t *testing.T) {
	r := newRig(t, 57)
	rcv := peerReceiver(t, r)
	rcv.Pending = func(rel string) bool { return rel == "e" || rel == "e/z" }
	serveHandler(t, r, rcv, basePort+85)
	r.onBoth([]string{"d"}, []string{"d/a", "d/s"})
	heldOnPeer(t, rcv, "d", "d/a", "d/s")
	if err := os.Mkdir(filepath.Join(r.peerRoot, "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.peerRoot, "e/z"), []byte("changed there"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mvJournaled("d", "e")
	r.mvJournaled("e/s", "y")
	r.journalFound("e/a") // the detector's scan of the renamed tree, after s left
	if err := os.Mkdir(filepath.Join(r.root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "d", Op: change.Mkdir})
	r.start()
	r.untilNothingPending()
	here, there := treeOf(t, r.root), treeOf(t, r.peerRoot)
	if want := slices.Insert(here, slices.Index(here, "e/a=d/a")+1, "e/z=changed there"); !slices.Equal(there, want) {
		t.Errorf("the peer's tree differs:\n want:  %q\n there: %q", want, there)
	}
}

// heldOnPeer records paths, on the peer, in its receiver's index: sent
// there and settled, as a real peer holds them.
func heldOnPeer(t *testing.T, rcv *receiver.Receiver, paths ...string) {
	t.Helper()
	if err := rcv.Index.Update(func(tx *index.Tx) error {
		for _, p := range paths {
			if err := tx.Record(rcv.RootFD, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSender_Start_aChainThroughANameBelowAFileNow: mv a d/x; mv d/x c;
// then d becomes a file: the chain is joined (d/x is gone here, though
// lstat says ENOTDIR, not ENOENT) and the peer renames a to c, keeping its
// inode. Before, it was asked for d/x -> c, refused it, and kept a for
// good (the stress test).
func TestSender_Start_aChainThroughANameBelowAFileNow(t *testing.T) {
	r := newRig(t, 58)
	serveReceiver(t, r, basePort+86)
	r.onBoth([]string{"d"}, []string{"a"})
	before := r.peerInodes([]string{"a"})
	r.mvJournaled("a", "d/x")
	r.mvJournaled("d/x", "c")
	if err := os.Remove(filepath.Join(r.root, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "d"), []byte("a file now"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "d", Op: change.Rmdir | change.Create | change.Write})
	r.runUntilIdentical()
	if after := r.peerInodes([]string{"c"}); after[0] != before[0] {
		t.Errorf("c on the peer is inode %d, a was %d: sent again instead of renamed", after[0], before[0])
	}
}

// TestSender_Start_aRenameAboveALaterRenamesOldName: mv s d; mv t s; mv
// s/sub/x m; rm m. The last rename's old name s/sub/x is deleted on the
// peer (its new name is gone here), a deletion below the first rename's
// old name s, made for a rename journaled after it: the first rename does
// not wait for it, and the first s's files reach d by the rename. Before,
// the first rename waited for that deletion, the last waited for the
// first (its old name is below the first's), so the deletion was never
// made, and both waited at every plan with every entry behind them: the
// writer kept them pending for good (the stress test).
func TestSender_Start_aRenameAboveALaterRenamesOldName(t *testing.T) {
	r := newRig(t, 59)
	serveReceiver(t, r, basePort+87)
	r.onBoth([]string{"s", "s/sub", "t", "t/sub"}, []string{"s/a", "s/sub/x", "t/sub/x", "t/sub/y"})
	before := r.peerInodes([]string{"s/a", "s/sub/x"})
	r.mvJournaled("s", "d")
	r.journalFound("d/a", "d/sub", "d/sub/x")
	r.mvJournaled("t", "s")
	r.mvJournaled("s/sub/x", "m")
	r.journalFound("s/sub", "s/sub/y") // the scan of the renamed tree, after x left
	if err := os.Remove(filepath.Join(r.root, "m")); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "m", Op: change.Remove})
	r.runUntilIdentical()
	r.noneResent(before, []string{"d/a", "d/sub/x"})
}

// TestSender_Start_aChangedFileRenamedIntoATreeRemovedSince: chmod a; mv a
// d/b; rm -r d. The chmod of a, gone here, went with the rename (it is
// confirmed without a run), and the rename, whose new name is gone, never
// reaches the peer: a is deleted there as the rename's old name. Before,
// the chmod's entry stood for the deletion, and the peer kept a for good
// (the stress test).
func TestSender_Start_aChangedFileRenamedIntoATreeRemovedSince(t *testing.T) {
	r := newRig(t, 60)
	serveReceiver(t, r, basePort+88)
	r.onBoth([]string{"d"}, []string{"a", "d/x"})
	if err := os.Chmod(filepath.Join(r.root, "a"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "a", Op: change.Attrib})
	r.mvJournaled("a", "d/b")
	if err := os.RemoveAll(filepath.Join(r.root, "d")); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "d/b", Op: change.Remove}, change.Change{Path: "d/x", Op: change.Remove}, change.Change{Path: "d", Op: change.Rmdir})
	r.runUntilIdentical()
}

// TestSender_Start_aChainRemovedSinceDeletesItsMiddleName: mv m h; mv h g;
// rm -r g, where the peer also holds a file h (a name whose own rename it
// had refused, kept as it was: the stress test's h24). The joined chain's
// new name is gone, so the peer gets deletions: m, its first old name,
// and h, the name it went through. Before, only m was deleted there, and
// the peer kept h for good.
func TestSender_Start_aChainRemovedSinceDeletesItsMiddleName(t *testing.T) {
	r := newRig(t, 61)
	serveReceiver(t, r, basePort+89)
	r.onBoth([]string{"m"}, []string{"m/x"})
	if err := os.WriteFile(filepath.Join(r.peerRoot, "h"), []byte("kept after a refused rename"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mvJournaled("m", "h")
	r.mvJournaled("h", "g")
	if err := os.RemoveAll(filepath.Join(r.root, "g")); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "g/x", Op: change.Remove}, change.Change{Path: "g", Op: change.Rmdir})
	r.runUntilIdentical()
}

// TestSender_Start_aRenamesOldDirectoryKeepsItsTimes: mv a/f b/f, applied
// on the peer, which moves its a's mtime on (the rename there comes after
// the one here): the run sets a's times as they are here, as it does for
// b, the directory above the renamed path it pushes. Before, a kept the
// peer's own mtime for good (the stress test: directories whose mtimes
// differed after every phase that renamed files out of them).
func TestSender_Start_aRenamesOldDirectoryKeepsItsTimes(t *testing.T) {
	r := newRig(t, 62)
	serveReceiver(t, r, basePort+90)
	r.onBoth([]string{"a", "b"}, []string{"a/f", "a/g"})
	r.mvJournaled("a/f", "b/f")
	old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, d := range []string{"a", "b"} {
		if err := os.Chtimes(filepath.Join(r.root, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	r.runUntilIdentical()
	for _, d := range []string{"a", "b"} {
		st, err := os.Stat(filepath.Join(r.peerRoot, d))
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(old) {
			t.Errorf("%s on the peer: mtime %v, want %v as here", d, st.ModTime(), old)
		}
	}
}

// TestSender_Start_renamesThatMustNotBeJoined: renames that look like a
// chain but are not one, or a chain the peer went part of the way along,
// end with the peer holding this member's tree: the later rename first
// (mv e f; mv d e; rm e), and a chain whose first rename the peer applied
// without this member hearing of it (it holds e, not d).
func TestSender_Start_renamesThatMustNotBeJoined(t *testing.T) {
	for _, tc := range []struct {
		name        string
		slot        int
		port        uint16
		dirs, files []string
		do          func(r *rig)
	}{
		{"mv e f; mv d e; rm e, files", 38, basePort + 69, nil, []string{"d", "e"}, func(r *rig) {
			r.mvJournaled("e", "f")
			r.mvJournaled("d", "e")
			if err := os.Remove(filepath.Join(r.root, "e")); err != nil {
				r.t.Fatal(err)
			}
			if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "e", Op: change.Remove, Finished: true}}); err != nil {
				r.t.Fatal(err)
			}
		}},
		{"mv e f; mv d e; rm -r e, directories", 39, basePort + 70, []string{"d", "e"}, []string{"d/a", "e/b"}, func(r *rig) {
			r.mvJournaled("e", "f")
			r.mvJournaled("d", "e")
			if err := os.RemoveAll(filepath.Join(r.root, "e")); err != nil {
				r.t.Fatal(err)
			}
			if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "e/a", Op: change.Remove, Finished: true}, {Path: "e", Op: change.Remove, Finished: true}}); err != nil {
				r.t.Fatal(err)
			}
			if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "f/b", Op: change.Create | change.Found, Finished: true}}); err != nil {
				r.t.Fatal(err)
			}
		}},
		{"mv d e; mv e f, the peer applied d -> e already", 40, basePort + 71, []string{"d"}, []string{"d/a"}, func(r *rig) {
			if err := os.Rename(filepath.Join(r.peerRoot, "d"), filepath.Join(r.peerRoot, "e")); err != nil {
				r.t.Fatal(err)
			}
			r.mvJournaled("d", "e")
			r.mvJournaled("e", "f")
			if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "f/a", Op: change.Create | change.Found, Finished: true}}); err != nil {
				r.t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			serveReceiver(t, r, tc.port)
			r.onBoth(tc.dirs, tc.files)
			tc.do(r)
			r.runUntilIdentical()
		})
	}
}

// TestSender_Start_aChainsThroughNameIsAnnounced: mv d e; mv e f, asked
// of the peer as d -> f, where the peer applied d -> e already (it holds
// e, not d): the run deletes e there, so e is announced with it. Not
// announced, the peer's own detector read e's deletion as a change of its
// own and sent it to every member, where a new e made meanwhile would go.
func TestSender_Start_aChainsThroughNameIsAnnounced(t *testing.T) {
	r := newRig(t, 51)
	rec := &recordingReceiver{Receiver: peerReceiver(t, r), announced: map[string]bool{}}
	serveHandler(t, r, rec, basePort+81)
	r.onBoth([]string{"d"}, []string{"d/a"})
	if err := os.Rename(filepath.Join(r.peerRoot, "d"), filepath.Join(r.peerRoot, "e")); err != nil {
		t.Fatal(err)
	}
	r.mvJournaled("d", "e")
	r.mvJournaled("e", "f")
	r.journalFound("f/a")
	r.runUntilIdentical()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !rec.announced["e"] {
		t.Errorf("e, deleted on the peer by the joined rename d -> f, was not announced; announced: %v", rec.announced)
	}
}

// TestSender_Start_aTwoStepRenameReadAfterBoth: mv d t; mv t e, both read
// after the second (a script renaming through a temporary name): the peer
// is asked for d -> e and keeps the files' inodes. The journal records,
// with the first rename, the removals of d's names (its tree was gone from
// t already); compared with the joined rename's own sequence number, they
// came before it and made it wait, the peer's d lost its files, and the
// tree went again (in about one run in three, as the runs fell). They are
// compared with the first rename's (batch.firstSeq).
func TestSender_Start_aTwoStepRenameReadAfterBoth(t *testing.T) {
	const files = 10
	r := newRig(t, 43)
	serveReceiver(t, r, basePort+74)
	r.onBoth([]string{"d"}, numbered("d", files))
	before := r.peerInodes(numbered("d", files))
	for _, mv := range [][2]string{{"d", "t"}, {"t", "e"}} {
		if err := os.Rename(filepath.Join(r.root, mv[0]), filepath.Join(r.root, mv[1])); err != nil {
			t.Fatal(err)
		}
	}
	// One at a time, as the detector reads them.
	r.journalFinished(change.Change{Path: "t", OldPath: "d", Op: change.Rename})
	r.journalFinished(change.Change{Path: "e", OldPath: "t", Op: change.Rename})
	r.journalFound(numbered("e", files)...)
	r.runUntilIdentical()
	r.noneResent(before, numbered("e", files))
}

// TestSender_Start_aFileChangedBeforeItsDirectorysRenameAndMadeAgain: rm
// d/f0 (or a write of it), mv d e, mkdir d and d/f0 written again, where
// d/f0's entry and the rename go in different runs (one path a batch, or
// a large file between them). The journal moves d/f0's entry behind the
// rename, and journals e/f0's removal where d/f0's held one: the peer
// renames first, d/f0 goes into the new d, and e ends as here. Before,
// d/f0 went into the peer's old d, the rename took it to e/f0, and the
// peer ended without d/f0 and with an e/f0 this member does not hold (or
// holds otherwise). Found by the session's second review.
func TestSender_Start_aFileChangedBeforeItsDirectorysRenameAndMadeAgain(t *testing.T) {
	for _, tc := range []struct {
		name       string
		slot       int
		port       uint16
		batchFiles int
		write      bool // d/f0 written before the rename, not removed
		large      bool
	}{
		{"removed, one path a batch", 44, basePort + 75, 1, false, false},
		{"written, one path a batch", 45, basePort + 76, 1, true, false},
		{"removed, a large file between", 46, basePort + 77, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			serveReceiver(t, r, tc.port)
			r.sender.BatchFiles = tc.batchFiles
			r.onBoth([]string{"d"}, numbered("d", 3))
			found := []change.Change{{Path: "e/f1", Op: change.Create | change.Found}, {Path: "e/f2", Op: change.Create | change.Found}}
			if tc.write {
				if err := os.WriteFile(filepath.Join(r.root, "d/f0"), []byte("v1"), 0o644); err != nil {
					t.Fatal(err)
				}
				r.journalFinished(change.Change{Path: "d/f0", Op: change.Write})
				found = append(found, change.Change{Path: "e/f0", Op: change.Create | change.Found})
			} else {
				if err := os.Remove(filepath.Join(r.root, "d/f0")); err != nil {
					t.Fatal(err)
				}
				r.journalFinished(change.Change{Path: "d/f0", Op: change.Remove})
			}
			if tc.large {
				if err := os.WriteFile(filepath.Join(r.root, "large"), make([]byte, largeFileThreshold+1), 0o644); err != nil {
					t.Fatal(err)
				}
				r.journalFinished(change.Change{Path: "large", Op: change.Create | change.Write})
			}
			if err := os.Rename(filepath.Join(r.root, "d"), filepath.Join(r.root, "e")); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "e", OldPath: "d", Op: change.Rename})
			if err := os.Mkdir(filepath.Join(r.root, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(r.root, "d/f0"), []byte("v2"), 0o644); err != nil {
				t.Fatal(err)
			}
			r.journalFinished(change.Change{Path: "d", Op: change.Mkdir}, change.Change{Path: "d/f0", Op: change.Create | change.Write})
			r.journalFinished(found...)
			r.runUntilIdentical()
		})
	}
}

// replayHookReceiver is a real receiver that runs hook before it replays
// renames.
type replayHookReceiver struct {
	*receiver.Receiver
	hook func()
}

func (rr *replayHookReceiver) Replay(ctx context.Context, from string, req peer.ReplayRequest) peer.RenameResponse {
	rr.hook()
	return rr.Receiver.Replay(ctx, from, req)
}

// TestSender_Start_aDirectoryMadeForARenameIsConfirmed: mkdir n; mv d n/d,
// and n is renamed away here as the run replays the rename, which makes
// n on the peer: the push no longer sends n, and the peer records n with
// the replay (receiver: the directories made for a replayed rename).
// Before, the peer took the directory made for the rename for its own
// and sent it to every member (the stress test).
func TestSender_Start_aDirectoryMadeForARenameIsConfirmed(t *testing.T) {
	r := newRig(t, 55)
	recv := &replayHookReceiver{Receiver: peerReceiver(t, r)}
	ran := false
	recv.hook = func() {
		if ran {
			return
		}
		ran = true
		if err := os.Rename(filepath.Join(r.root, "n"), filepath.Join(r.root, "elsewhere")); err != nil {
			t.Error(err)
		}
	}
	serveHandler(t, r, recv, basePort+83)
	r.onBoth([]string{"d"}, numbered("d", 2))
	r.mkdirAndMoveInto("n", "d")
	r.start()
	run := r.firstReport()
	if _, err := os.Stat(filepath.Join(r.peerRoot, "n")); err != nil {
		t.Fatalf("the test's premise: the run made n on the peer for the rename (%v); problems %v", err, run.Problems)
	}
	if !ran {
		t.Fatal("the test's premise: the run replayed the rename (the hook did not run)")
	}
	if !recordedAsItIs(t, recv.Receiver, "n") {
		t.Error("the peer does not hold n as recorded: it takes the directory the run made for a change of its own")
	}
}

// TestSender_Start_aRenameIntoADirectoryASymlinkReplacedSince: mv a d/m;
// mv d e; ln -s e d. The rename's new name now passes through a symlink
// here, so it is never listed, but its old name a is gone here and is
// deleted on the peer (e/m goes as the scan of the renamed tree found it).
// Before, the entry was confirmed as unlistable and the peer kept a for
// good (the stress test, seed 5: f27).
func TestSender_Start_aRenameIntoADirectoryASymlinkReplacedSince(t *testing.T) {
	r := newRig(t, 64)
	serveReceiver(t, r, basePort+91)
	r.onBoth([]string{"d"}, []string{"a", "d/x"})
	r.mvJournaled("a", "d/m")
	r.mvJournaled("d", "e")
	if err := os.Symlink("e", filepath.Join(r.root, "d")); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "d", Op: change.Create},
		// The detector's scan of the renamed tree (Subtree).
		change.Change{Path: "e/m", Op: change.Create | change.Write | change.Found},
		change.Change{Path: "e/x", Op: change.Create | change.Write | change.Found})
	r.runUntilIdentical()
}

// TestSender_Start_twoDirectoriesSwapped: mv c/d c/t; mv x/e c/d; mv c/t
// x/e, in one batch, each directory's tree found by the scan of its new
// name: the peer ends with the two trees swapped and nothing of either
// left under the other's name.
func TestSender_Start_twoDirectoriesSwapped(t *testing.T) {
	r := newRig(t, 65)
	serveReceiver(t, r, basePort+92)
	r.onBoth([]string{"c", "c/d", "x", "x/e", "x/e/d7"}, []string{"c/d/a", "c/d/b"})
	r.mvJournaled("c/d", "c/t")
	r.mvJournaled("x/e", "c/d")
	r.mvJournaled("c/t", "x/e")
	r.journalFound("c/d/d7", "x/e/a", "x/e/b")
	r.runUntilIdentical()
}

// TestSender_Start_twoDirectoriesSwappedReadInTwoParts: a swap of two
// directories (mv c/d c/t; mv x/e c/d; mv c/t x/e) whose first rename is
// planned alone, after the whole swap was done here (its other renames
// not journaled yet).
func TestSender_Start_twoDirectoriesSwappedReadInTwoParts(t *testing.T) {
	r := newRig(t, 66)
	serveReceiver(t, r, basePort+93)
	r.onBoth([]string{"c", "c/d", "x", "x/e", "x/e/d7"}, []string{"c/d/a", "c/d/b"})
	mv := func(from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(r.root, from), filepath.Join(r.root, to)); err != nil {
			t.Fatal(err)
		}
	}
	mv("c/d", "c/t")
	mv("x/e", "c/d")
	mv("c/t", "x/e")
	r.journalFinished(change.Change{Path: "c/t", OldPath: "c/d", Op: change.Rename})
	r.start()
	r.untilNothingPending()
	r.journalFinished(change.Change{Path: "c/d", OldPath: "x/e", Op: change.Rename}, change.Change{Path: "x/e", OldPath: "c/t", Op: change.Rename})
	r.journalFound("c/d/d7", "x/e/a", "x/e/b")
	r.sender.Wake <- struct{}{}
	r.untilIdentical()
}

// TestSender_Start_aRefusedRenamesOldNameMovedByALaterRename: mv d/f g;
// mv d e, in one run, where the peer's d/f differs from what it was sent
// and does not match its index (changed there: its own detector has not
// journaled it yet): the peer refuses the first rename and keeps its
// d/f, which the second, applied, moves to e/f; g goes as content. Its
// own change comes back from it as e/f; deleted, the only copy of that
// change was lost. (Main, before the rename log, deleted it.)
func TestSender_Start_aRefusedRenamesOldNameMovedByALaterRename(t *testing.T) {
	r := newRig(t, 68)
	serveReceiver(t, r, basePort+95)
	r.onBoth([]string{"d"}, []string{"d/f", "d/x"})
	if err := os.WriteFile(filepath.Join(r.peerRoot, "d/f"), []byte("the peer's own, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mvJournaled("d/f", "g")
	r.mvJournaled("d", "e")
	r.journalFound("e/x")
	r.start()
	r.untilNothingPending()
	here, there := treeOf(t, r.root), treeOf(t, r.peerRoot)
	if want := slices.Insert(here, slices.Index(here, "e/")+1, "e/f=the peer's own, longer"); !slices.Equal(there, want) {
		t.Errorf("the peer's tree differs:\n want:  %q\n there: %q", want, there)
	}
}

// TestSender_Start_aTreeRenamedIntoADirectoryRemovedSince: mv c D/D11;
// mkdir c; rm -r D, before the rename reached the peer. The rename's new
// name is gone and its old name is a directory again, so the peer, never
// asked, keeps the renamed tree under c: its names are deleted there.
// Before, the removal of D dropped the tree's names from the index, and
// nothing else named them (the stress test, seed 7: d26/c17).
//
// The peer's index holds its tree, as a real peer's does: a file below D
// that it does not hold is one being written there, which the removal of
// D keeps (receiver.Receiver.keepsWrittenBelow).
func TestSender_Start_aTreeRenamedIntoADirectoryRemovedSince(t *testing.T) {
	r := newRig(t, 70)
	recv := peerReceiver(t, r)
	serveHandler(t, r, recv, basePort+97)
	r.onBoth([]string{"c", "c/d3"}, []string{"c/a", "c/d3/b"})
	heldOnPeer(t, recv, "c", "c/d3", "c/a", "c/d3/b")
	if err := os.Mkdir(filepath.Join(r.root, "D"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "D", Op: change.Mkdir})
	r.mvJournaled("c", "D/D11")
	if err := os.Mkdir(filepath.Join(r.root, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "c/new"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "c", Op: change.Mkdir}, change.Change{Path: "c/new", Op: change.Create | change.Write})
	if err := os.RemoveAll(filepath.Join(r.root, "D")); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "D", Op: change.Rmdir})
	r.runUntilIdentical()
}

// recordedAsItIs reports whether the peer's receiver holds p in its index
// as p is there: what it will never take for a change of its own.
func recordedAsItIs(t *testing.T, recv *receiver.Receiver, p string) bool {
	t.Helper()
	var same bool
	if err := recv.Index.View(func(tx *index.Tx) error {
		var err error
		same, err = tx.Unchanged(recv.RootFD, p, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return same
}

// TestSender_Start_aRenameBelowADirectoryMadeAFileDeletesItsOldNameAtOnce:
// mv n/c d/d/c2; mv n f; then a swap of the directory d with the file
// f/f7 (mv f/f7 f/t; mv d f/f7; mv f/t d), all journaled before the first
// run. The rename to d/d/c2, now below the file d, waits for d's entry;
// its old name n/c goes at once, and from then on the entry is a removal
// of d/d/c2 (journal.Journal.Unrenamed). Before, it stayed a rename: each
// plan deleted n/c again, the rename of n, above that deletion, waited
// for it, and d's entry, a rename out of f, waited for the rename of n:
// the run deleted n/c over and over and the peer never got the tree (the
// stress test, seed 25).
func TestSender_Start_aRenameBelowADirectoryMadeAFileDeletesItsOldNameAtOnce(t *testing.T) {
	r := newRig(t, 72)
	serveReceiver(t, r, basePort+99)
	r.scannable()
	r.onBoth([]string{"n", "d", "d/d"}, []string{"n/f7", "n/c", "d/d/m"})
	r.mvDetected("n/c", "d/d/c2")
	r.mvDetected("n", "f")
	r.mvDetected("f/f7", "f/t")
	r.mvDetected("d", "f/f7")
	r.mvDetected("f/t", "d")
	r.runUntilIdentical()
}

// TestSender_Start_anOldNameBelowAFileWhoseDirectoryIsRenamedLater: c/d
// is renamed to x, which the peer refuses (it holds an x this member
// removed, not journaled there: taken for its own change), then c and
// a/f1 are swapped: c is a file here, and the peer's c goes to a/f1 once
// the swap is journaled and replayed. The peer removes the refused
// rename's old name c/d at once (as it holds it as sent: the object left
// it), and x goes as content. Before, c/d could not be deleted below the
// file c here (ENOTDIR), and the swap carried it to a/f1/d, where the
// peer kept it for good (the stress test, seed 25). The first run here
// ends before the swap is journaled, as the detector may be late by a
// few milliseconds.
func TestSender_Start_anOldNameBelowAFileWhoseDirectoryIsRenamedLater(t *testing.T) {
	r := opsRig(t, 76, basePort+103)
	if err := os.WriteFile(filepath.Join(r.peerRoot, "x"), []byte("removed here, not yet there"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mvDetected("c/d", "x")
	// The swap, on disk only: the detector has not read it yet.
	for _, mv := range [][2]string{{"a/f1", "a/swaptmp"}, {"c", "a/f1"}, {"a/swaptmp", "c"}} {
		if err := os.Rename(filepath.Join(r.root, mv[0]), filepath.Join(r.root, mv[1])); err != nil {
			t.Fatal(err)
		}
	}
	first := r.firstRun(change.Change{Path: "f5", Op: change.Attrib})
	if _, err := os.Lstat(filepath.Join(r.peerRoot, "c", "d")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after the first run the peer's c/d is still there (%v): the refused rename's old name should be removed (run %+v)", err, first)
	}
	r.journalFinished(
		change.Change{Path: "a/swaptmp", OldPath: "a/f1", Op: change.Rename},
		change.Change{Path: "a/f1", OldPath: "c", Op: change.Rename | change.Subtree},
		change.Change{Path: "c", OldPath: "a/swaptmp", Op: change.Rename},
	)
	r.scanJournaled("a/f1")
	r.untilNothingPending()
	if here, there := treeOf(t, r.root), treeOf(t, r.peerRoot); !slices.Equal(here, there) {
		t.Errorf("the peer's tree differs:\n here:  %q\n there: %q", here, there)
	}
}

// TestSender_replayOrWait_waitsForARunPushingBelowARenamedName: a run's
// replay waits while a rename of its log has a name in flight in a run
// past its own replay (at, above or below it): applied while that run
// pushed below its old name, the push made the name again on the peer
// beside the moved tree (implied directories, the stress test's seed
// 23); left for later, it came after content pushed to its new name. Once
// that run is over, the whole log goes, in order, and the run's own
// paths count as pushing.
func TestSender_replayOrWait_waitsForARunPushingBelowARenamedName(t *testing.T) {
	r := newRig(t, 78)
	serveReceiver(t, r, basePort+105)
	r.onBoth([]string{"a", "d"}, []string{"a/f", "d/x", "g"})
	r.mvJournaled("a", "b")
	r.mvJournaled("d", "e")
	r.mvJournaled("g", "h")
	r.sender.pushing = newInflight()
	r.sender.pushing.add("d/x") // another run's, past its replay
	log, err := r.journal.RenameLog("peer", maxReplay)
	if err != nil || len(log) != 3 {
		t.Fatalf("rename log: %v, %v", log, err)
	}
	type result struct {
		rp  replayed
		err error
	}
	done := make(chan result, 1)
	own := batch{inFlight: []string{"b", "e", "h"}}
	go func() {
		rp, err := r.sender.replayOrWait(context.Background(), "run-1", own, log)
		done <- result{rp, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("replayed while d/x was pushed: %+v", res)
	case <-time.After(200 * time.Millisecond):
	}
	for _, p := range []string{"a/f", "d/x", "g"} {
		if _, err := os.Lstat(filepath.Join(r.peerRoot, p)); err != nil {
			t.Errorf("%s on the peer before the replay: %v", p, err)
		}
	}
	r.sender.replayMu.Lock()
	r.sender.pushing.remove("d/x") // that run is over
	r.sender.replayMu.Unlock()
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no replay 10 s after the run in flight ended")
	}
	if res.err != nil || !res.rp.at["b"] || !res.rp.at["e"] || !res.rp.at["h"] {
		t.Errorf("replay: %v, applied %v; want a -> b, d -> e and g -> h", res.err, res.rp.at)
	}
	for _, p := range []string{"b/f", "e/x", "h"} {
		if _, err := os.Lstat(filepath.Join(r.peerRoot, p)); err != nil {
			t.Errorf("%s on the peer after the replay: %v", p, err)
		}
	}
	if !r.sender.pushing.overlaps("e") {
		t.Error("the run's own paths are not counted as pushing after its replay")
	}
	if log, err := r.journal.RenameLog("peer", 10); err != nil || len(log) != 0 {
		t.Errorf("rename log after the replay: %v, %v; want empty", log, err)
	}
}

// TestSender_Start_anOldNameOfAnotherTypeMovedByALaterRename: mv a/x e;
// mv a g, where the peer holds a file at a/x (another type than the
// directory renamed here): it refuses a/x -> e and applies a -> g, which
// takes its a/x along to g/x. The old name's deletion, a path entry for
// a/x, found nothing there, and the peer kept g/x, a name this member
// never had (the stress test, seed 29 of the forty-fifth session). The
// peer now removes its a/x when it refuses the rename, as it does for a
// refusal with the writer's object there: it is held as sent and not
// pending. (One changed there stays: aRefusedRenamesOldNameMovedByALaterRename.)
func TestSender_Start_anOldNameOfAnotherTypeMovedByALaterRename(t *testing.T) {
	r := newRig(t, 106)
	rcv := peerReceiver(t, r)
	serveHandler(t, r, rcv, basePort+107)
	r.onBoth([]string{"a", "a/x"}, []string{"a/k", "a/x/f"})
	if err := os.RemoveAll(filepath.Join(r.peerRoot, "a/x")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.peerRoot, "a/x"), []byte("a file there"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Recorded there as it is: sent to it before, by this member or
	// another, not a change of its own.
	heldOnPeer(t, rcv, "a", "a/k", "a/x")
	r.mvJournaled("a/x", "e")
	r.journalFound("e/f")
	r.mvJournaled("a", "g")
	r.journalFound("g/k")
	r.runUntilIdentical()
}

// TestSender_Start_aSwapWhileARunPushes: mv p/d p/t; mv p/e p/d; mv p/t
// p/e, made and journaled while a run pushes p/e/f (rewritten here) behind
// a slow file. rsync reads p/e/f after the swap: the peer's p/e, which
// has the swap ahead of it, gets what is p/e/f here now (the file of the
// old p/d), and the swap, replayed after the run, takes that copy to p/d.
// The run sends p/e/f again (it changed while it was sent); the sender
// also brings p/d/f to its state here, by content (overtaken). Before,
// the peer kept the old p/d's file under p/d/f for good (the stress test,
// seed 7, the forty-seventh session).
func TestSender_Start_aSwapWhileARunPushes(t *testing.T) {
	r := newRig(t, 71)
	serveReceiver(t, r, basePort+98)
	r.onBoth([]string{"p", "p/d", "p/e"}, []string{"p/d/f", "p/e/f"})
	r.journalFinished(r.slowBig())
	r.write("p/e/f", "p/e/f, rewritten")
	r.start()
	r.untilInTransfer()
	r.swapJournaled("p/d", "p/e", "p/t")
	r.untilIdentical()
}

// TestSender_Start_aSwapWhileARunDeletes: p/e/f removed here and
// journaled; its delete checks p/e/f gone here, and then, before rsync
// reads it, the swap mv p/d p/t; mv p/e p/d; mv p/t p/e puts the old
// p/d's file there (gateDeletes). rsync sends it instead of deleting it,
// into the peer's p/e, which has the swap ahead of it. The swap, replayed
// after the run, takes that copy to p/d, where nothing of it is here: the
// sender deletes it there (overtaken). Before, the peer kept it for good
// (the stress test, seed 156, the fifty-first session: a file written
// into a swapped-in directory while a run deleted its old name).
//
// The removal goes by its path entry because the peer refuses its replay:
// the peer's own change of p/e/f is pending for another member, and this
// member had it (errNewerHere, not newer), until that change is sent, as
// the replay returns. A removal the peer applies is not deleted again
// (sender.replayed.removedThere), and no delete run would come.
func TestSender_Start_aSwapWhileARunDeletes(t *testing.T) {
	r := newRig(t, 122)
	recv := peerReceiver(t, r)
	var sent atomic.Bool
	recv.Pending = func(rel string) bool {
		return !sent.Load() && (rel == "p/e/f" || strings.HasPrefix("p/e/f", rel+"/"))
	}
	recv.PendingFor = func(string, string, int) []string { return nil }
	serveHandler(t, r, &afterReplay{Receiver: recv, then: func() { sent.Store(true) }}, basePort+123)
	r.onBoth([]string{"p", "p/d", "p/e"}, []string{"p/d/f", "p/e/f"})
	if err := os.Remove(filepath.Join(r.root, "p/e/f")); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "p/e/f", Op: change.Remove})
	whileGated := r.gate("--delete-missing-args")
	r.start()
	whileGated(func() { r.swapJournaled("p/d", "p/e", "p/t") })
	r.untilIdentical()
}

// TestSender_Start_aDeleteMakesNoDirectoryOnThePeer: a/b/gone removed
// here, where a and a/b stay; the peer has no a (its writer renamed it
// away, and this member has not replayed that yet). The removal's replay
// finds nothing there; the run then pushes a/b for its times (renamed-
// OutOf), and rsync makes a and a/b there, as a delete would to reach
// a/b/gone (--relative). The peer removes them again, empty and never
// held there (receiver.unmake). Before, they stayed there for good: on
// the stress test's writer, a directory it had renamed away came back,
// and went to every member (seed 163, the fifty-first session).
func TestSender_Start_aDeleteMakesNoDirectoryOnThePeer(t *testing.T) {
	r := newRig(t, 126)
	serveReceiver(t, r, basePort+127)
	if err := os.MkdirAll(filepath.Join(r.root, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "a/b/gone"), []byte("sent before"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.settle("a", "a/b", "a/b/gone") // synced once, as this member holds it
	if err := os.Remove(filepath.Join(r.root, "a/b/gone")); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "a/b/gone", Op: change.Remove})
	r.start()
	r.untilNothingPending()
	if _, err := os.Lstat(filepath.Join(r.peerRoot, "a")); !os.IsNotExist(err) {
		t.Errorf("a on the peer: %v; want none (the delete made it only to reach a/b/gone)", err)
	}
}

// TestSender_Start_aDirectoryPushedForItsTimesReadAsAFile: mv p/d/m p/x
// here takes a name out of p/d, which the run pushes for its times
// (renamedOutOf); p/d is then swapped here with the file p/f after the
// sender checked it and before rsync read it, and rsync sends the file,
// which replaces the peer's directory p/d. The peer is told so
// (peer.FileState.Replaced) and records what p/d holds, so that its
// directory's removal is no change of its own. Told it was a directory
// made for a removal, it kept its old entry, and took the removal for its
// own: its pushes of p/d then made p/d's parents again on the writer, over
// a file the writer had made there since (the stress test, seed 591 of
// the fifty-sixth session).
func TestSender_Start_aDirectoryPushedForItsTimesReadAsAFile(t *testing.T) {
	r := newRig(t, 128)
	rcv := peerReceiver(t, r)
	serveHandler(t, r, rcv, basePort+129)
	r.onBoth([]string{"p", "p/d"}, []string{"p/d/m", "p/f"})
	r.mvJournaled("p/d/m", "p/x")
	r.swapBeforeListed("p/d", "p/f")
	r.start()
	poll.Until(t, 20*time.Second, func() error {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(r.peerRoot, "p/d"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return errNotYet("p/d a file on the peer")
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.runs) == 0 {
			return errNotYet("a run done") // and confirmed
		}
		return nil
	})
	var same bool
	if err := rcv.Index.View(func(tx *index.Tx) (err error) {
		same, err = tx.Unchanged(rcv.RootFD, "p/d", false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Errorf("the peer's index does not hold p/d as the file the run put there: its directory's removal reads as the peer's own")
	}
}

// TestSender_Start_aDeadRunsFileTakenAlongByARenameIsDeleted: mv d e;
// mkdir d; write d/x here, and a run of this member's earlier life (it
// died unconfirmed: kill -9) pushed d/x into the peer's d before the
// rename reached the peer. Replayed after the restart, the rename takes
// that copy to e/x, where this member has nothing; the peer answers with
// e/x to verify (peer.RenameResponse.Verify), which goes again as a
// deletion. Before, e/x stayed on the peer for good (the stress test's
// Kill9 seed 32 of the sixtieth session, a directory so).
func TestSender_Start_aDeadRunsFileTakenAlongByARenameIsDeleted(t *testing.T) {
	r := newRig(t, 4)
	rcv := peerReceiver(t, r)
	serveHandler(t, r, rcv, basePort+131)
	r.onBoth([]string{"d"}, []string{"d/f0"})
	r.mvJournaled("d", "e")
	if err := os.Mkdir(filepath.Join(r.root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "d", Op: change.Mkdir})
	r.write("d/x", "pushed before the rename reached the peer")
	// The earlier life's run, announced with another boot, and what its
	// rsync put on the peer.
	if err := rcv.Incoming(context.Background(), "self", "an earlier boot", "dead-run", []string{"d/x"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.peerRoot, "d", "x"), []byte("pushed before the rename reached the peer"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.runUntilIdentical()
}

// TestSender_Start_helloSettlesTheRunsOfAnEarlierLife: a run of this
// member's earlier life died unconfirmed, holding a on the peer, and this
// member, restarted, has nothing to send. Its sender says hello at once
// (peer.Client.Hello), and the peer releases a, as its index holds it;
// waiting for this member's next run, the peer held it for up to ten
// minutes, and took its own writes there for the dead run's.
func TestSender_Start_helloSettlesTheRunsOfAnEarlierLife(t *testing.T) {
	r := newRig(t, 4)
	rcv := peerReceiver(t, r)
	serveHandler(t, r, rcv, basePort+132)
	r.onBoth(nil, []string{"a"})
	if err := rcv.Index.Update(func(tx *index.Tx) error { return tx.Record(rcv.RootFD, "a") }); err != nil {
		t.Fatal(err)
	}
	if err := rcv.Incoming(context.Background(), "self", "an earlier boot", "dead-run", []string{"a"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !rcv.Held.Has("a") {
		t.Fatal("the test's premise: the dead run holds a on the peer")
	}
	r.start()
	poll.Until(t, 10*time.Second, func() error {
		if rcv.Held.Has("a") {
			return errors.New("the peer still holds a for a run of this member's earlier life")
		}
		return nil
	})
}

// afterReplay is a real receiver that calls then once each replay is done.
type afterReplay struct {
	*receiver.Receiver
	then func()
}

func (a *afterReplay) Replay(ctx context.Context, from string, req peer.ReplayRequest) peer.RenameResponse {
	defer a.then()
	return a.Receiver.Replay(ctx, from, req)
}
