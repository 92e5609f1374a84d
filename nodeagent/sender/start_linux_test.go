package sender

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/chattr"
	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/rsync"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// Loopback addresses and ports of this package's tests (other packages use
// other ranges): a peer's daemon on 127.0.11.1, our client on 127.0.11.2.
var (
	peerAddr = netip.MustParseAddr("127.0.11.1")
	selfAddr = netip.MustParseAddr("127.0.11.2")
)

const (
	basePort     = 18800
	testPassword = "sender test secret"
)

// rig is a real Sender to a real rsync daemon: a local root with its index
// and journal, and the peer's root behind the daemon.
type rig struct {
	t        *testing.T
	root     string
	peerRoot string
	rootfd   int
	idx      *index.Index
	journal  *journal.Journal
	sender   *Sender
	mu       sync.Mutex
	runs     []Run
}

// newRig starts a daemon on basePort+slot and returns a Sender to it, not
// started; Backoff and BackoffCap are an hour, so that any backoff shows
// as a run that never comes.
func newRig(t *testing.T, slot int) *rig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: the daemon chroots and sets owners (make test runs as root)")
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Fatal("rsync not installed (bash .ci/run installs it)")
	}
	r := &rig{t: t, root: t.TempDir(), peerRoot: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(r.peerRoot, rsyncd.TempDir), 0o700); err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(peerAddr, uint16(basePort+slot))
	d := &rsyncd.Daemon{
		Config: rsyncd.Config{
			Address:  addr,
			StateDir: filepath.Join(t.TempDir(), "rsyncd"),
			Modules:  []rsyncd.Module{{Name: "g", Path: r.peerRoot, HostsAllow: []netip.Addr{selfAddr}}},
			Password: testPassword,
		},
		Log: testr.New(t),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	readyCtx, readyCancel := context.WithTimeout(ctx, 15*time.Second)
	defer readyCancel()
	if err := d.Ready(readyCtx); err != nil {
		t.Fatalf("daemon not ready: %v", err)
	}

	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	r.idx = idx
	if r.journal, err = journal.Open(idx, []string{"peer"}); err != nil {
		t.Fatal(err)
	}
	if r.rootfd, err = unix.Open(r.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(r.rootfd) })
	r.sender = &Sender{
		Group: "g", Peer: "peer", Root: r.root, Journal: r.journal,
		Target:  rsync.Target{Addr: addr, Module: "g", User: rsyncd.DefaultUser, Password: testPassword, Source: selfAddr},
		Options: rsync.Options{TempDir: "/" + rsyncd.TempDir, ConnectTimeout: 5 * time.Second, IOTimeout: 10 * time.Second},
		Backoff: time.Hour, BackoffCap: time.Hour,
		// Made here, as the agent does, not left to Start: Start would
		// make it in its own goroutine while the test signals it.
		Wake: make(chan struct{}, 1),
		Log:  testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		Report: func(run Run) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.runs = append(r.runs, run)
		},
	}
	return r
}

// start runs the sender until the test ends.
func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.sender.Start(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Errorf("Start: %v", err)
		}
	})
}

// write writes a local file and journals it, as the detector would.
func (r *rig) write(path, content string) {
	r.t.Helper()
	full := filepath.Join(r.root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	ch := []change.Change{{Path: path, Op: change.Create | change.Write, Finished: true}}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, ch); err != nil {
		r.t.Fatal(err)
	}
	select {
	case r.sender.Wake <- struct{}{}:
	default:
	}
}

func (r *rig) reported() []Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Run(nil), r.runs...)
}

