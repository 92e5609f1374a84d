package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/internal/proc"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/rsync"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// kill9 kills a node's agent without warning and waits for it.
func (c *cluster) kill9(node string) {
	c.t.Helper()
	cmd := c.procs[node]
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_, _ = cmd.Process.Wait()
}

// stop stops a node's agent with SIGTERM and waits for it.
func (c *cluster) stop(node string) {
	c.t.Helper()
	_ = c.procs[node].Process.Signal(syscall.SIGTERM)
	_, _ = c.procs[node].Process.Wait()
}

// peersOf returns the members other than node.
func (c *cluster) peersOf(node string) []string {
	return slices.DeleteFunc(slices.Clone(c.nodes), func(n string) bool { return n == node })
}

// durable reads what a stopped agent's restart will send, from its state
// directory and root: per peer, the paths its journal holds (journaled,
// not confirmed), plus the paths its start-up scan finds, which are those
// the index has no entry for (never journaled) or whose lstat is no
// longer what the index recorded (changed after their last record, such
// as a directory that got entries while the agent was down), each path
// once. Also how many paths the root holds.
func (c *cluster) durable(node string) (paths int, toSend map[string]int64) {
	c.t.Helper()
	idx, err := index.Open(filepath.Join(c.states[node], "index.db"))
	must(c.t, err)
	defer idx.Close()
	j, err := journal.Open(idx, c.peersOf(node))
	must(c.t, err)
	onDisk, err := snapshot(c.roots[node])
	must(c.t, err)
	rootfd, err := unix.Open(c.roots[node], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(c.t, err)
	defer unix.Close(rootfd)
	found := map[string]bool{} // what the start-up scan journals
	err = idx.View(func(tx *index.Tx) error {
		for p := range onDisk {
			same, err := tx.Unchanged(rootfd, p, false)
			if err != nil {
				return err
			}
			if !same {
				found[p] = true
			}
		}
		return nil
	})
	must(c.t, err)
	toSend = map[string]int64{}
	for _, peer := range c.peersOf(node) {
		pending, err := j.Next(peer, math.MaxInt32, nil)
		must(c.t, err)
		paths := maps.Clone(found)
		for _, e := range pending {
			paths[e.Path] = true
		}
		toSend[peer] = int64(len(paths))
	}
	return len(onDisk), toSend
}

func TestStandalone_Kill9MidBurstConverges(t *testing.T) {
	c := start(t, 3, 18530)
	dir := filepath.Join(c.roots["n1"], "burst")
	must(t, os.Mkdir(dir, 0o755))
	done := make(chan struct{})
	var writeErr error // read after done
	go func() {
		defer close(done)
		for i := range 5000 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), []byte(fmt.Sprintf("content %d", i)), 0o644); err != nil && writeErr == nil {
				writeErr = err
			}
			if i%10 == 0 {
				// A burst that lasts about 2.5 s: the kill (once 100
				// paths are confirmed on each peer, a few hundred ms in)
				// lands while it is still written. Half a second was
				// replicated whole before the kill once runs got faster
				// (lists read on the peer).
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	// Kill n1 once it has confirmed a part of the burst on each peer.
	const confirmedBeforeKill = 100
	poll.Until(t, 20*time.Second, func() error {
		r, err := c.status("n1")
		if err != nil {
			return err
		}
		for _, p := range r.Peers {
			if p.FilesSynced < confirmedBeforeKill {
				return fmt.Errorf("n1 has confirmed %d paths on %s", p.FilesSynced, p.Target)
			}
		}
		return nil
	})
	c.kill9("n1")
	peerDir := filepath.Join(c.roots["n2"], "burst")
	written, _ := os.ReadDir(dir)
	received, _ := os.ReadDir(peerDir)
	<-done
	must(t, writeErr) // all 5,000 written, or the burst converged is a smaller one
	t.Logf("n1 killed with %d files written and %d on n2", len(written), len(received))
	if len(received) >= 5000 {
		t.Fatal("the burst was replicated before the kill: the test shows nothing")
	}
	// Changes made while the agent was down are found by its start-up scan.
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "while-down"), []byte("x"), 0o644))

	// Nothing unchanged is sent again (nodeagent/journal). Record commits
	// a path's journal entries and its index entry in one transaction,
	// and a run's confirmations are committed before they are counted
	// (FilesSynced). So after the crash every path under the root is
	// either in the index (journaled: pending for a peer, or confirmed on
	// it) or not (never journaled), and the restart must send each peer
	// exactly the entries still pending for it plus the paths its
	// start-up scan finds (unindexed, or changed since their record, such
	// as the burst's directory when files were written after the kill);
	// nothing it confirmed before the kill (at least the
	// confirmedBeforeKill counted, less any path counted twice) goes to it
	// again. Exact, because nothing is written while the restarted agent
	// runs (so no path is journaled twice, and each is confirmed once).
	// Read from the state directory while n1 is down, with the agent's
	// own packages.
	paths, want := c.durable("n1")
	for p := range want {
		t.Logf("n1 -> %s after the kill: %d of %d paths to send (pending, or found by the start-up scan), %d confirmed before the kill",
			p, want[p], paths, int64(paths)-want[p])
		if want[p] >= int64(paths) {
			t.Errorf("n1 -> %s: %d of %d paths to send after the kill: the confirmations made before it were lost", p, want[p], paths)
		}
	}
	c.startAgent("n1")
	c.converged("n1")
	sent := c.settledSends("n1")
	for p, w := range want {
		if sent[p].files != w {
			t.Errorf("n1 -> %s: the restarted agent confirmed %d files, want exactly %d (what was pending or never journaled)", p, sent[p].files, w)
		}
	}

	// With nothing changed, a restart sends nothing at all, after a clean
	// stop and after kill -9 alike, and no peer sends anything either.
	synced := func(node string) map[string]int64 {
		r, err := c.status(node)
		must(t, err)
		out := map[string]int64{}
		for _, p := range r.Peers {
			out[p.Target] = p.FilesSynced
		}
		return out
	}
	for _, node := range c.nodes {
		c.settledSends(node) // nothing pending anywhere
	}
	others := map[string]map[string]int64{}
	for _, node := range c.peersOf("n1") {
		others[node] = synced(node)
	}
	for _, restart := range []struct {
		how  string
		stop func(string)
	}{{"SIGTERM", c.stop}, {"kill -9", c.kill9}} {
		restart.stop("n1")
		c.startAgent("n1")
		c.waitReady()
		// The start-up scan compares 5,002 paths on tmpfs in milliseconds;
		// a run would follow within milliseconds of its finding.
		time.Sleep(3 * time.Second)
		r, err := c.status("n1")
		must(t, err)
		if r.Changes != 0 {
			t.Errorf("restart after %s: n1 journaled %d changes, want none", restart.how, r.Changes)
		}
		for _, p := range r.Peers {
			if p.FilesSynced != 0 || p.PendingFiles != 0 {
				t.Errorf("restart after %s: n1 -> %s: %d files synced, %d pending, want none", restart.how, p.Target, p.FilesSynced, p.PendingFiles)
			}
		}
		ss, err := c.metrics("n1")
		must(t, err)
		// One start-up scan, counted for each peer.
		starts := series(ss, "jailsync_rescans_total", map[string]string{"reason": "start"})
		if len(starts) != len(r.Peers) {
			t.Errorf("restart after %s: n1's start-up scans %v, want one series per peer (%d)", restart.how, starts, len(r.Peers))
		}
		for _, s := range starts {
			if s.value != 1 || s.labels["peer"] == "" || s.labels["group"] == "" {
				t.Errorf("restart after %s: n1's start-up scans %s%v = %v, want 1 for a named peer and group", restart.how, s.name, s.labels, s.value)
			}
		}
		for _, s := range series(ss, "jailsync_rsync_runs_total", nil) {
			if s.value != 0 {
				t.Errorf("restart after %s: n1 ran rsync: %s%v = %v", restart.how, s.name, s.labels, s.value)
			}
		}
		for node, before := range others {
			if now := synced(node); !maps.Equal(now, before) {
				t.Errorf("restart of n1 after %s: %s's files synced went from %v to %v", restart.how, node, before, now)
			}
		}
	}
}

