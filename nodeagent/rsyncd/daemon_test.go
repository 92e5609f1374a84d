package rsyncd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestDaemon_Run_rewriteWithoutRestart adds a module by rewriting the
// configuration: the running daemon serves it at once, same pid.
func TestDaemon_Run_rewriteWithoutRestart(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 6
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)
	pid := d.PID()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push to data: exit %d: %s", code, out)
	}
	if code, _ := push(t, n, "more", src); code != 5 {
		t.Fatalf("push to an unknown module: exit %d, want 5", code)
	}

	cfg := d.Config
	more := testModule(t, "more", n)
	cfg.Modules = append(append([]Module(nil), cfg.Modules...), more)
	if err := Write(cfg); err != nil {
		t.Fatal(err)
	}
	if code, out := push(t, n, "more", src); code != 0 {
		t.Fatalf("push to the added module: exit %d: %s", code, out)
	}
	if !exists(filepath.Join(more.Path, "f")) {
		t.Errorf("f not in the added module")
	}
	if got := d.PID(); got != pid {
		t.Errorf("pid %d after the rewrite, want %d (no restart)", got, pid)
	}
	if got := readPIDFile(t, d.Config); got != pid {
		t.Errorf("pid file %d, want %d", got, pid)
	}
}

// TestDaemon_Run_restartsAfterKill kills the daemon with SIGKILL: the
// supervisor starts a new one, which serves.
func TestDaemon_Run_restartsAfterKill(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 7
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)
	old := d.PID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "restart", func() bool { p := d.PID(); return p != 0 && p != old })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push after restart: exit %d: %s", code, out)
	}
}

// TestDaemon_Run_stopsStaleDaemon starts a daemon with the same
// configuration outside the supervisor, as a killed agent leaves it: Run
// stops it and serves with its own.
// startStale starts a daemon for d's config as a killed agent would have
// left it (in its own process group, not the test's child to stop), and
// waits until it serves and wrote its pid file.
func startStale(t *testing.T, rsync string, d *Daemon) *exec.Cmd {
	t.Helper()
	if err := Write(d.Config); err != nil {
		t.Fatal(err)
	}
	stale := exec.Command(rsync, d.args()...)
	stale.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := stale.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := stale.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }) // whatever the test left of its group
	eventually(t, 10*time.Second, "stale daemon serving", func() bool {
		return Probe(context.Background(), d.Config.Address) == nil && readPIDFile(t, d.Config) == stale.Process.Pid
	})
	return stale
}

func TestDaemon_Run_stopsStaleDaemon(t *testing.T) {
	rsync := requireRsync(t)
	t.Parallel()
	const n = 8
	d := &Daemon{Config: testConfig(t, n)}
	stale := startStale(t, rsync, d)
	staleDone := make(chan struct{}) // closed when reaped
	go func() {
		stale.Wait()
		close(staleDone)
	}()
	t.Cleanup(func() {
		stale.Process.Kill()
		<-staleDone
	})

	startDaemon(t, d)
	select { // stopped before Ready; reaped by the goroutine above
	case <-staleDone:
	case <-time.After(5 * time.Second):
		t.Fatal("stale daemon still runs after Ready")
	}
	if pid := d.PID(); pid == stale.Process.Pid || pid == 0 {
		t.Fatalf("daemon pid %d, stale %d", pid, stale.Process.Pid)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push: exit %d: %s", code, out)
	}
}