// TestSender_Start_aFailingFileDoesNotHoldBackThePeer: a file the peer
// cannot take (immutable there: rsync exit 23, fatal-file) waits for its
// own backoff (an hour here), stays pending and is not marked synced, while
// a file written after it goes at once. Before, the whole peer backed off.
func TestSender_Start_aFailingFileDoesNotHoldBackThePeer(t *testing.T) {
	r := newRig(t, 0)
	if err := os.MkdirAll(filepath.Join(r.peerRoot, "ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.peerRoot, "ro", "f"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	chattr.Immutable(t, filepath.Join(r.peerRoot, "ro", "f"))
	r.start()

	r.write("ro/f", "new content") // another size: rsync's quick check must see a change
	poll.Until(t, 20*time.Second, func() error {
		for _, run := range r.reported() {
			for _, f := range run.Failures {
				if f.Entry.Path == "ro/f" {
					return nil
				}
			}
		}
		return errNotYet(fmt.Sprintf("a run that failed ro/f: %+v", r.reported()))
	})
	runs := r.reported()
	last := runs[len(runs)-1]
	if last.Class != rsync.FatalFile || last.Code != 23 || !last.Exited {
		t.Errorf("run class %v exit %d (exited %v), want fatal-file, exit 23", last.Class, last.Code, last.Exited)
	}
	if last.Failing != 1 {
		t.Errorf("Failing = %d, want 1", last.Failing)
	}

	r.write("ok", "fine")
	poll.Until(t, 20*time.Second, func() error {
		got, err := os.ReadFile(filepath.Join(r.peerRoot, "ok"))
		if err != nil || string(got) != "fine" {
			return errNotYet("ok on the peer")
		}
		return nil
	})
	if got, _ := os.ReadFile(filepath.Join(r.peerRoot, "ro", "f")); string(got) != "old" {
		t.Errorf("the immutable file changed on the peer: %q", got)
	}
	poll.Until(t, 10*time.Second, func() error {
		if st := r.journal.Stats("peer"); st.Files != 1 {
			return errNotYet("exactly ro/f pending")
		}
		return nil
	})
	for _, run := range r.reported() {
		for _, e := range run.Sent {
			if e.Path == "ro/f" {
				t.Errorf("ro/f reported synced: %+v", run)
			}
		}
		for _, f := range run.Failures {
			if f.Entry.Path == "ok" {
				t.Errorf("ok failed: %+v", f)
			}
		}
	}
}

// TestSender_Start_rsyncThatCannotStartBacksOff: a run whose rsync cannot
// even start has no exit code; it is a failure of the peer (Retry), not a
// success, and the next run waits for the backoff (an hour here) instead
// of trying again at once.
func TestSender_Start_rsyncThatCannotStartBacksOff(t *testing.T) {
	r := newRig(t, 1)
	r.sender.Options.RsyncPath = filepath.Join(t.TempDir(), "no-rsync-here")
	r.start()
	r.write("f", "x")
	poll.Until(t, 20*time.Second, func() error {
		if len(r.reported()) == 0 {
			return errNotYet("a run")
		}
		return nil
	})
	r.write("g", "y") // a wake, which must not start a run during the backoff
	time.Sleep(500 * time.Millisecond)
	runs := r.reported()
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1 and then the backoff", len(runs))
	}
	if runs[0].Err == nil || runs[0].Class != rsync.Retry || runs[0].Exited || len(runs[0].Sent) != 0 {
		t.Errorf("run: err %v, class %v, exited %v, %d sent; want an error, retry, no exit, nothing sent",
			runs[0].Err, runs[0].Class, runs[0].Exited, len(runs[0].Sent))
	}
	if st := r.journal.Stats("peer"); st.Files != 2 {
		t.Errorf("%d files pending, want 2", st.Files)
	}
}

type errNotYet string

func (e errNotYet) Error() string { return "not yet: " + string(e) }

// TestSender_Start_aFileChangedDuringItsRunIsNotMarkedSynced: a file
// rewritten while rsync reads it (the re-check after the run sees a new
// mtime) is reported Changed and stays pending, even before any event of
// the rewrite is journaled, so that no status or metric calls it synced;
// once the detector journals the rewrite it goes again and the peer ends
// with the final content. The run is slowed with BandwidthLimit so that
// the rewrite lands while the file is in transfer. The peer is told that
// big arrived without the planned size and mtime, which its copy may not
// have: it records what it holds, and must not take it for its own change.
func TestSender_Start_aFileChangedDuringItsRunIsNotMarkedSynced(t *testing.T) {
	r := newRig(t, 2)
	a := &announcements{incoming: map[string]int{}}
	serveEndpoint(t, r, a, basePort+53)
	r.sender.Options.BandwidthLimit = 256 << 10
	r.start()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i % 251)
	}
	r.write("big", string(data))
	r.untilInTransfer()
	// Rewritten in place, the size kept: rsync reads on without an error.
	f, err := os.OpenFile(filepath.Join(r.root, "big"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("rewritten while it was sent"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	first := r.firstReport()
	if len(first.Changed) != 1 || first.Changed[0].Path != "big" {
		t.Fatalf("run: changed %+v; want big (sent %+v, failures %+v)", first.Changed, first.Sent, first.Failures)
	}
	if st := r.journal.Stats("peer"); st.Files != 1 {
		t.Fatalf("%d files pending after the run; want big still pending", st.Files)
	}
	a.mu.Lock()
	if len(a.states) == 0 {
		t.Error("the run was not confirmed to the peer")
	} else if st, ok := a.states[0]["big"]; !ok || st.Regular {
		t.Errorf("the peer was told big arrived as %+v (listed %v); want no state, as the file changed during the run", st, ok)
	}
	a.mu.Unlock()
	// The detector's turn: the rewrite is journaled, and goes again.
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "big", Op: change.Write, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	r.sender.Wake <- struct{}{}
	want, err := os.ReadFile(filepath.Join(r.root, "big"))
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, func() error {
		got, err := os.ReadFile(filepath.Join(r.peerRoot, "big"))
		if err != nil || string(got) != string(want) || r.journal.Stats("peer").Files != 0 {
			return errNotYet("the final big on the peer, and nothing pending")
		}
		return nil
	})
}

// preparedClients counts the rsync push clients of this process that wait
// for their list on standard input (rsync.Warm): children named rsync
// whose command line reads --files-from=- (the daemon is a child too).
func preparedClients(t *testing.T) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range procs {
		stat, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) || !strings.Contains(string(stat), "(rsync)") {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), "--files-from=-\x00") {
			n++
		}
	}
	return n
}