// TestStandalone_PeerDownCatchesUp: a peer down for as many failed runs as
// an hour gives at the real backoff cap (500 ms here) gets, within
// moments of its return, what was written and deleted meanwhile (the
// deleted files it held before it went down among them); the other peer
// was not held back.
func TestStandalone_PeerDownCatchesUp(t *testing.T) {
	c := start(t, 3, 18540)
	for i := range 10 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("before-%d", i)), []byte("x"), 0o644))
	}
	c.converged("n1")
	c.kill9("n3")
	// Down long enough for the backoff to reach its cap many times over.
	defer func(start time.Time) { t.Logf("n3 was down for %v", time.Since(start).Round(time.Second)) }(time.Now())
	for i := range 200 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("while-n3-down-%03d", i)), []byte("x"), 0o644))
	}
	must(t, os.Remove(filepath.Join(c.roots["n1"], "while-n3-down-007")))
	for i := range 5 {
		must(t, os.Remove(filepath.Join(c.roots["n1"], fmt.Sprintf("before-%d", i))))
	}
	// n2 is not held back by n3 being down.
	poll.Until(t, 20*time.Second, func() error { return c.holds("n2", "n1") })
	// 15 s down: a backoff doubling from 100 ms without the cap would
	// wait 12.8 s after the failure at 12.7 s, and n3 would get nothing
	// for about 10 s after its return.
	time.Sleep(15 * time.Second)
	c.startAgent("n3")
	back := time.Now()
	c.convergedWithin("n1", 8*time.Second)
	t.Logf("n3 caught up %v after it came back", time.Since(back).Round(time.Millisecond))
	if _, err := os.Lstat(filepath.Join(c.roots["n3"], "before-0")); err == nil {
		t.Error("before-0, deleted while n3 was down, is still on n3")
	}
}

