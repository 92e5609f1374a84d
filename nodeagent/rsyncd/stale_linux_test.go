//go:build linux

package rsyncd

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDaemon_Run_stopsTheConnectionsOfAStaleDaemonThatIsGone: the agent
// and its daemon were killed (Pdeathsig) while a peer's push was
// arriving; the connection process goes on writing into the root. The
// next daemon's start stops it.
func TestDaemon_Run_stopsTheConnectionsOfAStaleDaemonThatIsGone(t *testing.T) {
	rsync := requireRsync(t)
	t.Parallel()
	const n = 20
	d := &Daemon{Config: testConfig(t, n)}
	stale := startStale(t, rsync, d)
	pgid := stale.Process.Pid
	// A push slow enough to be in flight: 4 MiB at 64 KiB/s.
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "big"), strings.Repeat("x", 4<<20))
	pushed := make(chan int, 1)
	go func() {
		code, _ := push(t, n, "data", src, "--bwlimit=64")
		pushed <- code
	}()
	eventually(t, 10*time.Second, "a connection process", func() bool { return len(groupMembers(pgid)) >= 2 })
	if err := stale.Process.Kill(); err != nil { // the daemon alone, as Pdeathsig does
		t.Fatal(err)
	}
	_ = stale.Wait()
	if !d.ourGroupLeft(pgid) {
		t.Fatal("the connection process went with its daemon: the test's premise")
	}

	startDaemon(t, d)
	// Zombies stay listed until reaped (this host's init may be slow to),
	// with no command line: only live forks of the daemon count.
	if d.ourGroupLeft(pgid) {
		t.Errorf("the stale daemon's connection processes (of %v) still run after the new daemon started", groupMembers(pgid))
	}
	select {
	case code := <-pushed:
		if code == 0 {
			t.Error("the push through the stopped connection succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Error("the push through the stopped connection did not end")
	}
}
