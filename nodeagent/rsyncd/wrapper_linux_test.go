package rsyncd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemon_Run_wrapper starts the daemon through a wrapper that execs
// rsync in its place (env(1) here; `nodeagent audit exec` on FreeBSD): it
// serves, and the supervised pid is the daemon's own.
func TestDaemon_Run_wrapper(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 31
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal("no env(1) on PATH")
	}
	d := &Daemon{Config: testConfig(t, n), Wrapper: []string{env, "--"}}
	startDaemon(t, d)
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", d.PID()))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(comm)); got != "rsync" {
		t.Errorf("supervised pid %d runs %q, want rsync (the wrapper must exec in place)", d.PID(), got)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push through the wrapped daemon: exit %d: %s", code, out)
	}
}