// TestStandalone_PeerKilledMidRunKeepsDeletions: a peer killed while a
// run to it is under way (some of its files in place, the rest on their
// way at the bandwidth limit) comes back holding files that it never
// recorded. Files deleted on the sender meanwhile stay deleted on every
// member, and the members end identical. Before, the sender's first run
// after the return, whose push failed while the returning peer's daemon
// was not up yet, confirmed nothing and still released the held paths: the
// returning peer took the files for new ones of its own and sent them
// back to every member (seen in CI as a flake of
// TestStandalone_PeerDownCatchesUp).
func TestStandalone_PeerKilledMidRunKeepsDeletions(t *testing.T) {
	c := startSpec(t, 3, 18610, "", "    bandwidthLimit: 256Ki\n")
	data := make([]byte, 128<<10) // half a second each at 256 KiB/s
	_, _ = rand.NewChaCha8([32]byte{2}).Read(data)
	for i := range 10 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("before-%d", i)), data, 0o644))
	}
	// Killed once the first two are in place on n3, long before its run
	// (5 s) ends and is confirmed.
	poll.Until(t, 20*time.Second, func() error {
		for _, name := range []string{"before-0", "before-1"} {
			if _, err := os.Lstat(filepath.Join(c.roots["n3"], name)); err != nil {
				return err
			}
		}
		return nil
	})
	// n1's runs to n3 that rsync ended with exit 0: those before the kill.
	runsEnded := func() (float64, error) {
		ss, err := c.metrics("n1")
		var n float64
		for _, s := range series(ss, "jailsync_rsync_runs_total", map[string]string{"peer": "n3", "exit_code": "0"}) {
			n += s.value
		}
		return n, err
	}
	runsBefore, err := runsEnded()
	must(t, err)
	c.kill9("n3")
	if _, err := os.Lstat(filepath.Join(c.roots["n3"], "before-9")); err == nil {
		t.Fatal("n3 had the whole run before it was killed; the test needs a run cut off")
	}
	for _, name := range []string{"before-0", "before-1"} {
		must(t, os.Remove(filepath.Join(c.roots["n1"], name)))
	}
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "while-n3-down"), []byte("x"), 0o644))
	poll.Until(t, 30*time.Second, func() error { return c.holds("n2", "n1") })
	// The cut run's push goes on into n3's old daemon's connection until
	// its end; its confirmation then fails (n3's endpoint is gone), and n1
	// counts the run (as exited 0) once it has given up on it. Only then
	// does n3 come back: its first confirmations are of runs that follow.
	poll.Until(t, 30*time.Second, func() error {
		if n, err := runsEnded(); err != nil || n == runsBefore {
			return errors.Join(err, errors.New("n1's cut run to n3 has not ended"))
		}
		return nil
	})
	// n3 comes back while its rsync daemon cannot start yet (its port
	// is taken, as by the connections of its old daemon, which it stops
	// first): n1's runs to it are announced, and their pushes fail.
	taken, err := net.Listen("tcp", fmt.Sprintf("127.0.5.4:%d", c.port))
	must(t, err)
	go func() {
		for {
			conn, err := taken.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	c.startAgent("n3")
	deleted := func(when string, nodes ...string) {
		t.Helper()
		for _, node := range nodes {
			for _, name := range []string{"before-0", "before-1"} {
				if _, err := os.Lstat(filepath.Join(c.roots[node], name)); err == nil {
					t.Errorf("%s: %s, deleted on n1 while n3 was down, is on %s", when, name, node)
				}
			}
		}
	}
	time.Sleep(3 * time.Second) // n1's failed runs to n3, and what n3 would send
	deleted("while n3's daemon could not start", "n1", "n2")
	taken.Close()
	c.converged("n1")
	deleted("once the members were identical", c.nodes...)
}

func TestStandalone_StuckPeerDoesNotSlowOthers(t *testing.T) {
	c := start(t, 3, 18550)
	// A first write, replicated everywhere, after which n1's sender to n3
	// has prepared a push client for its next run; give it a moment to
	// connect, so that the stop finds its connection process to stop too
	// (without one, every run to n3 is a new connection, which the stop
	// holds all the same).
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "before"), []byte("x"), 0o644))
	c.converged("n1")
	cont := c.stopDaemon(t, "n3", 2)
	// A sender that waited for the stuck peer would wait for its
	// timeouts: 10 s for a new connection's greeting (rsync --contimeout),
	// 60 s for data on a connection already open (--timeout; rsync
	// DefaultConnectTimeout, DefaultIOTimeout). n2 must hold each wave
	// well before the first of them could pass: 5 s, against milliseconds
	// on loopback. The second wave finds n1's runs to n3 hanging.
	const notSlowed = 5 * time.Second
	var all []string
	for wave := range 2 {
		start := time.Now()
		for i := range 20 {
			name := fmt.Sprintf("w%d-f%02d", wave, i)
			all = append(all, name)
			must(t, os.WriteFile(filepath.Join(c.roots["n1"], name), []byte(name), 0o644))
		}
		poll.Until(t, 20*time.Second, func() error { return c.holds("n2", "n1") })
		took := time.Since(start)
		t.Logf("wave %d: n2 held everything %v after the writes, with n3's daemon stopped", wave, took.Round(time.Millisecond))
		if took > notSlowed {
			t.Errorf("wave %d: n2 held everything only %v after the writes: slowed by the stuck peer (bound %v)", wave, took.Round(time.Millisecond), notSlowed)
		}
		// The stop holds: no process of n3's daemon wrote anything.
		for _, name := range all {
			if _, err := os.Lstat(filepath.Join(c.roots["n3"], name)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s reached n3 (%v) while its daemon's process group was stopped: the test shows nothing", name, err)
			}
		}
	}
	cont()
	back := time.Now()
	c.converged("n1")
	t.Logf("n3 caught up %v after SIGCONT", time.Since(back).Round(time.Millisecond))
}

// TestStandalone_RemovalCrossingAWriteKeepsTheWrite: a file removed on n1
// while n1's agent was down, and written on n2 meanwhile. When n1 comes
// back, its start-up scan finds the removal and sends it at once, while
// n2's sender waits out its backoff (the agents' default cap, 30 s, here:
// the 8 s n1 was down put n2's next try about 4.7 s after n1's return).
// n2's newer version, which n1 never had, is pending there and has not
// been announced to n1 (an announced one holds n1's removal until it has
// landed). The removal must not delete it (modify beats delete), and the
// write then reaches n1. Before, n2 refused the replayed removal (its
// version pending) and n1's run deleted the path all the same with
// rsync's --delete-missing-args: the write was lost on every member.
func TestStandalone_RemovalCrossingAWriteKeepsTheWrite(t *testing.T) {
	c := startCluster(t, 2, 18645, clusterOptions{args: []string{"--retry-backoff-cap", "30s"}})
	report := func(node string) string { return filepath.Join(c.roots[node], "report") }
	must(t, os.WriteFile(report("n1"), []byte("v1 by n1"), 0o644))
	c.converged("n1")
	c.stop("n1")
	must(t, os.Remove(report("n1")))
	v2 := []byte("v2 by n2, written after n1's copy")
	must(t, os.WriteFile(report("n2"), v2, 0o644))
	// n2's runs to n1 fail, and its backoff grows.
	time.Sleep(8 * time.Second)
	c.startAgent("n1")
	c.everyMemberHolds(t, "report", v2)
	c.converged("n2")
}

