package rsyncd

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/jailsync/jailsync/internal/proc"
)

// processArgs returns pid's argument vector from /proc/<pid>/cmdline
// (proc(5)); a zombie has none.
func processArgs(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, fmt.Errorf("read arguments of %d: %w", pid, err)
	}
	return splitArgs(b), nil
}

// sysProcAttr puts the daemon into its own process group, so that it and
// its connection processes are signalled together, and has the kernel kill
// it when the agent dies (the forking thread, see runOnce).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// groupMembers returns the processes of process group pgid (proc.Group).
func groupMembers(pgid int) []int { return proc.Group(pgid) }
