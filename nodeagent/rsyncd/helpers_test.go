package rsyncd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
)

// Address plan of this package's tests, so that they run in parallel and
// beside other packages' tests: daemon n listens on 127.0.9.n, port
// 18700+n; its allowed peer connects from 127.0.9.(100+n); 127.0.9.99 is
// never allowed.
const (
	testPassword = "pa:ss w#rd" // ':' and spaces are fine in a secrets line
	deniedClient = "127.0.9.99"
)

func daemonAddr(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 9, byte(n)}), uint16(18700+n))
}

func peerAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 0, 9, byte(100 + n)})
}

// requireRsync skips tests that need root and the real rsync.
func requireRsync(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: the daemon chroots and sets owners (make test runs as root)")
	}
	path, err := exec.LookPath("rsync")
	if err != nil {
		t.Fatal("rsync not installed (bash .ci/run installs it)")
	}
	return path
}

// testConfig is a one-module configuration for daemon n; the module
// "data" is rooted in a new directory holding the reserved temp dir.
func testConfig(t *testing.T, n int) Config {
	t.Helper()
	return Config{
		Address:  daemonAddr(n),
		StateDir: filepath.Join(t.TempDir(), "state"),
		Password: testPassword + "\n", // as read from a Secret file
		Modules:  []Module{testModule(t, "data", n)},
	}
}

func testModule(t *testing.T, name string, n int) Module {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, TempDir), 0o755); err != nil {
		t.Fatal(err)
	}
	return Module{Name: name, Path: root, HostsAllow: []netip.Addr{peerAddr(n)}}
}

// startDaemon runs d until the test ends and waits until it serves.
func startDaemon(t *testing.T, d *Daemon) {
	t.Helper()
	if d.Log.GetSink() == nil {
		d.Log = testr.New(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	readyCtx, cancelReady := context.WithTimeout(ctx, 15*time.Second)
	defer cancelReady()
	if err := d.Ready(readyCtx); err != nil {
		t.Fatal(err)
	}
}

// client runs the rsync client as a member would: bound to from, with
// numeric ids, TCP_NODELAY and timeouts. password "" sets RSYNC_PASSWORD
// empty (so rsync never prompts). It returns the exit code and output.
func client(t *testing.T, from string, port uint16, password string, args ...string) (int, string) {
	t.Helper()
	argv := []string{"--address=" + from, fmt.Sprintf("--port=%d", port), "--numeric-ids",
		"--sockopts=TCP_NODELAY", "--contimeout=5", "--timeout=10"}
	return rawClient(t, password, append(argv, args...)...)
}

// rawClient runs the rsync client with args and RSYNC_PASSWORD=password.
func rawClient(t *testing.T, password string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "RSYNC_PASSWORD=" + password}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("rsync %s: %v", strings.Join(args, " "), err)
		return -1, ""
	}
}

// push sends src/ into the module as the allowed peer of daemon n.
func push(t *testing.T, n int, module, src string, extra ...string) (int, string) {
	t.Helper()
	args := append([]string{"-a", "--temp-dir=/" + TempDir}, extra...)
	args = append(args, src+"/", fmt.Sprintf("%s@%s::%s/", DefaultUser, daemonAddr(n).Addr(), module))
	return client(t, peerAddr(n).String(), daemonAddr(n).Port(), testPassword, args...)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