// TestStandalone_RemovalOfAReceivedFileGoesWhileAPeerIsDown: n1 removes a
// file it received from n2, while n3 is down and n2's write of it is still
// pending there for n3. What n1 removed is n2's version, as n2 holds it:
// the removal goes on n2 at once (n2's refusal of the replayed removal,
// for its change pending, does not keep it), and on n3 once it is back.
// Refused for that pending change alone, the removal would be undone:
// every member would end with the file.
func TestStandalone_RemovalOfAReceivedFileGoesWhileAPeerIsDown(t *testing.T) {
	c := start(t, 3, 18650)
	report := func(node string) string { return filepath.Join(c.roots[node], "report") }
	must(t, os.WriteFile(report("n1"), []byte("v1 by n1"), 0o644))
	c.converged("n1")
	c.stop("n3")
	must(t, os.WriteFile(report("n2"), []byte("v2 by n2"), 0o644))
	// n1 holds n2's version, confirmed; n2's write is pending for n3.
	poll.Until(t, 15*time.Second, func() error {
		if p, err := c.peerStatus("n2", "n1"); err != nil || p.PendingFiles != 0 {
			return fmt.Errorf("n2's write not confirmed by n1 yet (%+v, %v)", p, err)
		}
		if p, err := c.peerStatus("n2", "n3"); err != nil || p.PendingFiles != 1 {
			return fmt.Errorf("n2's write not pending for n3 (%+v, %v)", p, err)
		}
		return nil
	})
	if data, err := os.ReadFile(report("n1")); err != nil || string(data) != "v2 by n2" {
		t.Fatalf("n1 holds %q (%v), want n2's version", data, err)
	}
	before, err := c.peerStatus("n1", "n2")
	must(t, err)
	must(t, os.Remove(report("n1")))
	c.settledWith(t, "n1", "n2", before)
	if _, err := os.Lstat(report("n2")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("n2 still holds the file n1 removed (%v): n1 removed n2's version", err)
	}
	c.startAgent("n3")
	c.everyMemberHolds(t, "report", nil)
	c.converged("n1")
}

// TestStandalone_RemovalOfAFileBeingWrittenKeepsTheWrite: n1 removes a
// file that a process on n2 is writing. n2 has journaled nothing of that
// write (a file its writer holds is journaled once it is let go), so no
// change of n2's is pending: n2 keeps the file because it is neither as
// its index holds it nor what n1 removed. Once the writer closes it, the
// write reaches every member. Before, the replayed removal unlinked it
// under its writer, and everything written to it was lost.
func TestStandalone_RemovalOfAFileBeingWrittenKeepsTheWrite(t *testing.T) {
	c := start(t, 3, 18655)
	log := func(node string) string { return filepath.Join(c.roots[node], "app.log") }
	must(t, os.WriteFile(log("n1"), []byte("v1 by n1\n"), 0o644))
	c.converged("n1")
	c.removeWhileWriting(t, "app.log", os.O_TRUNC, "app.log")
	c.converged("n2")
}

// removeWhileWriting has n2 open rel for writing (flag added to O_WRONLY)
// and write a line, then n1 remove what its name remove holds (rm -r);
// once n1's runs to n2 have settled, n2 must still hold rel. n2 then
// writes a second line and closes rel, and every member must come to
// hold both lines.
func (c *cluster) removeWhileWriting(t *testing.T, rel string, flag int, remove string) {
	t.Helper()
	w, err := os.OpenFile(filepath.Join(c.roots["n2"], rel), os.O_WRONLY|flag, 0o644)
	must(t, err)
	defer w.Close()
	_, err = w.WriteString("n2, line 1\n")
	must(t, err)
	before, err := c.peerStatus("n1", "n2")
	must(t, err)
	must(t, os.RemoveAll(filepath.Join(c.roots["n1"], remove)))
	c.settledWith(t, "n1", "n2", before)
	if _, err := os.Lstat(filepath.Join(c.roots["n2"], rel)); err != nil {
		t.Fatalf("n2's %s, open for writing, after n1's removal of %s: %v; want it kept", rel, remove, err)
	}
	_, err = w.WriteString("n2, line 2\n")
	must(t, err)
	must(t, w.Close())
	c.everyMemberHolds(t, rel, []byte("n2, line 1\nn2, line 2\n"))
}

// A directory removed on one member while a process on another is still
// writing a new file below it: the peer's removal of the directory does not
// take that file with it. The file stays, with its directories; what else
// was below the directory goes, as on the remover; and once the writer
// closes it, every member holds what it wrote.
func TestStandalone_RemovalOfADirectoryWithAFileBeingWrittenKeepsTheWrite(t *testing.T) {
	c := start(t, 3, 18660)
	at := func(node, rel string) string { return filepath.Join(c.roots[node], rel) }
	must(t, os.MkdirAll(at("n1", "logs/old"), 0o755))
	must(t, os.WriteFile(at("n1", "logs/old/a.log"), []byte("a by n1\n"), 0o644))
	must(t, os.WriteFile(at("n1", "logs/b.log"), []byte("b by n1\n"), 0o644))
	c.converged("n1")
	c.removeWhileWriting(t, "logs/app.log", os.O_CREATE|os.O_EXCL, "logs")
	c.everyMemberHolds(t, "logs/b.log", nil)
	c.everyMemberHolds(t, "logs/old", nil)
	c.converged("n2")
}

