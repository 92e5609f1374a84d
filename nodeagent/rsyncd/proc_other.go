//go:build !linux && !freebsd

package rsyncd

import (
	"errors"
	"syscall"
)

// processArgs cannot read another process's arguments here: a stale daemon
// is never recognised, only its pid file removed.
func processArgs(pid int) ([]string, error) {
	return nil, errors.New("reading process arguments is not supported on this system")
}

// sysProcAttr puts the daemon into its own process group; this system has
// no parent-death signal, so a killed agent leaves its daemon running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// groupMembers cannot list a process group here.
func groupMembers(pgid int) []int { return nil }
