package detect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/scan"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/fanotify"
)

// TestDetector_MassDeletionAtStart: 180 of 300 indexed files vanished while
// the agent was down (a half-restored backup, a wrong mount). The start-up
// scan stops the detector with ErrMassDelete, and so the agent, before a
// single deletion is reported, unless the operator said so
// (AllowMassDelete), or the share allowed is above what vanished. (A scan
// may always report 100 deletions: the test deletes more.)
func TestDetector_MassDeletionAtStart(t *testing.T) {
	tests := []struct {
		name    string
		allow   bool
		share   float64
		stopped bool
	}{
		{name: "stops at the default share", stopped: true},
		{name: "the operator's word", allow: true},
		{name: "a share above what vanished", share: 0.7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, idx, rootfd := massDeleteRoot(t)
			for i := range 300 {
				name := fmt.Sprintf("f%03d", i)
				if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := idx.Update(func(tx *index.Tx) error { return tx.Record(rootfd, name) }); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 180 {
				if err := os.Remove(filepath.Join(root, fmt.Sprintf("f%03d", i))); err != nil {
					t.Fatal(err)
				}
			}
			src, err := fanotify.New(source.Options{Root: root})
			if err != nil {
				t.Fatalf("fanotify is unavailable, the test needs it (root, Linux 5.17): %v", err)
			}
			d := &Detector{Root: root, Index: idx, Source: src, Settle: 100 * time.Millisecond, Incoming: &Incoming{}, Log: logr.Discard(),
				AllowMassDelete: tc.allow, MaxDeleteShare: tc.share}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan change.Change, 1024)
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx, out) }()
			removed := 0
			deadline := time.After(10 * time.Second)
			for {
				select {
				case c := <-out:
					if c.Op.Has(change.Remove) {
						removed++
					}
					if removed == 180 && !tc.stopped {
						cancel()
						<-done
						return
					}
					continue
				case err := <-done:
					if !tc.stopped || !errors.Is(err, scan.ErrMassDelete) {
						t.Fatalf("detector stopped with %v after %d deletions", err, removed)
					}
					if removed != 0 {
						t.Fatalf("%d deletions reported before the stop", removed)
					}
					return
				case <-deadline:
					t.Fatalf("after 10 s: %d deletions reported, detector running (stopped: want %v)", removed, tc.stopped)
				}
			}
		})
	}
}

// TestDetector_APeersMassDeletionIsNotThisMembers: a peer's run deletes
// 180 of 300 files here (announced, its confirmation not recorded yet) as
// a scan of the whole root runs (a rescan that climbed to the root). The
// removals are the peer's, held for its run, and count for no share: the
// detector goes on, and once the run is done and recorded, reports none of
// them as this member's. Counted, the receiving agent stopped on a mass
// deletion (the stress test, a writer's rm -r of most of the tree); the
// same removals made here still stop it (TestDetector_MassDeletionAtStart).
// A local write after the removals is reported, and nothing else.
func TestDetector_APeersMassDeletionIsNotThisMembers(t *testing.T) {
	root, idx, rootfd := massDeleteRoot(t)
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	var gone []string
	for i := range 300 {
		name := fmt.Sprintf("f%03d", i)
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if i < 180 {
			gone = append(gone, name)
		}
	}
	all := []string{"sub"}
	for i := range 300 {
		all = append(all, fmt.Sprintf("f%03d", i))
	}
	recordPaths(t, idx, rootfd, all...)
	in := &Incoming{}
	r := runDetector(t, root, idx, in)
	out, done, next := r.out, r.done, r.nextScan
	next("the start-up scan")
	r.det.Rescan("sub") // begins once the start-up scan is over
	next("a scan of sub")
	// The peer's run: announced, then rsync deletes.
	hold := in.Add(gone...)
	for _, name := range gone {
		if err := os.Remove(filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	r.det.Rescan(".")
	next("the scan of the root")
	r.det.Rescan("sub") // scanned after the root's scan is over
	next("the scan after it")
	// The run ends after the detector read its removals, as a receiver's
	// does: a local write made after them, reported, says they were read
	// and held (the source reads events in order). Read after the run's
	// end, a removal not the agent's own is reported for the journal to
	// look up (removedBelowRename), as a CI run under load saw.
	if err := os.WriteFile(filepath.Join(root, "marker"), []byte("local"), 0o644); err != nil {
		t.Fatal(err)
	}
	for marked := false; !marked; {
		select {
		case c := <-out:
			if marked = c.Path == "marker" && c.Finished; !marked {
				t.Errorf("reported as this member's change: %+v", c)
			}
		case err := <-done:
			t.Fatalf("waiting for the marker: the detector stopped: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the marker was not reported within 10 s")
		}
	}
	// The run's confirmation: recorded, then done.
	recordPaths(t, idx, rootfd, gone...)
	in.Done(hold, gone...)
	r.det.Rescan("sub")
	next("a scan after the run")
	for {
		select {
		case c := <-out:
			t.Errorf("reported as this member's change: %+v", c)
		case err := <-done:
			t.Fatalf("the detector stopped: %v", err)
		case <-time.After(1500 * time.Millisecond):
			return
		}
	}
}

// massDeleteRoot returns a root of its own (a tmpfs), its index, and the
// root open, closed at the test's end.
func massDeleteRoot(t *testing.T) (string, *index.Index, int) {
	t.Helper()
	root := tmpfs.Mount(t, "size=64m")
	idx := openIndex(t, root)
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(rootfd) })
	return root, idx, rootfd
}

