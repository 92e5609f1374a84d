package sender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
)

// rsyncGateEnv names the directory of a gated rsync client (gate,
// chmodWhileListed).
const rsyncGateEnv = "JAILSYNC_SENDER_TEST_RSYNC_GATE"

// TestMain runs the test binary as a gated rsync client when a test made
// it one (rsyncGateEnv), and the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(rsyncGateEnv); dir != "" {
		err := gatedRsync(dir)
		var exit *exec.ExitError
		if err == nil {
			os.Exit(0) // rsync, run as a child, succeeded
		}
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "gated rsync:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// gatedRsync is the client of a gated test, then rsync, with the
// arguments, environment and standard input it was given. An rsync whose
// arguments hold the one a test gates (dir/gate: --delete-missing-args
// for a delete, --checksum for a push by checksum) says it is waiting
// (dir/waiting), after the sender checked its paths and before rsync reads
// them, and goes on once the test opens the gate (dir/open). The first
// push of a test that changes a file while rsync lists it (dir/chmod) runs
// as chmodWhileListed says.
func gatedRsync(dir string) error {
	if cfg, err := os.ReadFile(filepath.Join(dir, "chmod")); err == nil && !slices.Contains(os.Args[1:], "--delete-missing-args") {
		if err := os.Mkdir(filepath.Join(dir, "chmodded"), 0o700); err == nil {
			return chmodWhileListing(strings.Split(string(cfg), "\x00"))
		}
	}
	if cfg, err := os.ReadFile(filepath.Join(dir, "swap")); err == nil && !slices.Contains(os.Args[1:], "--delete-missing-args") {
		if err := os.Mkdir(filepath.Join(dir, "swapped"), 0o700); err == nil {
			return swapBeforeListing(strings.Split(string(cfg), "\x00"))
		}
	}
	if arg, err := os.ReadFile(filepath.Join(dir, "gate")); err == nil && slices.Contains(os.Args[1:], string(arg)) {
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

// gate has the rig's rsync runs whose arguments hold arg (a delete's
// --delete-missing-args, a push's --checksum) wait, each, between the
// sender's check of their paths and rsync's reading of them, and returns
// a function that waits until one does and then calls between, and opens
// the gate for every such run after.
func (r *rig) gate(arg string) (whileGated func(between func())) {
	r.t.Helper()
	dir := r.gatedClient("gate", []byte(arg))
	return func(between func()) {
		r.t.Helper()
		poll.Until(r.t, 20*time.Second, func() error {
			if _, err := os.Stat(filepath.Join(dir, "waiting")); err != nil {
				return errNotYet("an rsync run waiting at the gate")
			}
			return nil
		})
		between()
		if err := os.WriteFile(filepath.Join(dir, "open"), nil, 0o600); err != nil {
			r.t.Fatal(err)
		}
	}
}

// chmodWhileListed has the rig's first push change the mode of a file
// (its path here, named file; mode) while rsync lists the run: after
// rsync has read one of names (the first of them in the list) and before
// it reads the rest, as rsync reads a list on its standard input name by
// name and looks at each as it reads it (flist.c, send_file_list).
func (r *rig) chmodWhileListed(file string, mode os.FileMode, names ...string) {
	r.t.Helper()
	cfg := append([]string{filepath.Join(r.root, file), fmt.Sprintf("%o", mode)}, names...)
	r.gatedClient("chmod", []byte(strings.Join(cfg, "\x00")))
}

// swapBeforeListed has the rig's first push swap a and b here (paths
// relative to the root, through a+".swap") once the sender has checked
// the run's paths and handed rsync its list, before rsync reads any of
// them.
func (r *rig) swapBeforeListed(a, b string) {
	r.t.Helper()
	r.gatedClient("swap", []byte(filepath.Join(r.root, a)+"\x00"+filepath.Join(r.root, b)))
}

// swapBeforeListing reads the list of a push, swaps cfg[0] and cfg[1],
// and runs rsync with the list.
func swapBeforeListing(cfg []string) error {
	if len(cfg) != 2 {
		return fmt.Errorf("swap config %q: want two paths", cfg)
	}
	list, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	tmp := cfg[0] + ".swap"
	for _, mv := range [][2]string{{cfg[0], tmp}, {cfg[1], cfg[0]}, {tmp, cfg[1]}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return err
		}
	}
	path, err := exec.LookPath("rsync")
	if err != nil {
		return err
	}
	cmd := exec.Command(path, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(list), os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd.Run()
}

// gatedClient makes the test binary the rig's rsync client (gatedRsync),
// its directory holding the file name with content, and returns that
// directory.
func (r *rig) gatedClient(name string, content []byte) string {
	r.t.Helper()
	dir := r.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.t.Setenv(rsyncGateEnv, dir)
	r.sender.Options.RsyncPath = os.Args[0]
	return dir
}

// chmodWhileListing runs rsync with the list it was given, handed over
// name by name, and sets cfg[0]'s mode to cfg[1] (octal) 200 ms after it
// handed over the first of cfg[2:].
func chmodWhileListing(cfg []string) error {
	if len(cfg) < 3 {
		return fmt.Errorf("chmod config %q: want a file, a mode and names", cfg)
	}
	var mode uint32
	if _, err := fmt.Sscanf(cfg[1], "%o", &mode); err != nil {
		return err
	}
	list, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	path, err := exec.LookPath("rsync")
	if err != nil {
		return err
	}
	cmd := exec.Command(path, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := false
	for name := range bytes.SplitSeq(bytes.TrimSuffix(list, []byte{0}), []byte{0}) {
		if _, err := in.Write(append(name, 0)); err != nil {
			return err
		}
		if !done && slices.Contains(cfg[2:], strings.TrimPrefix(string(name), "./")) { // the sender's ./ keeps a leading dash a name
			done = true
			time.Sleep(200 * time.Millisecond)
			if err := os.Chmod(cfg[0], os.FileMode(mode)); err != nil {
				return err
			}
		}
	}
	in.Close()
	return cmd.Wait()
}