// A directory made again on the peer, with a file being written in it, in
// the moment between the replay of a removal of that directory there and
// the removal's own rsync run: the run does not delete what was made since.
// Both daemons are stopped to stretch that moment: n2's holds n1's
// deletion run at its greeting (rsync --contimeout is 10 s: the stop is
// shorter), n1's keeps n2's new directory from reaching n1 first, which
// would make n1's rsync send the directory instead of deleting it.
func TestStandalone_RemovalReplayedThenMadeAgainKeepsTheWrite(t *testing.T) {
	c := start(t, 3, 18665)
	at := func(node, rel string) string { return filepath.Join(c.roots[node], rel) }
	must(t, os.MkdirAll(at("n1", "logs"), 0o755))
	must(t, os.WriteFile(at("n1", "logs/old.log"), []byte("old by n1\n"), 0o644))
	c.converged("n1")
	before, err := c.peerStatus("n1", "n2")
	must(t, err)
	cont2 := c.stopDaemon(t, "n2", 3)
	must(t, os.RemoveAll(at("n1", "logs")))
	poll.Until(t, 5*time.Second, func() error {
		if _, err := os.Lstat(at("n2", "logs")); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("n2 still holds logs (%v): n1's removal not replayed there yet", err)
		}
		return nil
	})
	cont1 := c.stopDaemon(t, "n1", 1)
	must(t, os.Mkdir(at("n2", "logs"), 0o755))
	w, err := os.OpenFile(at("n2", "logs/app.log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	must(t, err)
	defer w.Close()
	_, err = w.WriteString("n2, line 1\n")
	must(t, err)
	time.Sleep(500 * time.Millisecond) // n2's mkdir journaled, its run to n1 held by n1's stop
	cont2()
	c.settledWith(t, "n1", "n2", before)
	if _, err := os.Lstat(at("n2", "logs/app.log")); err != nil {
		t.Fatalf("n2's new logs/app.log, open for writing, after n1's removal of logs went: %v; want it kept", err)
	}
	cont1()
	_, err = w.WriteString("n2, line 2\n")
	must(t, err)
	must(t, w.Close())
	c.everyMemberHolds(t, "logs/app.log", []byte("n2, line 1\nn2, line 2\n"))
	c.everyMemberHolds(t, "logs/old.log", nil)
	c.converged("n2")
}

// settledWith waits until node's runs to target have settled what was
// pending, past the files synced of before (a status of that peer taken
// before the change).
func (c *cluster) settledWith(t *testing.T, node, target string, before syncv1.PeerStatus) {
	t.Helper()
	poll.Until(t, 15*time.Second, func() error {
		p, err := c.peerStatus(node, target)
		if err != nil || p.PendingFiles != 0 || p.FilesSynced <= before.FilesSynced {
			return fmt.Errorf("%s's change not settled with %s yet (%+v, %v)", node, target, p, err)
		}
		return nil
	})
}

// everyMemberHolds waits until every member holds rel with content want,
// or, with want nil, none holds it.
func (c *cluster) everyMemberHolds(t *testing.T, rel string, want []byte) {
	t.Helper()
	poll.Until(t, 20*time.Second, func() error {
		for _, node := range c.nodes {
			data, err := os.ReadFile(filepath.Join(c.roots[node], rel))
			switch {
			case want == nil && !errors.Is(err, fs.ErrNotExist):
				return fmt.Errorf("%s still holds %s (%v)", node, rel, err)
			case want != nil && (err != nil || !bytes.Equal(data, want)):
				return fmt.Errorf("%s holds %q at %s (%v), want %q", node, data, rel, err, want)
			}
		}
		return nil
	})
}

// peerStatus is node's status of its peer target.
func (c *cluster) peerStatus(node, target string) (syncv1.PeerStatus, error) {
	r, err := c.status(node)
	if err != nil {
		return syncv1.PeerStatus{}, err
	}
	for _, p := range r.Peers {
		if p.Target == target {
			return p, nil
		}
	}
	return syncv1.PeerStatus{}, fmt.Errorf("status of %s: no peer %s", node, target)
}

// stopDaemon stops node's rsync daemon with every process of its group:
// the daemon leads its own process group (rsyncd: Setpgid), and the
// connection processes it forked are in it, among them the ones already
// serving the push clients the peers prepared ahead of their next runs
// (the daemon's pid alone would leave those serving). Stopped, it still
// completes TCP handshakes (the listen backlog): runs to node connect and
// then wait. It first waits up to 5 s for the group to hold procs
// processes (the daemon and the connections the peers prepared). cont
// lets the group go on; it runs at the test's end at the latest, before
// the agents are stopped.
func (c *cluster) stopDaemon(t *testing.T, node string, procs int) (cont func()) {
	t.Helper()
	pidData, err := os.ReadFile(filepath.Join(c.states[node], "rsyncd", "rsyncd.pid"))
	must(t, err)
	var pid int
	_, err = fmt.Sscan(string(pidData), &pid)
	must(t, err)
	pgid, err := unix.Getpgid(pid)
	must(t, err)
	if pgid != pid {
		t.Fatalf("%s's rsync daemon %d is in process group %d, not its own", node, pid, pgid)
	}
	for deadline := time.Now().Add(5 * time.Second); len(proc.Group(pgid)) < procs && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	cont = func() { _ = unix.Kill(-pgid, unix.SIGCONT) }
	t.Cleanup(cont) // registered after start's, so it runs first
	must(t, unix.Kill(-pgid, unix.SIGSTOP))
	t.Logf("%s's rsync daemon stopped: process group %d, %d processes", node, pgid, len(proc.Group(pgid)))
	return cont
}

func TestStandalone_UnmountedRootLosesNothing(t *testing.T) {
	c := start(t, 3, 18560)
	for i := range 50 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("keep%02d", i)), []byte("precious"), 0o644))
	}
	c.converged("n1")
	want, err := snapshot(c.roots["n1"])
	must(t, err)
	// Unmount n2's data (its root is a directory on its own tmpfs) from
	// under the running agent, lazily, as an operator might.
	fs := filepath.Dir(c.roots["n2"])
	must(t, unix.Unmount(fs, unix.MNT_DETACH))
	must(t, os.MkdirAll(c.roots["n2"], 0o755)) // an empty directory where the root was
	// n2's agent must stop, refusing the root, instead of propagating the
	// empty directory as 50 deletions.
	c.refusesRootWithin(t, "n2", 10*time.Second, "its root was unmounted")
	time.Sleep(time.Second)
	c.lostNothing(t, want, "n1", "n3")
	// Started again on the empty directory, as after a reboot that did not
	// mount the data: it refuses at once, and neither deletes on its peers
	// nor fills the directory from them.
	c.startAgent("n2")
	c.refusesRootWithin(t, "n2", 10*time.Second, "it started on an empty directory where its root was")
	time.Sleep(time.Second)
	c.lostNothing(t, want, "n1", "n3")
	if es, err := os.ReadDir(c.roots["n2"]); err != nil || len(es) != 0 {
		t.Errorf("the empty directory where n2's root was holds %d entries (%v), want none", len(es), err)
	}
	// The others go on without n2.
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "later"), []byte("after n2 stopped"), 0o644))
	poll.Until(t, 30*time.Second, func() error { return c.holds("n3", "n1") })
}

