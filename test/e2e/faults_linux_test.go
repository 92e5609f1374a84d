package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/poll"
)

// kill9 kills a node's agent without warning and waits for it.
func (c *cluster) kill9(node string) {
	c.t.Helper()
	cmd := c.procs[node]
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_, _ = cmd.Process.Wait()
}

func TestStandalone_Kill9MidBurstConverges(t *testing.T) {
	c := start(t, 3, 18530)
	dir := filepath.Join(c.roots["n1"], "burst")
	must(t, os.Mkdir(dir, 0o755))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), []byte(fmt.Sprintf("content %d", i)), 0o644)
			if i%50 == 0 {
				time.Sleep(5 * time.Millisecond) // a burst that lasts about half a second
			}
		}
	}()
	// Kill n1 once replication of the burst is under way on a peer.
	peerDir := filepath.Join(c.roots["n2"], "burst")
	poll.Until(t, 20*time.Second, func() error {
		if es, _ := os.ReadDir(peerDir); len(es) == 0 {
			return fmt.Errorf("nothing of the burst on n2 yet")
		}
		return nil
	})
	c.kill9("n1")
	written, _ := os.ReadDir(dir)
	received, _ := os.ReadDir(peerDir)
	<-done
	t.Logf("n1 killed with %d files written and %d on n2", len(written), len(received))
	if len(received) >= 5000 {
		t.Fatal("the burst was replicated before the kill: the test shows nothing")
	}
	// Changes made while the agent was down are found by its start-up scan.
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "while-down"), []byte("x"), 0o644))
	c.startAgent("n1")
	c.converged("n1")
}

func TestStandalone_PeerDownCatchesUp(t *testing.T) {
	c := start(t, 3, 18540)
	c.kill9("n3")
	// Down long enough for the backoff to reach its cap many times over.
	defer func(start time.Time) { t.Logf("n3 was down for %v", time.Since(start).Round(time.Second)) }(time.Now())
	for i := range 200 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("while-n3-down-%03d", i)), []byte("x"), 0o644))
	}
	must(t, os.Remove(filepath.Join(c.roots["n1"], "while-n3-down-007")))
	// n2 is not held back by n3 being down.
	poll.Until(t, 20*time.Second, func() error {
		want, _ := snapshot(c.roots["n1"])
		got, _ := snapshot(c.roots["n2"])
		if d := diff(want, got); d != "" {
			return fmt.Errorf("n2: %s", d)
		}
		return nil
	})
	time.Sleep(5 * time.Second)
	c.startAgent("n3")
	back := time.Now()
	c.converged("n1")
	t.Logf("n3 caught up %v after it came back", time.Since(back).Round(time.Millisecond))
}

func TestStandalone_StuckPeerDoesNotSlowOthers(t *testing.T) {
	c := start(t, 3, 18550)
	// Stop n3's rsync daemon: it still accepts TCP connections.
	pidData, err := os.ReadFile(filepath.Join(c.states["n3"], "rsyncd", "rsyncd.pid"))
	must(t, err)
	var pid int
	_, err = fmt.Sscan(string(pidData), &pid)
	must(t, err)
	must(t, unix.Kill(pid, unix.SIGSTOP))
	t.Cleanup(func() { _ = unix.Kill(pid, unix.SIGCONT) })
	start := time.Now()
	for i := range 20 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("f%02d", i)), []byte("x"), 0o644))
	}
	poll.Until(t, 20*time.Second, func() error {
		want, _ := snapshot(c.roots["n1"])
		got, _ := snapshot(c.roots["n2"])
		if d := diff(want, got); d != "" {
			return fmt.Errorf("n2: %s", d)
		}
		return nil
	})
	t.Logf("n2 held everything %v after the writes, with n3's daemon stopped", time.Since(start).Round(time.Millisecond))
	must(t, unix.Kill(pid, unix.SIGCONT))
	c.converged("n1")
}

func TestStandalone_UnmountedRootLosesNothing(t *testing.T) {
	c := start(t, 3, 18560)
	for i := range 50 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("keep%02d", i)), []byte("precious"), 0o644))
	}
	c.converged("n1")
	// Unmount n2's data (its root is a directory on its own tmpfs) from
	// under the running agent, lazily, as an operator might.
	fs := filepath.Dir(c.roots["n2"])
	must(t, unix.Unmount(fs, unix.MNT_DETACH))
	must(t, os.MkdirAll(c.roots["n2"], 0o755)) // an empty directory where the root was
	// n2's agent must stop, refusing the root, instead of propagating the
	// empty directory as 50 deletions.
	exited := make(chan error, 1)
	go func() { _, err := c.procs["n2"].Process.Wait(); exited <- err }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("n2's agent still runs 10 s after its root was unmounted")
	}
	time.Sleep(time.Second)
	for _, node := range []string{"n1", "n3"} {
		got, err := snapshot(c.roots[node])
		must(t, err)
		if len(got) != 50 {
			t.Fatalf("%s holds %d files after n2's root was unmounted, want all 50", node, len(got))
		}
	}
}

func TestStandalone_SigtermDrainsWithinTenSeconds(t *testing.T) {
	c := startSpec(t, 3, 18580, "", "    bandwidthLimit: 256Ki\n")
	// A transfer that takes long at 256 KiB/s: in flight when SIGTERM comes.
	big := make([]byte, 3<<20) // 12 s at 256 KiB/s
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "big"), big, 0o644))
	poll.Until(t, 20*time.Second, func() error {
		es, _ := os.ReadDir(filepath.Join(c.roots["n2"], ".jailsync", "tmp"))
		if len(es) == 0 {
			return fmt.Errorf("no transfer in flight to n2 yet")
		}
		return nil
	})
	start := time.Now()
	must(t, c.procs["n1"].Process.Signal(syscall.SIGTERM))
	exited := make(chan struct{})
	go func() { _, _ = c.procs["n1"].Process.Wait(); close(exited) }()
	select {
	case <-exited:
		t.Logf("n1 exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("n1 still runs 10 s after SIGTERM")
	}
	// The journal survived: restarted, n1 finishes the job.
	c.startAgent("n1")
	c.converged("n1")
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
	target := "rsync://jailsync@127.0.5.2:18595/www/"
	tests := []struct {
		name, password, source string
	}{
		{"a member's address with a wrong password", "guess", "127.0.5.3"},
		{"a host not in the group with the right password", "e2e-secret", "127.0.5.99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			read := exec.Command("rsync", "-r", "--contimeout=5", "--timeout=10", "--address="+tc.source, target, dst+"/")
			read.Env = append(os.Environ(), "RSYNC_PASSWORD="+tc.password)
			if out, err := read.CombinedOutput(); err == nil {
				t.Fatalf("read through the daemon succeeded:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(dst, "secret")); err == nil {
				t.Fatal("the stranger got the file")
			}
			src := t.TempDir()
			must(t, os.WriteFile(filepath.Join(src, "planted"), []byte("x"), 0o644))
			write := exec.Command("rsync", "-r", "--contimeout=5", "--timeout=10", "--address="+tc.source, src+"/", target)
			write.Env = append(os.Environ(), "RSYNC_PASSWORD="+tc.password)
			if out, err := write.CombinedOutput(); err == nil {
				t.Fatalf("write through the daemon succeeded:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(c.roots["n1"], "planted")); err == nil {
				t.Fatal("the stranger planted a file")
			}
		})
	}
}