// TestSender_Start_noClientIsPreparedDuringABurst: while changes are being
// journaled (a burst), the sender prepares no client for its next run
// once a run is done; once the journal is quiet it prepares one.
func TestSender_Start_noClientIsPreparedDuringABurst(t *testing.T) {
	r := newRig(t, 19)
	var journaling atomic.Bool
	journaling.Store(true)
	r.sender.Journaling = journaling.Load
	r.start()
	r.write("first", "1")
	poll.Until(t, 20*time.Second, func() error {
		if len(r.reported()) == 0 {
			return os.ErrNotExist
		}
		return nil
	})
	// Long enough for a prepared client to have started and connected.
	time.Sleep(500 * time.Millisecond)
	if n := preparedClients(t); n != 0 {
		t.Fatalf("%d clients prepared while changes are journaled, want none", n)
	}
	journaling.Store(false)
	r.sender.Wake <- struct{}{}
	poll.Until(t, 20*time.Second, func() error {
		if n := preparedClients(t); n != 1 {
			return fmt.Errorf("%d clients prepared once the journal is quiet, want 1", n)
		}
		return nil
	})
}

// TestSender_Start_aPathAPeerIsSendingGoesAgainOnceSettled: a path that a
// peer's run announced here is carrying when this member's run of it ends
// (both wrote it, or one removed it) stays pending, held as changed; once
// that run is confirmed here, the path goes to every peer again (Crossed),
// so that all end with what this member holds. Before, the run confirmed
// it, and when the other version landed on the peer before this run's and
// here after it, the two members ended apart for good.
func TestSender_Start_aPathAPeerIsSendingGoesAgainOnceSettled(t *testing.T) {
	tests := []struct {
		name   string
		slot   int
		remove bool // the change here removes f (the peer has it); else writes it
	}{
		{name: "a send", slot: 21},
		{name: "a delete", slot: 22, remove: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			var incoming atomic.Bool
			incoming.Store(true)
			r.sender.Incoming = func(p string) bool { return p == "f" && incoming.Load() }
			r.sender.Carrying = r.sender.Incoming
			crossed := make(chan []string, 4)
			r.sender.Crossed = func(paths []string) error {
				crossed <- paths
				return nil
			}
			if tc.remove {
				for _, root := range []string{r.root, r.peerRoot} {
					if err := os.WriteFile(filepath.Join(root, "f"), []byte("both"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				settle(t, r.journal, r.rootfd, "f")
				if err := os.Remove(filepath.Join(r.root, "f")); err != nil {
					t.Fatal(err)
				}
				if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "f", Op: change.Remove, Finished: true}}); err != nil {
					t.Fatal(err)
				}
			} else {
				r.write("f", "mine")
			}
			r.start()
			run := r.firstReport()
			got, err := os.ReadFile(filepath.Join(r.peerRoot, "f"))
			switch {
			case tc.remove && !errors.Is(err, fs.ErrNotExist):
				t.Fatalf("f on the peer: %q, %v; want it deleted (problems %v)", got, err, run.Problems)
			case !tc.remove && string(got) != "mine":
				t.Fatalf("f on the peer: %q, %v; want mine (problems %v)", got, err, run.Problems)
			}
			if len(run.Changed) != 1 || run.Changed[0].Path != "f" {
				t.Fatalf("run: changed %+v; want f (sent %+v, failures %+v)", run.Changed, run.Sent, run.Failures)
			}
			if st := r.journal.Stats("peer"); st.Files != 1 {
				t.Fatalf("%d files pending after the run; want f still pending", st.Files)
			}
			select {
			case paths := <-crossed:
				t.Fatalf("Crossed(%q) while the peer's run of f was still announced", paths)
			case <-time.After(3 * crossedCheck):
			}
			incoming.Store(false) // the peer's run is confirmed here
			select {
			case paths := <-crossed:
				if len(paths) != 1 || paths[0] != "f" {
					t.Fatalf("Crossed(%q), want f", paths)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("f did not go again once the peer's run was confirmed")
			}
		})
	}
}

