package sender

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
)

// rsyncGateEnv names the directory of a gated rsync client (gateDeletes).
const rsyncGateEnv = "JAILSYNC_SENDER_TEST_RSYNC_GATE"

// TestMain runs the test binary as a gated rsync client when a test made
// it one (gateDeletes), and the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(rsyncGateEnv); dir != "" {
		fmt.Fprintln(os.Stderr, gatedRsync(dir))
		os.Exit(1) // gatedRsync returns only when it cannot exec rsync
	}
	os.Exit(m.Run())
}

// gatedRsync is the client of a gated test: a delete (--delete-missing-
// args) says it is waiting (dir/waiting), after the sender checked its
// paths and before rsync reads them, and goes on once the test opens
// the gate (dir/open); any other run goes at once. Then it is rsync, with
// the arguments, environment and standard input it was given.
func gatedRsync(dir string) error {
	if slices.Contains(os.Args[1:], "--delete-missing-args") {
		if err := os.WriteFile(filepath.Join(dir, "waiting"), nil, 0o600); err != nil {
			return err
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, "open")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("gated rsync: %s/open not made within 30 s", dir)
			}
		}
	}
	path, err := exec.LookPath("rsync")
	if err != nil {
		return err
	}
	return syscall.Exec(path, append([]string{"rsync"}, os.Args[1:]...), os.Environ())
}

// gateDeletes has the rig's deletes wait, each, between the sender's
// check of their paths and rsync's reading of them, and returns a function
// that waits until one does and then calls between, and opens the gate
// for every delete after.
func (r *rig) gateDeletes() (whileGated func(between func())) {
	r.t.Helper()
	dir := r.t.TempDir()
	r.t.Setenv(rsyncGateEnv, dir)
	r.sender.Options.RsyncPath = os.Args[0]
	return func(between func()) {
		r.t.Helper()
		poll.Until(r.t, 20*time.Second, func() error {
			if _, err := os.Stat(filepath.Join(dir, "waiting")); err != nil {
				return errNotYet("a delete waiting at the gate")
			}
			return nil
		})
		between()
		if err := os.WriteFile(filepath.Join(dir, "open"), nil, 0o600); err != nil {
			r.t.Fatal(err)
		}
	}
}
