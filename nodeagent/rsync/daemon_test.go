package rsync

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Loopback addresses and ports reserved for this package's tests: the
// daemon listens on daemonIP, the client binds clientIP (other packages use
// other ranges).
const (
	daemonAddr = "127.0.8.1"
	clientAddr = "127.0.8.2"
	basePort   = 18600
	testUser   = "jsuser"
	testSecret = "s3cret pass"
)

// daemon is a real rsync daemon with one module, "data", started for one
// test.
type daemon struct {
	addr   netip.AddrPort
	dir    string // the module's directory: what the peer holds
	state  string // config, secrets, pid, lock and log files
	cmd    *exec.Cmd
	stdout strings.Builder
}

// startDaemon starts an rsync daemon on basePort+slot; each test uses its
// own slot (0-99).
func startDaemon(t *testing.T, slot int) *daemon {
	t.Helper()
	if slot < 0 || slot > 99 {
		t.Fatalf("slot %d outside 0-99", slot)
	}
	requireRsync(t)
	base := t.TempDir()
	d := &daemon{
		addr:  netip.AddrPortFrom(netip.MustParseAddr(daemonAddr), uint16(basePort+slot)),
		dir:   filepath.Join(base, "module"),
		state: filepath.Join(base, "state"),
	}
	for _, dir := range []string{d.dir, d.state} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secrets := filepath.Join(d.state, "secrets")
	if err := os.WriteFile(secrets, []byte(testUser+":"+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`pid file = %[1]s/rsyncd.pid
lock file = %[1]s/rsyncd.lock
log file = %[1]s/rsyncd.log
address = %[2]s
port = %[3]d
reverse lookup = no
socket options = TCP_NODELAY
listen backlog = 64

[data]
path = %[4]s
use chroot = yes
munge symlinks = no
read only = no
uid = 0
gid = 0
auth users = %[5]s
secrets file = %[6]s
hosts allow = %[7]s
`, d.state, d.addr.Addr(), d.addr.Port(), d.dir, testUser, secrets, clientAddr)
	confPath := filepath.Join(d.state, "rsyncd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("rsync", "--daemon", "--no-detach", "--config="+confPath)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stdout
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start rsync daemon: %v", err)
	}
	t.Cleanup(d.stop)
	d.waitListening(t)
	return d
}

// waitListening waits until the daemon accepts connections.
func (d *daemon) waitListening(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.addr.String(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.state, "rsyncd.log"))
			t.Fatalf("rsync daemon on %s does not listen: %v\n%s\n%s", d.addr, err, d.stdout.String(), log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop resumes (a test may have stopped it) and kills the daemon's process
// group: the daemon and its per-connection children.
func (d *daemon) stop() {
	pgid := d.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGCONT)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = d.cmd.Wait()
}

// signal sends sig to the daemon's process group.
func (d *daemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-d.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("signal daemon: %v", err)
	}
}

// target is the daemon's module as a Target, with the right password.
func (d *daemon) target() Target {
	return Target{Addr: d.addr, Module: "data", User: testUser, Password: testSecret, Source: netip.MustParseAddr(clientAddr)}
}

// path is name inside the module.
func (d *daemon) path(name string) string { return filepath.Join(d.dir, name) }

// requireRsync fails the test when rsync is missing: these tests compare
// with the real rsync and must not pass without it.
func requireRsync(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Fatal("rsync is not installed: these tests run the real rsync (apt-get install rsync)")
	}
}

// fastOptions keep tests short when something hangs.
func fastOptions() Options {
	return Options{ConnectTimeout: 5 * time.Second, IOTimeout: 10 * time.Second}
}

// write creates root/name with data, making parents.
func write(t *testing.T, root, name string, data []byte) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantOutcomes checks each path's outcome.
func wantOutcomes(t *testing.T, res Result, want map[string]Outcome) {
	t.Helper()
	got := make(map[string]PathResult, len(res.Paths))
	for _, p := range res.Paths {
		got[p.Path] = p
	}
	for path, o := range want {
		p, ok := got[path]
		switch {
		case !ok:
			t.Errorf("%q: no result", path)
		case p.Outcome != o:
			t.Errorf("%q: outcome %v (%q, %s), want %v", path, p.Outcome, p.Change, p.Reason, o)
		}
	}
	if t.Failed() {
		t.Logf("exit %d, stderr:\n%s", res.Code, res.Stderr)
	}
}

// codeOf returns the code of an *ExitError, 0 for nil.
func codeOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v is not an *ExitError", err)
	}
	return ee.Code
}