// TestDaemon_Run_keepsForeignProcess checks that a pid file naming a
// process that is not our daemon (a reused pid) does not get it killed:
// only the stale file goes.
func TestDaemon_Run_keepsForeignProcess(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 9
	d := &Daemon{Config: testConfig(t, n)}
	if err := Write(d.Config); err != nil {
		t.Fatal(err)
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	otherDone := make(chan struct{}) // closed when reaped
	go func() {
		other.Wait()
		close(otherDone)
	}()
	t.Cleanup(func() {
		other.Process.Kill()
		<-otherDone
	})
	if err := os.WriteFile(d.Config.PIDFile(), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, d)
	// A signal sent just before the daemon was ready may not have been
	// reaped yet: give it time to show.
	select {
	case <-otherDone:
		t.Fatal("foreign process ended")
	case <-time.After(300 * time.Millisecond):
	}
	if got := readPIDFile(t, d.Config); got != d.PID() {
		t.Errorf("pid file %d, want the new daemon's %d", got, d.PID())
	}
}

// TestDaemon_Run_twoDaemons runs two daemons on one host, on different
// addresses and the same port: their pid, lock and log files do not
// collide.
func TestDaemon_Run_twoDaemons(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	daemons := make([]*Daemon, 2)
	for i, n := range []int{10, 11} {
		cfg := testConfig(t, n)
		cfg.Address = netip.AddrPortFrom(daemonAddr(n).Addr(), daemonAddr(10).Port()) // same port for both
		daemons[i] = &Daemon{Config: cfg}
		startDaemon(t, daemons[i])
	}
	if daemons[0].PID() == daemons[1].PID() {
		t.Fatal("one daemon for both")
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	for i, n := range []int{10, 11} {
		d := daemons[i]
		code, out := client(t, peerAddr(n).String(), d.Config.Address.Port(), testPassword,
			"-a", "--temp-dir=/"+TempDir, src+"/", DefaultUser+"@"+d.Config.Address.Addr().String()+"::data/")
		if code != 0 {
			t.Fatalf("push to %s: exit %d: %s", d.Config.Address, code, out)
		}
		if got := readPIDFile(t, d.Config); got != d.PID() {
			t.Errorf("%s: pid file %d, want %d", d.Config.Address, got, d.PID())
		}
		if !exists(filepath.Join(d.Config.Modules[0].Path, "f")) {
			t.Errorf("%s: f not received", d.Config.Address)
		}
	}
}

// TestDaemon_Ready_stoppedDaemon stops the daemon with SIGSTOP: the kernel
// still completes TCP handshakes, so a connection succeeds, but Ready sees
// no greeting, and a client with --contimeout and --timeout gives up.
func TestDaemon_Ready_stoppedDaemon(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 12
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)
	pid := d.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Runs before startDaemon's cleanup: a stopped daemon ignores SIGTERM.
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })

	conn, err := net.DialTimeout("tcp", d.Config.Address.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("TCP connect to a stopped daemon: %v", err)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := d.Ready(ctx); !errors.Is(err, ErrNoGreeting) {
		t.Errorf("Ready: %v, want ErrNoGreeting", err)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	start := time.Now()
	code, out := client(t, peerAddr(n).String(), daemonAddr(n).Port(), testPassword,
		"--contimeout=2", "--timeout=2", "-a", src+"/", DefaultUser+"@"+daemonAddr(n).Addr().String()+"::data/")
	took := time.Since(start)
	if code != 30 && code != 35 {
		t.Errorf("exit %d, want 30 (timeout) or 35 (contimeout): %s", code, out)
	}
	if took > 30*time.Second {
		t.Errorf("client gave up after %s", took)
	}
	t.Logf("client gave up after %s with exit %d", took.Round(time.Millisecond), code)
}

// fakeClock records the restart delays asked for and fires at once.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	step   time.Duration // Now advances by step per call
	delays []time.Duration
	stop   func(n int) // called with the number of delays so far
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.delays = append(c.delays, d)
	n := len(c.delays)
	c.mu.Unlock()
	c.stop(n)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// TestDaemon_Run_backoff runs a "daemon" that exits at once and checks the
// restart delays: doubling up to the cap, or the minimum when each run
// lasted longer than the cap.
func TestDaemon_Run_backoff(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name string
		ran  time.Duration
		want []time.Duration
	}{
		{name: "failing at once", ran: 0, want: []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms}},
		{name: "running longer than the cap", ran: 2 * time.Second, want: []time.Duration{100 * ms, 100 * ms, 100 * ms}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Now is called twice per run: ran = step.
			clock := &fakeClock{step: tc.ran, stop: func(n int) {
				if n >= len(tc.want) {
					cancel()
				}
			}}
			d := &Daemon{
				Config:          testConfig(t, 90+i),
				RsyncPath:       "/bin/false",
				Log:             logr.Discard(),
				MinRestartDelay: 100 * ms,
				MaxRestartDelay: time.Second,
				Clock:           clock,
			}
			if err := d.Run(ctx); err != nil {
				t.Fatal(err)
			}
			clock.mu.Lock()
			defer clock.mu.Unlock()
			if len(clock.delays) != len(tc.want) {
				t.Fatalf("delays %v, want %v", clock.delays, tc.want)
			}
			for j := range tc.want {
				if clock.delays[j] != tc.want[j] {
					t.Fatalf("delays %v, want %v", clock.delays, tc.want)
				}
			}
		})
	}
}

// TestDaemon_Run_invalidConfig checks that Run refuses a configuration
// that cannot be written, before starting anything.
func TestDaemon_Run_invalidConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 91)
	cfg.Modules[0].Name = "bad]name"
	d := &Daemon{Config: cfg, RsyncPath: "/bin/false", Log: logr.Discard()}
	if err := d.Run(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Run: %v, want ErrInvalidConfig", err)
	}
	if exists(cfg.StateDir) {
		t.Errorf("state directory created for an invalid configuration")
	}
}

func readPIDFile(t *testing.T, cfg Config) int {
	t.Helper()
	b, err := os.ReadFile(cfg.PIDFile())
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