// refusesRootWithin fails t unless node's agent exits refusing its data
// root (refusedRoot) within limit after what happened.
func (c *cluster) refusesRootWithin(t *testing.T, node string, limit time.Duration, what string) {
	t.Helper()
	select {
	case st := <-c.exited(node):
		c.refusedRoot(t, node, st)
	case <-time.After(limit):
		t.Fatalf("%s's agent still runs %v after %s", node, limit, what)
	}
}

// lostNothing fails t unless each of nodes holds want, path by path.
func (c *cluster) lostNothing(t *testing.T, want map[string]string, nodes ...string) {
	t.Helper()
	for _, node := range nodes {
		if err := c.holdsTree(node, "the tree before", want); err != nil {
			t.Fatal(err)
		}
	}
}

// bigInFlight writes a file of size bytes on n1 and waits until its
// transfer to n2 is in flight (a temp file in n2's reserved directory).
func (c *cluster) bigInFlight(t *testing.T, size int) {
	t.Helper()
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "big"), big, 0o644))
	poll.Until(t, 20*time.Second, func() error {
		if len(tempFiles(c.roots["n2"], "big")) == 0 {
			return fmt.Errorf("no transfer in flight to n2 yet")
		}
		return nil
	})
}

// tempFiles returns the temp files of name that a node's daemon is
// receiving into its reserved directory (rsyncd.TempDir), where rsync
// names them name.XXXXXX.
func tempFiles(root, name string) []fs.FileInfo {
	es, _ := os.ReadDir(filepath.Join(root, rsyncd.TempDir))
	var out []fs.FileInfo
	for _, e := range es {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), name+".") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out = append(out, fi)
		}
	}
	return out
}

// exited receives node's agent's exit state when it has exited.
func (c *cluster) exited(node string) <-chan *os.ProcessState {
	done := make(chan *os.ProcessState, 1)
	go func() { st, _ := c.procs[node].Process.Wait(); done <- st }()
	return done
}

// refusedRoot fails t unless node's agent exited with status 1 (an error
// of its own, not a signal or a crash) saying that its data root changed
// or went missing.
func (c *cluster) refusedRoot(t *testing.T, node string, st *os.ProcessState) {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(c.states[node], "agent.log"))
	must(t, err)
	if st == nil || st.ExitCode() != 1 || !bytes.Contains(log, []byte("data root changed")) && !bytes.Contains(log, []byte("data root missing")) {
		t.Fatalf("%s exited %v; want exit status 1 refusing its data root", node, st)
	}
}