// TestSender_Start_aWriteUnderWayKeepsALoneFileForTheNext: at rest, a
// file that closed while the next one is being written (Writing) waits
// for it, and the two go in one run; with no write under way a file goes
// at once, alone.
func TestSender_Start_aWriteUnderWayKeepsALoneFileForTheNext(t *testing.T) {
	r := newRig(t, 24)
	var writing atomic.Int64 // Unix ns of the write under way, 0: none
	r.sender.Writing = func() time.Time {
		if ns := writing.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
		return time.Time{}
	}
	// Only the end of the write, not a bound, ends the wait below (Gather
	// bounds it too, from the first change; a wake Gather after the one
	// before starts a change at rest).
	const gather = time.Second
	r.sender.WriteWait, r.sender.Gather = time.Hour, gather
	r.start()
	r.write("alone", "1")
	if sent := pathsOf(r.firstReport().Sent); !slices.Equal(sent, []string{"alone"}) {
		t.Fatalf("first run sent %q, want alone", sent)
	}

	// At rest again: the next change comes Gather after the last.
	time.Sleep(gather + 100*time.Millisecond)
	writing.Store(time.Now().UnixNano())
	r.write("first", "2")
	// Nothing may happen here; the wait is long enough for a run of one
	// file to have started and reported (the first took well under it).
	time.Sleep(300 * time.Millisecond)
	if n := len(r.reported()); n != 1 {
		t.Fatalf("%d runs while the next file was being written, want only the first", n)
	}
	r.write("second", "3")
	writing.Store(0)
	r.sender.Wake <- struct{}{}
	poll.Until(t, 30*time.Second, func() error {
		if len(r.reported()) < 2 {
			return os.ErrNotExist
		}
		return nil
	})
	runs := r.reported()
	if sent := pathsOf(runs[1].Sent); !slices.Equal(sent, []string{"first", "second"}) {
		t.Fatalf("second run sent %q, want first and second in one run", sent)
	}
	for _, p := range []string{"first", "second"} {
		if _, err := os.Stat(filepath.Join(r.peerRoot, p)); err != nil {
			t.Errorf("%s on the peer: %v", p, err)
		}
	}
}

