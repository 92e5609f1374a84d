package rsyncd

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// helperEnv carries the configuration to TestHelperAgent.
const helperEnv = "JAILSYNC_RSYNCD_HELPER_CONFIG"

// TestHelperAgent is not a test: TestDaemon_Run_diesWithAgent runs the test
// binary as an agent that supervises a daemon until it is killed.
func TestHelperAgent(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process for TestDaemon_Run_diesWithAgent")
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	d := &Daemon{Config: cfg, Log: logr.Discard()}
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDaemon_Run_diesWithAgent kills an agent with SIGKILL: its daemon
// dies with it (Pdeathsig), and the next agent's daemon starts at once.
func TestDaemon_Run_diesWithAgent(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 16
	cfg := testConfig(t, n)
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(os.Args[0], "-test.run=^TestHelperAgent$", "-test.count=1")
	agent.Env = append(os.Environ(), helperEnv+"="+string(raw))
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	agentDone := make(chan struct{})
	go func() {
		agent.Wait()
		close(agentDone)
	}()
	t.Cleanup(func() {
		agent.Process.Kill()
		<-agentDone
	})
	probe := &Daemon{Config: cfg}
	var daemonPID int
	t.Cleanup(func() { // when Pdeathsig failed
		if daemonPID != 0 && probe.isOurDaemon(daemonPID) {
			signalGroup(daemonPID, syscall.SIGKILL)
		}
	})
	eventually(t, 15*time.Second, "the agent's daemon serving", func() bool {
		daemonPID = readPIDFile(t, cfg)
		return daemonPID != 0 && probe.isOurDaemon(daemonPID) && Probe(context.Background(), cfg.Address) == nil
	})

	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-agentDone
	eventually(t, 10*time.Second, "the daemon gone with its agent", func() bool { return !probe.isOurDaemon(daemonPID) })

	d := &Daemon{Config: cfg}
	startDaemon(t, d)
	if d.PID() == daemonPID {
		t.Fatalf("same daemon pid %d", daemonPID)
	}
}