// TestDetector_AMassDeletionSeenHappeningGoesOn: rm -r of a directory
// that holds most of the tree, seen happening, and a scan of the whole
// root before the journal recorded it (here, never). The removals go to
// the peers as events whatever their share; the scan does not count them
// either, and the detector goes on. Counted, the writer's own rm -r
// stopped its agent on a mass deletion (the stress test, seeds 0 and 24);
// unseen, the same removals stop it (TestDetector_MassDeletionAtStart).
func TestDetector_AMassDeletionSeenHappeningGoesOn(t *testing.T) {
	root, idx, rootfd := massDeleteRoot(t)
	big := filepath.Join(root, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	all := []string{"big"}
	for i := range 300 {
		name := fmt.Sprintf("f%03d", i)
		if i < 200 {
			name = "big/" + name
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		all = append(all, name)
	}
	recordPaths(t, idx, rootfd, all...)
	r := runDetector(t, root, idx, nil)
	out, done := r.out, r.done
	r.nextScan("the start-up scan")
	// Scanned tells a scan's start: the start-up scan is over once the
	// next one starts (scans run one at a time). A removal it finds
	// before the source's event of it is routed counts, as at start.
	r.det.Rescan("big")
	r.nextScan("a scan of big")
	if err := os.RemoveAll(big); err != nil {
		t.Fatal(err)
	}
	// The rm -r was read: its last removal, of the directory, reported
	// (the removals of its files read after it are moot: theirs).
	for reported := false; !reported; {
		select {
		case c := <-out:
			reported = c.Path == "big" && c.Op.Has(change.Rmdir)
		case err := <-done:
			t.Fatalf("waiting for the removal of big: the detector stopped: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the removal of big was not reported within 10 s")
		}
	}
	r.det.Rescan(".")
	r.nextScan("the scan of the root")
	select {
	case err := <-done:
		t.Fatalf("the detector stopped after the scan of the root: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
}

// recordPaths records names in idx, as the journal does.
func recordPaths(t *testing.T, idx *index.Index, rootfd int, names ...string) {
	t.Helper()
	if err := idx.Update(func(tx *index.Tx) error {
		for _, name := range names {
			if err := tx.Record(rootfd, name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// running is a detector running on the fanotify source until the test
// ends.
type running struct {
	t       *testing.T
	det     *Detector
	out     chan change.Change
	done    chan error // Run's result
	scanned chan string
}

// runDetector starts a detector on root with the fanotify source, holding
// what in (may be nil) holds.
func runDetector(t *testing.T, root string, idx *index.Index, in *Incoming) *running {
	t.Helper()
	src, err := fanotify.New(source.Options{Root: root})
	if err != nil {
		t.Fatalf("fanotify is unavailable, the test needs it (root, Linux 5.17): %v", err)
	}
	r := &running{t: t, out: make(chan change.Change, 1024), done: make(chan error, 1), scanned: make(chan string, 16)}
	r.det = &Detector{Root: root, Index: idx, Source: src, Settle: 100 * time.Millisecond, Incoming: in, Log: logr.Discard(),
		Scanned: func(reason string) { r.scanned <- reason }}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- r.det.Run(ctx, r.out) }()
	t.Cleanup(cancel)
	return r
}

// nextScan waits for the detector's next scan to begin.
func (r *running) nextScan(what string) {
	r.t.Helper()
	select {
	case <-r.scanned:
	case err := <-r.done:
		r.t.Fatalf("waiting for %s: the detector stopped: %v", what, err)
	case <-time.After(10 * time.Second):
		r.t.Fatalf("no %s within 10 s", what)
	}
}
