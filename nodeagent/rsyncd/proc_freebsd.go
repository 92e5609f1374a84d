package rsyncd

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// processArgs returns pid's argument vector from the kern.proc.args sysctl
// (sysctl(3) KERN_PROC_ARGS, what procstat -c reads); a zombie has none.
// Arguments longer than kern.ps_arg_cache_limit are not cached, and the
// kernel then reads them from the process's memory, which root may.
func processArgs(pid int) ([]string, error) {
	b, err := unix.SysctlRaw("kern.proc.args", pid)
	if err != nil {
		return nil, fmt.Errorf("read arguments of %d: %w", pid, err)
	}
	return splitArgs(b), nil
}

// sysProcAttr puts the daemon into its own process group, so that it and
// its connection processes are signalled together, and has the kernel kill
// it when the agent exits (procctl(2) PROC_PDEATHSIG_CTL, which follows the
// parent process, not a thread).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// groupMembers is not implemented here (kern.proc.pgrp returns kinfo_proc
// records, which x/sys does not describe for FreeBSD): the connection
// processes of a daemon that died with its agent finish or time out on
// their own (--timeout).
func groupMembers(pgid int) []int { return nil }