func TestStandalone_SigtermDrainsWithinTenSeconds(t *testing.T) {
	c := startSpec(t, 3, 18580, "", "    bandwidthLimit: 256Ki\n")
	// A transfer that takes long at 256 KiB/s: in flight when SIGTERM comes.
	c.bigInFlight(t, 3<<20) // 12 s at 256 KiB/s
	start := time.Now()
	must(t, c.procs["n1"].Process.Signal(syscall.SIGTERM))
	exited := c.exited("n1")
	select {
	case st := <-exited:
		t.Logf("n1 exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		if st == nil || st.ExitCode() != 0 {
			// Not killed by the signal (Go's default), nor failed: drained.
			t.Fatalf("n1 exited %v after SIGTERM, want status 0", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("n1 still runs 10 s after SIGTERM")
	}
	// The journal survived: restarted, n1 finishes the job.
	c.startAgent("n1")
	c.converged("n1")
}

// TestStandalone_RefusedRootStopsRunsAtOnce: a sender whose own root is
// unmounted while a long transfer is in flight stops that run with the
// group, instead of letting it push from a root just refused until it ends
// (the drain on SIGTERM is for a signal, not for a failure).
func TestStandalone_RefusedRootStopsRunsAtOnce(t *testing.T) {
	c := startSpec(t, 3, 18585, "", "    bandwidthLimit: 256Ki\n")
	c.bigInFlight(t, 4<<20) // 16 s at 256 KiB/s
	start := time.Now()
	must(t, unix.Unmount(filepath.Dir(c.roots["n1"]), unix.MNT_DETACH))
	exited := c.exited("n1")
	select {
	case st := <-exited:
		t.Logf("n1 exited %v after its root was unmounted", time.Since(start).Round(time.Millisecond))
		c.refusedRoot(t, "n1", st)
	case <-time.After(8 * time.Second):
		t.Fatal("n1 still runs 8 s after its root was unmounted: its transfer (16 s) went on")
	}
}

// TestStandalone_ReceiverRestartResumesALargeFile: a receiver's agent
// stopped (SIGTERM) while half of a 48 MiB file has arrived keeps what
// arrived as a partial file across its restart, and the sender's next
// attempt sends only the rest: the bytes on the wire to that peer stay
// well under the file's size, while the other peer received all of it.
// The cut run must not count the file as synced: its client had logged
// it sent (it logs a file once the data is sent), and before rsync.settle
// heeded the exit code, the file stayed missing on the peer for good.
func TestStandalone_ReceiverRestartResumesALargeFile(t *testing.T) {
	c := startSpec(t, 3, 18575, "", "    bandwidthLimit: 8Mi\n")
	const size = 48 << 20
	big := make([]byte, size) // random: no block repeats, so a delta cannot shrink the rest
	_, _ = rand.NewChaCha8([32]byte{1}).Read(big)
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "big"), big, 0o644))
	poll.Until(t, 30*time.Second, func() error {
		tmp := tempFiles(c.roots["n2"], "big")
		for _, fi := range tmp {
			if fi.Size() >= size/2 {
				return nil
			}
		}
		return fmt.Errorf("less than half of big has reached n2 (%d temp files)", len(tmp))
	})
	c.stop("n2")
	// Where this rsync cannot resume from the module's partial directory
	// (before 3.4.4: every attempt failed verification, and the file never
	// landed), the agent pushes without one: no partial file is kept, and
	// the file goes again whole.
	resumes, err := rsync.ResumesFromPartialDir(context.Background(), "", t.TempDir())
	must(t, err)
	partial, err := os.ReadDir(filepath.Join(c.roots["n2"], ".jailsync", "partial"))
	must(t, err)
	switch {
	case resumes && len(partial) != 1:
		t.Fatalf("n2's partial directory holds %d entries after its stop, want the partial file", len(partial))
	case !resumes && len(partial) != 0:
		t.Fatalf("n2's partial directory holds %d entries after its stop; this rsync cannot resume from one, and the agent passes none", len(partial))
	case resumes:
		if fi, err := partial[0].Info(); err == nil {
			t.Logf("n2 kept %d of %d bytes as a partial file", fi.Size(), size)
		}
	default:
		t.Logf("this rsync cannot resume from a partial directory: big goes to n2 again whole")
	}
	c.startAgent("n2")
	began := time.Now()
	c.convergedWithin("n1", time.Minute)
	t.Logf("converged %v after n2's restart", time.Since(began))
	var sent map[string]float64
	poll.Until(t, 20*time.Second, func() error {
		ss, err := c.metrics("n1")
		if err != nil {
			return err
		}
		sent = map[string]float64{}
		for _, peer := range []string{"n2", "n3"} {
			for _, s := range series(ss, "jailsync_bytes_sent_total", map[string]string{"peer": peer}) {
				sent[peer] += s.value
			}
		}
		if sent["n3"] < size {
			return fmt.Errorf("bytes sent %v: n3's run not confirmed yet", sent)
		}
		return nil
	})
	t.Logf("bytes on the wire: to n2 %.0f, to n3 %.0f", sent["n2"], sent["n3"])
	switch {
	case resumes && (sent["n2"] <= 0 || sent["n2"] > 0.75*size):
		t.Errorf("n1 sent n2 %.0f bytes after its restart; want the rest of the file only (under %d)", sent["n2"], size*3/4)
	case !resumes && sent["n2"] < size:
		t.Errorf("n1 sent n2 %.0f bytes after its restart; with no partial file to resume from, want all %d", sent["n2"], size)
	}
}

// TestStandalone_LargeFileShowsProgress: while a large file is in
// transfer (24 MiB at 8 MiB/s, about 3 s), `nodeagent status` shows its
// pending bytes falling before the run ends and is confirmed, the file
// still pending; once it is on the peers, nothing is pending.
func TestStandalone_LargeFileShowsProgress(t *testing.T) {
	c := startSpec(t, 3, 18555, "", "    bandwidthLimit: 8Mi\n")
	const size = 24 << 20
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i * 13)
	}
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "big"), big, 0o644))
	var seen []int64
	poll.Until(t, 20*time.Second, func() error {
		r, err := c.status("n1")
		if err != nil {
			return err
		}
		for _, p := range r.Peers {
			if p.Target == "n2" && p.PendingFiles == 1 {
				seen = append(seen, p.PendingBytes)
				if p.PendingBytes > 0 && p.PendingBytes < size {
					return nil
				}
			}
		}
		return fmt.Errorf("no transfer to n2 in progress yet (pending bytes seen with the file pending: %v)", seen)
	})
	c.converged("n1")
	poll.Until(t, 10*time.Second, func() error {
		r, err := c.status("n1")
		if err != nil {
			return err
		}
		for _, p := range r.Peers {
			if p.PendingFiles != 0 || p.PendingBytes != 0 {
				return fmt.Errorf("%s: %d files, %d bytes pending after the file arrived", p.Target, p.PendingFiles, p.PendingBytes)
			}
		}
		return nil
	})
}