// TestSender_Start_rsyncReadsTheRootHeldOpen: the root's path given to
// another directory (a filesystem mounted over it, a copy moved into its
// place) after the sender started: rsync reads what the sender holds open
// and planned from, not what has the path now. The file is large, so that
// its run starts a client of its own after the change (a client prepared
// before it is in the old directory already).
func TestSender_Start_rsyncReadsTheRootHeldOpen(t *testing.T) {
	r := newRig(t, 25)
	r.start()
	r.write("first", "sent before the path changed")
	poll.Until(t, 20*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(r.peerRoot, "first")); err != nil {
			return errNotYet("first on the peer")
		}
		return nil
	})
	held := r.root + ".held"
	if err := os.Rename(r.root, held); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(r.root, 0o755); err != nil {
		t.Fatal(err)
	}
	own, impostor := strings.Repeat("own", largeFileThreshold/3+1), strings.Repeat("xxx", largeFileThreshold/3+1)
	if err := os.WriteFile(filepath.Join(r.root, "b"), []byte(impostor), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(held, "b"), []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "b", Op: change.Create | change.Write, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	r.sender.Wake <- struct{}{}
	poll.Until(t, 20*time.Second, func() error {
		if r.journal.Stats("peer").Files != 0 {
			return errNotYet("b synced")
		}
		return nil
	})
	got, err := os.ReadFile(filepath.Join(r.peerRoot, "b"))
	if err != nil || string(got) != own {
		t.Fatalf("b on the peer begins %q (%v); want the file of the root held open", got[:min(len(got), 12)], err)
	}
}

// killDaemonConnections kills the children of this process's rsync
// daemons: the processes serving their connections (the daemon itself
// goes on).
func killDaemonConnections(t *testing.T) int {
	t.Helper()
	n := 0
	for _, pid := range daemonConnections(t) {
		if unix.Kill(pid, unix.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// daemonConnections returns the children of this process's rsync
// daemons: the processes serving their connections.
func daemonConnections(t *testing.T) []int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	byParent := make(map[int][]int)
	for _, p := range procs {
		stat, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		byParent[ppid] = append(byParent[ppid], pid)
	}
	var conns []int
	for _, pid := range byParent[os.Getpid()] {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), "--daemon\x00") {
			continue
		}
		conns = append(conns, byParent[pid]...)
	}
	return conns
}

// TestSender_Start_aWriteFoundUnchangedIsNotConfirmedWhenTheRunBreaksOff:
// a file written with its size and mtime kept (cp -p) is found the same
// by rsync's quick check, and goes again by checksum; when the run breaks
// off before that (here the peer's side of the connection is killed while
// a larger file is on its way), it is not confirmed, and stays pending.
func TestSender_Start_aWriteFoundUnchangedIsNotConfirmedWhenTheRunBreaksOff(t *testing.T) {
	r := newRig(t, 26)
	r.sameSizeAndMtime("a")
	r.journalFinished(change.Change{Path: "a", Op: change.Write}, r.slowBig())
	first := r.breakOffFirstRun()
	for _, e := range first.Sent {
		if e.Path == "a" {
			t.Errorf("a confirmed by a run that broke off (%v) before it could go by checksum", first.Err)
		}
	}
	if st := r.journal.Stats("peer"); st.Files != 2 {
		t.Errorf("%d files pending after the run that broke off; want a and big", st.Files)
	}
}

