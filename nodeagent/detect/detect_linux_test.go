package detect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/fanotify"
)

// env is a data root on its own tmpfs with an index and a running detector.
type env struct {
	det   *Detector
	t     *testing.T
	root  string
	idx   *index.Index
	out   chan change.Change
	done  chan error
	stop  context.CancelFunc
	seen  []change.Change
	fdRec int
	in    *Incoming
}

// TestDetector_NewFileBeforeItsWriterOpens: a file whose creator opens it
// for writing a moment after creating it (open(2) with O_CREAT announces
// the file before it takes write access; widened here with mknod(2) and a
// pause) is not ready before its writer closes it; a file made without
// write access and never written is ready too, by the probe.
func TestDetector_NewFileBeforeItsWriterOpens(t *testing.T) {
	e := start(t, true)
	late, empty := filepath.Join(e.root, "late"), filepath.Join(e.root, "empty")
	if err := unix.Mknod(empty, unix.S_IFREG|0o644, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(late, unix.S_IFREG|0o644, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the creator, preempted before its open
	f, err := os.OpenFile(late, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 5 {
		if _, err := fmt.Fprintf(f, "line %d\n", i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.waitFor("the empty file made without write access", func(c change.Change) bool {
		return c.Path == "empty" && c.Finished && c.Op.Has(change.Create)
	})
	e.drain()
	for _, c := range e.seen {
		if c.Path == "late" {
			t.Fatalf("late reported before its writer closed it: %v", describe(e.seen))
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("late after its close", finishedWrite("late"))
}

// start runs a detector on a fresh tmpfs root, with fanotify as its source
// when useFanotify, else the scanner alone.
func start(t *testing.T, useFanotify bool) *env { return startRoot(t, useFanotify, false) }

// startRoot is start with the root either the tmpfs's mount point itself
// (mountedRoot, to unmount it under the detector) or a directory in it.
func startRoot(t *testing.T, useFanotify, mountedRoot bool) *env {
	t.Helper()
	return startOwn(t, useFanotify, mountedRoot, nil)
}

// startOwn is startRoot with the source told which processes are the
// agent's own (source.Options.OwnPID).
func startOwn(t *testing.T, useFanotify, mountedRoot bool, ownPID func(int32) bool) *env {
	t.Helper()
	root := tmpfs.Mount(t, "size=64m")
	if !mountedRoot {
		// The root is a directory of the tmpfs, so that "outside" shares
		// its filesystem (renames in and out are renames, not copies).
		fs := root
		root = filepath.Join(fs, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(fs, "outside"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	idx := openIndex(t, root)
	in := &Incoming{}
	d := &Detector{Root: root, Index: idx, Settle: 100 * time.Millisecond, ScanInterval: 200 * time.Millisecond,
		Incoming: in, Log: logr.Discard()}
	if useFanotify {
		src, err := fanotify.New(source.Options{Root: root, OwnPID: ownPID})
		if err != nil {
			t.Fatalf("fanotify is unavailable, the test needs it (root, Linux 5.17): %v", err)
		}
		d.Source = src
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, root: root, idx: idx, in: in, det: d, out: make(chan change.Change, 1024), done: make(chan error, 1), stop: cancel}
	go func() { e.done <- d.Run(ctx, e.out) }()
	t.Cleanup(func() {
		cancel()
		<-e.done
	})
	var err error
	e.fdRec, err = unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(e.fdRec) })
	return e
}

// openIndex opens a fresh index for root, closed when the test ends, and
// gives root its identity (index.CheckRoot), as the agent does at start.
func openIndex(t *testing.T, root string) *index.Index {
	t.Helper()
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	if err := idx.CheckRoot(root); err != nil {
		t.Fatal(err)
	}
	return idx
}

// waitFor collects changes until one satisfies pred, failing after 10 s.
func (e *env) waitFor(what string, pred func(change.Change) bool) change.Change {
	e.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-e.out:
			e.seen = append(e.seen, c)
			if pred(c) {
				return c
			}
		case err := <-e.done:
			e.t.Fatalf("detector stopped while waiting for %s: %v", what, err)
		case <-deadline:
			e.t.Fatalf("no %s within 10s; saw %v", what, describe(e.seen))
		}
	}
}

func describe(cs []change.Change) []string {
	var s []string
	for _, c := range cs {
		s = append(s, fmt.Sprintf("%s %q finished=%v", c.Op, c.Path, c.Finished))
	}
	return s
}

func finishedWrite(path string) func(change.Change) bool {
	return func(c change.Change) bool { return c.Path == path && c.Finished && c.Op.Has(change.Write) }
}

// eachSource runs f as a subtest with fanotify as the change source and
// with the scanner alone.
func eachSource(t *testing.T, f func(t *testing.T, useFanotify bool)) {
	t.Helper()
	t.Run("fanotify", func(t *testing.T) { f(t, true) })
	t.Run("scanner", func(t *testing.T) { f(t, false) })
}

// record stores path's lstat in the index, as the receiver does for what it
// wrote.
func (e *env) record(path string) {
	e.t.Helper()
	if err := e.idx.Update(func(tx *index.Tx) error { return tx.Record(e.fdRec, path) }); err != nil {
		e.t.Fatal(err)
	}
}

func TestDetector_ReceiverWritesAreNotLocalChanges(t *testing.T) {
	eachSource(t, func(t *testing.T, useFanotify bool) {
		e := start(t, useFanotify)
		// A peer announces the path, the receiver writes it and records
		// its lstat (its events still arrive: the index decides, not
		// the pid), then the run is confirmed.
		h := e.in.Add("from-peer")
		if err := os.WriteFile(filepath.Join(e.root, "from-peer"), []byte("peer data"), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the events outrun the record
		e.record("from-peer")
		e.in.Done(h, "from-peer")
		// A local write after it: it must come, the echo must not.
		if err := os.WriteFile(filepath.Join(e.root, "marker"), []byte("local"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.waitFor("the marker", finishedWrite("marker"))
		time.Sleep(300 * time.Millisecond) // past settle and one more scan
		e.drain()
		for _, c := range e.seen {
			if c.Path == "from-peer" {
				t.Fatalf("the receiver's write was reported as a local change: %v", describe(e.seen))
			}
		}
		// A local process changes the received file: reported.
		if err := os.WriteFile(filepath.Join(e.root, "from-peer"), []byte("edited locally"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.waitFor("the local edit", finishedWrite("from-peer"))
	})
}

// TestDetector_FileReplacedByAnImpliedDirectory: rsync makes the missing
// parents of a listed path (implied directories, never announced) and
// replaces a file or symlink in their way. The file's removal, read
// before the directory was made, is the receiver's too, held while a path
// below it is received and then dropped as the receiver recorded it. Let
// through, it journaled the new directory as this member's own change,
// and its times, as they were while rsync filled it, went to every member,
// the writer included (the stress test).
func TestDetector_FileReplacedByAnImpliedDirectory(t *testing.T) {
	e := start(t, true)
	h := filepath.Join(e.root, "h")
	if err := os.WriteFile(h, []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the file", finishedWrite("h"))
	e.record("h") // journaled
	e.quiet()
	// The file's own changes are this member's: under load its creation
	// and its write come as two changes (one found finished between
	// them), so only what comes after this point is looked at.
	before := len(e.seen)

	hold := e.in.Add("h/f")
	if err := os.Remove(h); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the removal is read as one
	if err := os.Mkdir(h, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h, "f"), []byte("peer data"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the events outrun the record
	e.record("h")
	e.record("h/f")
	e.in.Done(hold, "h/f")
	e.localMarker()
	for _, c := range e.seen[before:] {
		if c.Path == "h" && !c.Op.Has(change.Write) || c.Path == "h/f" {
			t.Fatalf("what the receiver wrote was reported as a local change: %v", describe(e.seen[before:]))
		}
	}
}

// TestDetector_DirectoryReplacedByAFileOfAPeersRun: rsync reads a listed
// path's parents after the path, and one that the sender swapped with a
// file in between goes as that file: the receiver's rsync deletes the
// directory with everything in it and puts the file there
// (rsync.Result.NotDirs). Neither the file nor the removals below it are
// announced (the run's paths lie below). They are held while a path below
// is received and dropped as the receiver recorded them
// (peer.FileState.Replaced). Let through, the removals and the file went
// to every member as this member's, and the writer's replayed rename was
// refused here (the stress test, seeds 340 and 385).
func TestDetector_DirectoryReplacedByAFileOfAPeersRun(t *testing.T) {
	e := start(t, true)
	h := filepath.Join(e.root, "h")
	if err := os.MkdirAll(filepath.Join(h, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"m28", "sub/kept"} {
		if err := os.WriteFile(filepath.Join(h, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.waitFor("h/"+f, finishedWrite("h/"+f))
	}
	for _, p := range []string{"h", "h/sub", "h/m28", "h/sub/kept"} {
		e.record(p)
	}
	e.quiet()
	before := len(e.seen)

	hold := e.in.Add("h/d22/x") // the listed path below the replaced parent
	if err := os.RemoveAll(h); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h, []byte("the writer's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the events outrun the record
	e.record("h")                      // peer.FileState.Replaced: the file, nothing below
	e.in.Done(hold, "h/d22/x")
	e.localMarker()
	for _, c := range e.seen[before:] {
		if c.Path == "h" || strings.HasPrefix(c.Path, "h/") {
			t.Fatalf("what the peer's run did was reported as a local change: %v", describe(e.seen[before:]))
		}
	}
}

// TestDetector_RemovalNearAPeersRun: rsync --force empties a directory
// before it replaces it with the file a peer's run names there
// (peer.FileState.Replaced), and a removal read in between, while the
// directory is still one, looked like this member's own and went to the
// journal (2 to 4 runs of TestDetector_DirectoryReplacedByAFileOfAPeersRun
// in 20, the fifty-seventh session). A removal below a directory above a
// run's paths waits for that run; then it is the run's if the directory
// is no directory any more, and this member's if it is, even where only
// the journal can tell (a removal below a rename, removedBelowRename).
func TestDetector_RemovalNearAPeersRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		// do works below h while the run holds h/d22/x; the events are
		// read before the run ends (confirm records what the run left).
		do       func(e *env)
		confirm  []string
		reported []string // removals reported below h
	}{
		{
			name: "a directory emptied, read, then replaced with a file",
			do: func(e *env) {
				for _, p := range []string{"h/sub/kept", "h/sub", "h/m28"} {
					if err := os.Remove(filepath.Join(e.root, p)); err != nil {
						e.t.Fatal(err)
					}
				}
				time.Sleep(200 * time.Millisecond) // read while h is a directory
				if err := os.Remove(filepath.Join(e.root, "h")); err != nil {
					e.t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(e.root, "h"), []byte("the writer's file"), 0o644); err != nil {
					e.t.Fatal(err)
				}
			},
			confirm: []string{"h"},
		},
		{
			name: "a local removal beside the run's paths",
			do: func(e *env) {
				if err := os.Remove(filepath.Join(e.root, "h/m28")); err != nil {
					e.t.Fatal(err)
				}
			},
			reported: []string{"h/m28"},
		},
		{
			name: "a local removal below a local rename beside the run's paths",
			do: func(e *env) {
				e.rename("x", "h/y")
				if err := os.Remove(filepath.Join(e.root, "h/y/s")); err != nil {
					e.t.Fatal(err)
				}
			},
			reported: []string{"h/y/s"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, true)
			for _, d := range []string{"h/sub", "x"} {
				if err := os.MkdirAll(filepath.Join(e.root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range []string{"h/m28", "h/sub/kept", "x/s"} {
				if err := os.WriteFile(filepath.Join(e.root, f), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				e.waitFor(f, finishedWrite(f))
			}
			for _, p := range []string{"h", "h/sub", "h/m28", "h/sub/kept", "x", "x/s"} {
				e.record(p)
			}
			e.quiet()
			before := len(e.seen)

			hold := e.in.Add("h/d22/x")
			tc.do(e)
			time.Sleep(200 * time.Millisecond) // the events outrun the record
			for _, p := range tc.confirm {
				e.record(p)
			}
			e.in.Done(hold, "h/d22/x")
			e.localMarker()
			var got []string
			for _, c := range e.seen[before:] {
				if c.Op&(change.Remove|change.Rmdir) != 0 && strings.HasPrefix(c.Path, "h/") {
					got = append(got, c.Path)
				}
			}
			if !slices.Equal(got, tc.reported) {
				t.Fatalf("removals reported below h: %q, want %q; saw %v", got, tc.reported, describe(e.seen[before:]))
			}
		})
	}
}

// TestDetector_DirectoryTimesOfAPeersRunAreNotLocal: rsync sets the times
// of the directory above a path it receives (an implied directory), and
// its attribute event is held while the run lasts. When the run is over,
// the directory's time may have moved on since the receiver recorded it:
// an entry made there since (the next run's, or this member's own, which
// is reported by itself) moves a directory's times without an attribute
// event. Compared with its times, the held event read as this member's
// own change of the directory's times, and the receiver sent them to
// every member, over the writer's (the stress test, seeds 6 and 29, the
// forty-seventh session). A mode changed here meanwhile still counts.
func TestDetector_DirectoryTimesOfAPeersRunAreNotLocal(t *testing.T) {
	e := start(t, true)
	d := filepath.Join(e.root, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the directory", func(c change.Change) bool { return c.Path == "d" })
	e.record("d")
	e.quiet()
	before := len(e.seen)

	run := func(name string, chmod bool) {
		t.Helper()
		hold := e.in.Add("d/" + name)
		if err := os.WriteFile(filepath.Join(d, name), []byte("peer data"), 0o644); err != nil {
			t.Fatal(err)
		}
		writer := time.Unix(1_700_000_000, 0)
		if err := os.Chtimes(d, writer, writer); err != nil { // rsync: the writer's times
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the events outrun the record
		e.record("d")
		e.record("d/" + name)
		// Made after the record, before the hold ends: d's times move.
		if err := os.WriteFile(filepath.Join(d, "local-"+name), []byte("made here"), 0o644); err != nil {
			t.Fatal(err)
		}
		if chmod {
			if err := os.Chmod(d, 0o750); err != nil {
				t.Fatal(err)
			}
		}
		e.in.Done(hold, "d/"+name)
		e.waitFor("the file made here", finishedWrite("d/local-"+name))
		e.quiet()
	}
	run("f", false)
	for _, c := range e.seen[before:] {
		if c.Path == "d" || c.Path == "d/f" {
			t.Fatalf("what the receiver did was reported as a local change: %v", describe(e.seen[before:]))
		}
	}
	before = len(e.seen)
	run("g", true)
	if !slices.ContainsFunc(e.seen[before:], func(c change.Change) bool { return c.Path == "d" && c.Op.Has(change.Attrib) }) {
		t.Fatalf("a mode changed here while a peer's run was held was not reported: %v", describe(e.seen[before:]))
	}
}

// TestDetector_RenameChainReadLate: mv d e; mv e/f e/g; mv e/g e/h, with
// the index still holding d/f (the journal had not recorded the first
// rename when the others were read). The middle link names two paths
// that are neither indexed nor there, as a rename undone before it was
// read would; dropped, the log lacked it and a peer kept f for good
// (stress seed 22, the forty-first session). The same chain made by the
// agent itself (a peer's, replayed here) is not reported: it is an echo.
// The agent's chain is replayed as the receiver does, its paths held
// (Incoming) until it is over: held, its links are read late whatever
// the machine's load, as the test needs. Without the hold, a link read
// at once (its new name still there, not indexed) was reported, as an
// agent's own rename the index does not hold is (a CI run).
func TestDetector_RenameChainReadLate(t *testing.T) {
	self := int32(os.Getpid())
	for _, tc := range []struct {
		name   string
		ownPID func(int32) bool
		want   bool
	}{
		{name: "a local chain is reported", want: true},
		{name: "the agent's own chain is not", ownPID: func(pid int32) bool { return pid == self }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startOwn(t, true, false, tc.ownPID)
			d := filepath.Join(e.root, "d")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "f"), []byte("f"), 0o644); err != nil {
				t.Fatal(err)
			}
			e.record("d")
			e.record("d/f")
			time.Sleep(300 * time.Millisecond) // past settle and one more scan
			e.quiet()
			before := len(e.seen)
			chain := []string{"d", "d/f", "e", "e/f", "e/g", "e/h"}
			var hold Hold
			if tc.ownPID != nil {
				hold = e.in.Add(chain...)
			}
			e.rename("d", "e")
			e.rename("e/f", "e/g")
			e.rename("e/g", "e/h")
			if tc.ownPID != nil {
				e.in.Done(hold, chain...)
			}
			e.localMarker()
			got := false
			for _, c := range e.seen[before:] {
				got = got || c.Op.Has(change.Rename) && c.Path == "e/g" && c.OldPath == "e/f"
			}
			if got != tc.want {
				t.Fatalf("rename e/f -> e/g reported: %v, want %v; saw %v", got, tc.want, describe(e.seen[before:]))
			}
		})
	}
}

// TestDetector_RemovalBelowRenameReadLate removes a file below a directory
// just renamed, both read before the journal records the rename (the
// index still holds the file under the old name): the removal is reported,
// for the journal to find once it has moved the tree (stress seeds 21, 25
// and 26), unless it is the agent's own.
func TestDetector_RemovalBelowRenameReadLate(t *testing.T) {
	self := int32(os.Getpid())
	for _, tc := range []struct {
		name   string
		ownPID func(int32) bool
		want   bool
	}{
		{name: "a local removal is reported", want: true},
		{name: "the agent's own is not", ownPID: func(pid int32) bool { return pid == self }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startOwn(t, true, false, tc.ownPID)
			x := filepath.Join(e.root, "x")
			if err := os.Mkdir(x, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"s", "t"} {
				if err := os.WriteFile(filepath.Join(x, name), []byte(name), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			e.record("x")
			e.record("x/s")
			e.record("x/t")
			time.Sleep(300 * time.Millisecond) // past settle and one more scan
			e.quiet()
			before := len(e.seen)
			if err := os.Rename(x, filepath.Join(e.root, "d")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(e.root, "d", "s")); err != nil {
				t.Fatal(err)
			}
			e.localMarker()
			got := false
			for _, c := range e.seen[before:] {
				got = got || c.Op&(change.Remove|change.Rmdir) != 0 && c.Path == "d/s"
			}
			if got != tc.want {
				t.Fatalf("removal of d/s reported: %v, want %v; saw %v", got, tc.want, describe(e.seen[before:]))
			}
		})
	}
}

// TestDetector_OwnRenameOfATreeIsNotScanned renames directories holding
// files the index lacks: one renamed, or two swapped through a temporary
// name (whose events, read after the swap, find each name holding the
// other's tree: Mkdir|Subtree where a name was made again). A local
// rename asks for a scan of the tree under its new name, which finds the
// files. The agent's own (a peer's, replayed by the receiver) asks for
// none: the receiver compares those trees itself when it records the
// request (recordTree), and a scan run while it still applied the request
// read names that its later renames left, and reported what it found
// there as this member's own (stress seed 102 of the forty-ninth
// session's g1 run).
func TestDetector_OwnRenameOfATreeIsNotScanned(t *testing.T) {
	self := int32(os.Getpid())
	own := func(pid int32) bool { return pid == self }
	for _, tc := range []struct {
		name   string
		ownPID func(int32) bool
		swap   bool
		want   bool
	}{
		{name: "a local rename's tree is scanned", want: true},
		{name: "the agent's own rename's tree is not", ownPID: own},
		{name: "a local swap's trees are scanned", swap: true, want: true},
		{name: "the agent's own swap's trees are not", ownPID: own, swap: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startOwn(t, true, false, tc.ownPID)
			for _, d := range []string{"x", "y"} {
				if err := os.Mkdir(filepath.Join(e.root, d), 0o755); err != nil {
					t.Fatal(err)
				}
				e.record(d)
			}
			if err := os.WriteFile(filepath.Join(e.root, "x", "s"), []byte("s"), 0o644); err != nil {
				t.Fatal(err)
			}
			e.record("x/s")
			// Reported, never recorded: the index lacks them.
			for _, p := range []string{"x/u", "y/v"} {
				if err := os.WriteFile(filepath.Join(e.root, p), []byte(p), 0o644); err != nil {
					t.Fatal(err)
				}
				e.waitFor(p, finishedWrite(p))
			}
			e.quiet()
			before := len(e.seen)
			found := []string{"d/u"}
			if tc.swap {
				e.rename("x", "t")
				e.rename("y", "x")
				e.rename("t", "y")
				found = []string{"y/u", "x/v"}
			} else {
				e.rename("x", "d")
			}
			e.localMarker()
			got := slices.ContainsFunc(e.seen[before:], func(c change.Change) bool { return slices.Contains(found, c.Path) })
			if got != tc.want {
				t.Fatalf("%v reported: %v, want %v; saw %v", found, got, tc.want, describe(e.seen[before:]))
			}
		})
	}
}

// rename renames from to to, both below the root.
func (e *env) rename(from, to string) {
	e.t.Helper()
	if err := os.Rename(filepath.Join(e.root, from), filepath.Join(e.root, to)); err != nil {
		e.t.Fatal(err)
	}
}

// localMarker writes a file here, a local change that must come, waits
// for it and then until the detector is quiet: what a test did before it
// has been reported by then, or never will be.
func (e *env) localMarker() {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.root, "marker"), []byte("local"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor("the marker", finishedWrite("marker"))
	e.quiet()
}

// quiet drains the detector's changes until none came for half a second
// (a write's later events, reported after it was found finished), so that
// a change awaited next comes from what the test does next.
func (e *env) quiet() {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		n := len(e.seen)
		time.Sleep(500 * time.Millisecond)
		e.drain()
		if len(e.seen) == n {
			return
		}
	}
	e.t.Fatal("the detector kept reporting changes for 10 s")
}

func (e *env) drain() {
	for {
		select {
		case c := <-e.out:
			e.seen = append(e.seen, c)
		default:
			return
		}
	}
}

func TestDetector_SlowWriterIsReadyOnlyAfterClose(t *testing.T) {
	eachSource(t, testSlowWriter)
}

// testSlowWriter writes a file over 3 seconds, a line every 300 ms (longer
// than the settle period), and checks that it is finished only after close.
func testSlowWriter(t *testing.T, useFanotify bool) {
	e := start(t, useFanotify)
	f, err := os.Create(filepath.Join(e.root, "slow.log"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := fmt.Fprintf(f, "line %d\n", i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	e.drain()
	for _, c := range e.seen {
		if c.Path == "slow.log" && c.Finished {
			t.Fatalf("slow.log reported finished while its writer still had it open: %v", describe(e.seen))
		}
	}
	closedAt := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("slow.log after its close", finishedWrite("slow.log"))
	t.Logf("finished change %v after the close", time.Since(closedAt))
}

// fiftyFilesRecorded writes f00 to f49 in the root, waits for them and
// records them, as the agent would once they went out; what was seen is
// forgotten.
func (e *env) fiftyFilesRecorded() {
	e.t.Helper()
	for i := range 50 {
		name := fmt.Sprintf("f%02d", i)
		if err := os.WriteFile(filepath.Join(e.root, name), []byte(name), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.waitFor("the last file", finishedWrite("f49"))
	for i := range 50 {
		e.record(fmt.Sprintf("f%02d", i))
	}
	e.drain()
	e.seen = nil
}

// refusesTheRoot waits for the detector to stop with ErrRootChanged, its
// root being what (unmounted, replaced), and checks that it reported no
// deletion on the way.
func (e *env) refusesTheRoot(what string) {
	e.t.Helper()
	select {
	case err := <-e.done:
		if !errors.Is(err, index.ErrRootChanged) {
			e.t.Fatalf("detector stopped with %v, want ErrRootChanged", err)
		}
		e.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		e.t.Fatalf("detector still running 10s after its root was %s", what)
	}
	e.drain()
	for _, c := range e.seen {
		if c.Op.Has(change.Remove) || c.Op.Has(change.Rmdir) {
			e.t.Fatalf("deletions reported from a root %s: %v", what, describe(e.seen))
		}
	}
}

// TestDetector_HeldRootMustBeTheRoot: a caller's root (HeldRoot), opened
// before the detector's, that is not the directory the path names when
// the detector starts (swapped in between) is refused at once.
func TestDetector_HeldRootMustBeTheRoot(t *testing.T) {
	base := t.TempDir()
	root, other := filepath.Join(base, "root"), filepath.Join(base, "other")
	for _, d := range []string{root, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	idx := openIndex(t, root)
	for _, tc := range []struct {
		held    string
		refused bool
	}{{other, true}, {root, false}} {
		fd, err := unix.Open(tc.held, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		d := &Detector{Root: root, HeldRoot: &fd, Index: idx, Settle: 100 * time.Millisecond, ScanInterval: time.Hour, Log: logr.Discard()}
		ctx, cancel := context.WithCancel(context.Background())
		stop := time.AfterFunc(2*time.Second, cancel) // Run then returns nil
		err = d.Run(ctx, make(chan change.Change, 1024))
		stop.Stop()
		cancel()
		unix.Close(fd)
		switch {
		case tc.refused && !errors.Is(err, index.ErrRootChanged):
			t.Errorf("held %s: Run = %v, want ErrRootChanged", tc.held, err)
		case !tc.refused && err != nil:
			t.Errorf("held %s: Run = %v, want it to run until cancelled", tc.held, err)
		}
	}
}

// TestDetector_RootReplacedByACopyIsRefused: the root's path is given to
// an older copy of it, marker and all, on the same filesystem (mv root
// root.old; mv root.copy root): the detector stops instead of reading the
// copy, whose missing files would go out as deletions.
func TestDetector_RootReplacedByACopyIsRefused(t *testing.T) {
	eachSource(t, func(t *testing.T, useFanotify bool) {
		e := start(t, useFanotify)
		e.fiftyFilesRecorded()
		// The copy: the marker, and the first ten files only.
		cp := e.root + ".copy"
		if err := os.MkdirAll(filepath.Join(cp, index.ReservedDir), 0o755); err != nil {
			t.Fatal(err)
		}
		marker, err := os.ReadFile(filepath.Join(e.root, index.ReservedDir, "root-id"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, index.ReservedDir, "root-id"), marker, 0o644); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			name := fmt.Sprintf("f%02d", i)
			if err := os.WriteFile(filepath.Join(cp, name), []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Rename(e.root, e.root+".old"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cp, e.root); err != nil {
			t.Fatal(err)
		}
		e.refusesTheRoot("replaced by a copy")
	})
}

func TestDetector_UnmountedRootIsRefused(t *testing.T) {
	eachSource(t, func(t *testing.T, useFanotify bool) {
		e := startRoot(t, useFanotify, true)
		e.fiftyFilesRecorded()
		unix.Close(e.fdRec)
		e.fdRec = -1
		// The agent holds the root open, so a plain unmount fails; an
		// operator's lazy unmount detaches it anyway.
		if err := unix.Unmount(e.root, 0); !errors.Is(err, unix.EBUSY) {
			t.Logf("plain unmount: %v", err)
		}
		if err := unix.Unmount(e.root, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
		e.refusesTheRoot("unmounted")
	})
}

func TestDetector_HostileNamesAndExcludes(t *testing.T) {
	e := start(t, true)
	names := []string{"with space", "new\nline", "-n", "#hash", ";semi", "$(touch pwned)", "*", "back\\slash", "\xff\xfe"}
	for _, n := range append(names, ".jailsync/tmp-partial") {
		if err := os.WriteFile(filepath.Join(e.root, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		e.waitFor(fmt.Sprintf("%q", n), finishedWrite(n))
	}
	e.drain()
	for _, c := range e.seen {
		if strings.HasPrefix(c.Path, ".jailsync") {
			t.Fatalf("the reserved directory was reported: %v", describe(e.seen))
		}
	}
	// A shell run with a name would touch pwned in its working directory:
	// the root's, or this process's.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{e.root, wd} {
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Fatalf("a file name was executed: %s/pwned", dir)
		}
	}
}

func TestDetector_SubtreeMovedInIsExpanded(t *testing.T) {
	eachSource(t, func(t *testing.T, useFanotify bool) {
		e := start(t, useFanotify)
		outside := filepath.Join(filepath.Dir(e.root), "outside", "tree")
		if err := os.MkdirAll(filepath.Join(outside, "a", "b"), 0o755); err != nil {
			t.Fatal(err)
		}
		files := []string{"top", "a/one", "a/b/two"}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(outside, f), []byte(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Rename(outside, filepath.Join(e.root, "tree")); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			e.waitFor("tree/"+f, finishedWrite("tree/"+f))
		}
		// The directories themselves are changes too (their mode, owner and
		// times go to the peers), an empty one as much as any: the scan
		// that expands a directory reports what is below it only.
		isPath := func(p string) func(change.Change) bool {
			return func(c change.Change) bool { return c.Path == p }
		}
		if !slices.ContainsFunc(e.seen, isPath("tree")) {
			e.waitFor("tree", isPath("tree"))
		}
		empty := filepath.Join(filepath.Dir(e.root), "outside", "empty")
		if err := os.Mkdir(empty, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(empty, filepath.Join(e.root, "empty")); err != nil {
			t.Fatal(err)
		}
		e.waitFor("the empty directory moved in", isPath("empty"))
		for _, c := range e.seen {
			if strings.Contains(c.Path, "outside") || strings.HasPrefix(c.Path, "..") {
				t.Fatalf("a path outside the root was reported: %v", describe(e.seen))
			}
		}
	})
}

// TestDetector_Rescan: a scan asked for from outside reports what differs
// there from the index: at once (Rescan: the receiver, after renaming a
// tree that holds files this member had not sent), or after a wait
// (RescanLater: a path whose change the journal could not look at).
func TestDetector_Rescan(t *testing.T) {
	for _, tc := range []struct {
		name        string
		useFanotify bool
		ask         func(d *Detector)
	}{
		{"at once, fanotify", true, func(d *Detector) { d.Rescan("d") }},
		{"at once, scanner", false, func(d *Detector) { d.Rescan("d") }},
		{"after a wait", true, func(d *Detector) { d.RescanLater("d/mine") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.useFanotify)
			if err := os.MkdirAll(filepath.Join(e.root, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(e.root, "d", "mine"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			e.waitFor("d/mine", finishedWrite("d/mine"))
			e.record("d")
			e.record("d/mine")
			e.quiet()
			// The index holds an older state of d/mine, which no event
			// reports.
			if err := e.idx.Update(func(tx *index.Tx) error { return tx.Put("d/mine", index.Entry{Size: -1}) }); err != nil {
				t.Fatal(err)
			}
			tc.ask(e.det)
			e.waitFor("d/mine again, from the scan", func(c change.Change) bool { return c.Path == "d/mine" })
		})
	}
}

// TestDetector_WritingNamesAWriteUnderWay: while a writer holds a file it
// has written to, Writing names when that write began; once the writer
// closes it, nothing. A file written and closed at once never counts.
func TestDetector_WritingNamesAWriteUnderWay(t *testing.T) {
	e := start(t, true)
	if err := os.WriteFile(filepath.Join(e.root, "whole"), []byte("at once"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitFor("whole", finishedWrite("whole"))
	if w := e.det.Writing(); !w.IsZero() {
		t.Fatalf("Writing() = %v after a file written and closed at once, want zero", w)
	}
	before := time.Now()
	f, err := os.Create(filepath.Join(e.root, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("part"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() error {
		if w := e.det.Writing(); w.Before(before) {
			return fmt.Errorf("Writing() = %v while a writer holds open, want its start (after %v)", w, before)
		}
		return nil
	})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("open after its close", finishedWrite("open"))
	if w := e.det.Writing(); !w.IsZero() {
		t.Fatalf("Writing() = %v once open was closed and reported, want zero", w)
	}
}

// TestDetector_ComingWhileChangesWait: changes the detector holds between
// its stages, not yet reported (more than its consumer takes), count as
// coming; once every one is reported and nothing else happens, nothing is.
func TestDetector_ComingWhileChangesWait(t *testing.T) {
	e := start(t, true)
	poll.Until(t, 10*time.Second, func() error {
		if e.det.Coming() {
			return errors.New("Coming() = true at rest before any write")
		}
		return nil
	})
	// More than e.out holds: the rest wait in the detector while the test
	// reads nothing.
	files := 2 * cap(e.out)
	want := make(map[string]bool, files)
	for i := range files {
		name := fmt.Sprintf("f%04d", i)
		if err := os.WriteFile(filepath.Join(e.root, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	// Once the test's channel is full, the source's further changes wait
	// in the detector (the source may still be reading the rest).
	poll.Until(t, 10*time.Second, func() error {
		if len(e.out) < cap(e.out) {
			return fmt.Errorf("%d of %d changes reported so far", len(e.out), cap(e.out))
		}
		if !e.det.Coming() {
			return fmt.Errorf("Coming() = false with %d files written and %d changes reported", files, len(e.out))
		}
		return nil
	})
	for len(want) > 0 {
		for p := range want {
			e.waitFor(p, finishedWrite(p))
			break
		}
		for _, c := range e.seen {
			if c.Finished && c.Op.Has(change.Write) {
				delete(want, c.Path)
			}
		}
	}
	poll.Until(t, 10*time.Second, func() error {
		for len(e.out) > 0 {
			e.seen = append(e.seen, <-e.out)
		}
		if e.det.Coming() {
			return errors.New("Coming() = true with every write reported")
		}
		return nil
	})
}