func TestStandalone_SlowWriterNeverHalfWrittenOnPeers(t *testing.T) {
	c := start(t, 3, 18590)
	f, err := os.Create(filepath.Join(c.roots["n1"], "slow.log"))
	must(t, err)
	var final atomic.Pointer[[]byte] // the complete content, once closed
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() { // watch the peers while the writer writes
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, node := range []string{"n2", "n3"} {
				data, err := os.ReadFile(filepath.Join(c.roots[node], "slow.log"))
				want := final.Load()
				if err == nil && (want == nil || string(data) != string(*want)) {
					select {
					case bad <- fmt.Sprintf("%s shows slow.log with %d bytes before its writer closed it", node, len(data)):
					default:
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for i := range 10 {
		_, err := fmt.Fprintf(f, "line %d of a file written over 3 seconds\n", i)
		must(t, err)
		time.Sleep(300 * time.Millisecond)
	}
	data, err := os.ReadFile(f.Name())
	must(t, err)
	final.Store(&data)
	must(t, f.Close())
	c.converged("n1")
	close(stop)
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
}

func TestStandalone_DaemonRefusesStrangers(t *testing.T) {
	c := start(t, 2, 18595)
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "secret"), []byte("members only"), 0o600))
	c.converged("n1")
	target := fmt.Sprintf("rsync://jailsync@127.0.5.2:%d/www/", c.port)
	// The controls: a member with the password reads and writes, so the
	// refusals below are the daemon's, not an address nobody listens on
	// or a module that takes nothing.
	mustReadThroughDaemon(t, target, "127.0.5.3", "e2e-secret", "secret")
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "from-a-member"), []byte("x"), 0o644))
	if out, err := rsyncFrom("127.0.5.3", "e2e-secret", src+"/", target).CombinedOutput(); err != nil {
		t.Fatalf("a member could not write through the daemon: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(c.roots["n1"], "from-a-member")); err != nil {
		t.Fatalf("a member's write through the daemon did not land: %v", err)
	}
	// What the daemon answers, and what it logs (rsync clientserver.c,
	// rsync_module): a host that hosts allow refuses is told that an
	// unlisted module (list = no) does not exist, and the log says why.
	tests := []struct {
		name, password, source string
		refusal, logged        string
	}{
		{"a member's address with a wrong password", "guess", "127.0.5.3",
			"@ERROR: auth failed on module www", "auth failed on module www from UNDETERMINED (127.0.5.3)"},
		{"a host not in the group with the right password", "e2e-secret", "127.0.5.99",
			"@ERROR: Unknown module 'www'", "rsync denied on module www from UNDETERMINED (127.0.5.99)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			if out, err := rsyncFrom(tc.source, tc.password, target, dst+"/").CombinedOutput(); err == nil || !bytes.Contains(out, []byte(tc.refusal)) {
				t.Fatalf("read through the daemon: %v\n%s\nwant the daemon's refusal (%s)", err, out, tc.refusal)
			}
			if _, err := os.Stat(filepath.Join(dst, "secret")); err == nil {
				t.Fatal("the stranger got the file")
			}
			src := t.TempDir()
			must(t, os.WriteFile(filepath.Join(src, "planted"), []byte("x"), 0o644))
			if out, err := rsyncFrom(tc.source, tc.password, src+"/", target).CombinedOutput(); err == nil || !bytes.Contains(out, []byte(tc.refusal)) {
				t.Fatalf("write through the daemon: %v\n%s\nwant the daemon's refusal (%s)", err, out, tc.refusal)
			}
			if _, err := os.Stat(filepath.Join(c.roots["n1"], "planted")); err == nil {
				t.Fatal("the stranger planted a file")
			}
			log, err := os.ReadFile(filepath.Join(c.states["n1"], "rsyncd", "rsyncd.log"))
			must(t, err)
			if n := bytes.Count(log, []byte(tc.logged)); n != 2 {
				t.Errorf("the daemon logged %q %d times, want 2 (the read and the write)", tc.logged, n)
			}
		})
	}
}

// TestStandalone_InsecureRunsWithoutAPassword: a group file without a
// transport Secret is refused unless the agent is given --insecure; with
// it the members replicate through daemon modules that ask for no
// password (no "auth users", no secrets file), and a host that is not a
// member is still refused.
func TestStandalone_InsecureRunsWithoutAPassword(t *testing.T) {
	c := startCluster(t, 3, 18535, clusterOptions{insecure: true})

	refused := exec.Command(binary, "run", "--config", c.config, "--node", "n1", "--root", t.TempDir(), "--state-dir", t.TempDir())
	out, err := refused.CombinedOutput()
	if code := refused.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "pass --insecure") {
		t.Fatalf("without --insecure: exit %d, %v:\n%s\nwant exit 1 saying to pass --insecure", code, err, out)
	}

	for _, node := range c.nodes {
		conf, err := os.ReadFile(filepath.Join(c.states[node], "rsyncd", "rsyncd.conf"))
		must(t, err)
		if strings.Contains(string(conf), "auth users") || strings.Contains(string(conf), "secrets file") {
			t.Errorf("%s: rsyncd.conf asks for a password:\n%s", node, conf)
		}
		if _, err := os.Stat(filepath.Join(c.states[node], "rsyncd", "rsyncd.secrets")); err == nil {
			t.Errorf("%s: a secrets file was written", node)
		}
	}
	must(t, os.WriteFile(filepath.Join(c.roots["n2"], "open"), []byte("no password"), 0o644))
	c.converged("n2")

	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "planted"), []byte("x"), 0o644))
	target := fmt.Sprintf("rsync://127.0.5.2:%d/www/", c.port)
	// The control: a member reads without a password.
	mustReadThroughDaemon(t, target, "127.0.5.3", "", "open")
	if out, err := rsyncFrom("127.0.5.99", "", src+"/", target).CombinedOutput(); err == nil || !bytes.Contains(out, []byte("@ERROR")) {
		t.Fatalf("a stranger wrote through an insecure member's daemon: %v\n%s\nwant the daemon's refusal (@ERROR)", err, out)
	}
	if _, err := os.Stat(filepath.Join(c.roots["n1"], "planted")); err == nil {
		t.Fatal("the stranger planted a file")
	}
}

// mustReadThroughDaemon reads target from address source with password
// (none when empty) and fails t unless the file name came with it.
func mustReadThroughDaemon(t *testing.T, target, source, password, name string) {
	t.Helper()
	dst := t.TempDir()
	if out, err := rsyncFrom(source, password, target, dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("a member (%s) could not read %s: %v\n%s", source, target, err, out)
	}
	if _, err := os.Stat(filepath.Join(dst, name)); err != nil {
		t.Fatalf("a member (%s) read %s without %s: %v", source, target, name, err)
	}
}

// rsyncFrom is an rsync client copying src to dst (-r) from address
// source, with password (RSYNC_PASSWORD; none when empty), bounded by the
// same timeouts as the agents' clients, shortened.
func rsyncFrom(source, password, src, dst string) *exec.Cmd {
	cmd := exec.Command("rsync", "-r", "--contimeout=5", "--timeout=10", "--address="+source, src, dst)
	cmd.Env = append(os.Environ(), "RSYNC_PASSWORD="+password)
	return cmd
}