// TestSender_Start_aNameGoneBeforeTheChecksumPushIsStillConfirmed: a, a
// file written with its size and mtime kept, goes again by checksum with
// its other names; h, a new name of it that the first push made on the
// peer, is gone here before that second push reads it: renamed away before
// the sender checks the second push's paths, or after that and before
// rsync reads them (rsync: "No such file or directory"), or its directory
// swapped with a file then (rsync: "Not a directory"), or replaced with a
// symlink before the second push (dropped by its check). The peer is still
// told that it holds h: not told, it took h for a change of its own and
// sent it, in its old version, to every member (the stress test: that echo
// replaced the writer's newer files; seed 211 of the fifty-first session,
// the swap).
func TestSender_Start_aNameGoneBeforeTheChecksumPushIsStillConfirmed(t *testing.T) {
	renamed := func(h string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			if err := os.Rename(filepath.Join(root, h), filepath.Join(root, "g")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name       string
		slot, port int                             // the rig's, the peer handler's (basePort+)
		h          string                          // the new name
		gated      bool                            // gone at the checksum push's gate, else during the first push
		gone       func(t *testing.T, root string) // takes h away here
	}{{
		name: "renamed away before the second push", slot: 67, port: 94,
		h: "h", gone: renamed("h"),
	}, {
		name: "renamed away while the second push lists it", slot: 170, port: 171,
		h: "h", gated: true, gone: renamed("h"),
	}, {
		name: "its directory swapped with a file while the second push lists it", slot: 172, port: 173,
		h: "d/h", gated: true,
		gone: func(t *testing.T, root string) {
			if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "e")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "d"), []byte("a file"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		// The second push's check drops d/h (rsync.Dropped: its path
		// passes through a symlink now): the stress test, seed 717 of the
		// fifty-seventh session, where the writer had made the directory
		// a symlink loop.
		name: "its directory replaced with a symlink before the second push", slot: 174, port: 175,
		h: "d/h",
		gone: func(t *testing.T, root string) {
			if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "e")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("e", filepath.Join(root, "d")); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		// Past the second push's check, rsync itself fails on d/h
		// (rsync.Failed: a symlink loop): the stress test's Kill9 seed 47
		// of the sixtieth session, a hard link the first push made.
		name: "its directory replaced with a symlink loop while the second push lists it", slot: 176, port: 177,
		h: "d/h", gated: true,
		gone: func(t *testing.T, root string) {
			if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "e")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("d", filepath.Join(root, "d")); err != nil {
				t.Fatal(err)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			recv := peerReceiver(t, r)
			serveHandler(t, r, recv, basePort+uint16(tc.port))
			r.sameSizeAndMtime("a")
			if err := os.MkdirAll(filepath.Join(r.root, filepath.Dir(tc.h)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(r.root, "a"), filepath.Join(r.root, tc.h)); err != nil {
				t.Fatal(err)
			}
			changes := []change.Change{{Path: "a", Op: change.Write}, {Path: tc.h, Op: change.Create}}
			var whileGated func(func())
			if tc.gated {
				whileGated = r.gate("--checksum")
			} else {
				changes = append(changes, r.slowBig())
			}
			r.journalFinished(changes...)
			// Looked at as the first run is reported, before the next
			// starts: h, gone here, is planned again at once and deleted
			// on the peer.
			var premise, view error
			var recorded bool
			report := r.sender.Report
			var once sync.Once
			r.sender.Report = func(run Run) {
				once.Do(func() {
					if _, premise = os.Lstat(filepath.Join(r.peerRoot, tc.h)); premise == nil {
						view = recv.Index.View(func(tx *index.Tx) error {
							var err error
							recorded, err = tx.Unchanged(recv.RootFD, tc.h, false)
							return err
						})
					}
				})
				report(run)
			}
			r.start()
			if tc.gated {
				whileGated(func() { tc.gone(t, r.root) })
			} else {
				r.untilInTransfer()
				tc.gone(t, r.root)
			}
			run := r.firstReport()
			if premise != nil {
				t.Fatalf("the test's premise: the first push made %s on the peer (%v); problems %v", tc.h, premise, run.Problems)
			}
			if view != nil {
				t.Fatal(view)
			}
			if !recorded {
				t.Errorf("the peer does not hold %s as recorded: it takes the name the first push made for a change of its own; problems %v", tc.h, run.Problems)
			}
		})
	}
}

// TestSender_Start_aDirectoryMadeByARunThatBrokeOffIsConfirmed: a run
// makes a-dir on the peer (rsync itemizes it) and then breaks off (the
// peer's side of the connection is killed while big is on its way).
// a-dir stays pending here, and the peer is still told that it holds it,
// so that it records it: not told, it took the directory for a change of
// its own and sent it to every member, where it brought back, on the
// writer, a tree renamed away since (the stress test).
func TestSender_Start_aDirectoryMadeByARunThatBrokeOffIsConfirmed(t *testing.T) {
	r := newRig(t, 69)
	recv := peerReceiver(t, r)
	serveHandler(t, r, recv, basePort+96)
	if err := os.Mkdir(filepath.Join(r.root, "a-dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	r.journalFinished(change.Change{Path: "a-dir", Op: change.Mkdir}, r.slowBig())
	run := r.breakOffFirstRun()
	if _, err := os.Stat(filepath.Join(r.peerRoot, "a-dir")); err != nil {
		t.Fatalf("the test's premise: the run made a-dir on the peer (%v); problems %v", err, run.Problems)
	}
	for _, e := range run.Sent {
		if e.Path == "a-dir" {
			t.Fatalf("the test's premise: a-dir unconfirmed by a run that broke off (%v)", run.Err)
		}
	}
	if !recordedAsItIs(t, recv, "a-dir") {
		t.Errorf("the peer does not hold a-dir as recorded: it takes the directory the run made for a change of its own; problems %v", run.Problems)
	}
}

// TestSender_Start_aPeerDirectoryReplacedForAFileThatVanishedIsConfirmed:
// the peer holds the directory z (recorded, with a tree); here z is a
// file, listed in a run after big, and removed while big is on its way.
// rsync deletes the peer's directory for the file, which then vanishes
// here and never arrives; the run names z as removed by the push
// (splitVanished), and the peer records it gone. Not told, the
// peer took the removal for a change of its own and sent it to every
// member (the stress test, seed 65, the forty-ninth session).
func TestSender_Start_aPeerDirectoryReplacedForAFileThatVanishedIsConfirmed(t *testing.T) {
	r := newRig(t, 120)
	recv := peerReceiver(t, r)
	serveHandler(t, r, recv, basePort+121)
	for _, p := range []string{"z", "z/inside"} {
		if err := os.Mkdir(filepath.Join(r.peerRoot, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.peerRoot, "z/inside/x"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := recv.Index.Update(func(tx *index.Tx) error {
		for _, p := range []string{"z", "z/inside", "z/inside/x"} {
			if err := tx.Record(recv.RootFD, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.write("z", "now a file")
	r.journalFinished(r.slowBig(), change.Change{Path: "z", Op: change.Create | change.Write})
	r.start()
	r.untilInTransfer()
	if err := os.Remove(filepath.Join(r.root, "z")); err != nil {
		t.Fatal(err)
	}
	run := r.firstReport()
	if _, err := os.Lstat(filepath.Join(r.peerRoot, "z")); !os.IsNotExist(err) {
		t.Fatalf("the test's premise: rsync deleted the peer's z for the file (%v); problems %v", err, run.Problems)
	}
	if !recordedAsItIs(t, recv, "z") {
		t.Errorf("the peer still holds z in its index, gone there: it takes the push's removal for a change of its own; problems %v", run.Problems)
	}
}

// sameSizeAndMtime writes rel here and on the peer with different
// contents of one size and one mtime: rsync's quick check finds them the
// same (cp -p, touch -r).
func (r *rig) sameSizeAndMtime(rel string) {
	r.t.Helper()
	mtime := time.Unix(1700000000, 0)
	for path, content := range map[string]string{
		filepath.Join(r.root, rel):     "new content!",
		filepath.Join(r.peerRoot, rel): "old content!",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			r.t.Fatal(err)
		}
	}
}

// slowBig slows the rig's pushes (256 KiB/s) and writes big, 1 MiB: a
// run that pushes it lasts about 4 s, the window a test acts in while
// big is on its way (untilInTransfer). It returns big's change, to
// journal.
func (r *rig) slowBig() change.Change {
	r.t.Helper()
	r.sender.Options.BandwidthLimit = 256 << 10
	if err := os.WriteFile(filepath.Join(r.root, "big"), make([]byte, 1<<20), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return change.Change{Path: "big", Op: change.Create | change.Write}
}

// breakOffFirstRun starts the sender, kills the peer's side of its first
// run's connection once a file is on its way (slowBig), and returns that
// run's report.
func (r *rig) breakOffFirstRun() Run {
	r.t.Helper()
	r.start()
	r.untilInTransfer()
	if n := killDaemonConnections(r.t); n == 0 {
		r.t.Fatal("no daemon connection to kill")
	}
	return r.firstReport()
}

// untilInTransfer waits until a file is on its way to the peer (in the
// daemon's temp directory there).
func (r *rig) untilInTransfer() {
	r.t.Helper()
	tmp := filepath.Join(r.peerRoot, rsyncd.TempDir)
	poll.Until(r.t, 20*time.Second, func() error {
		if des, err := os.ReadDir(tmp); err != nil || len(des) == 0 {
			return errNotYet("a file in transfer on the peer")
		}
		return nil
	})
}
