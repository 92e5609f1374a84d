package rsyncd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// stalePoll is how often a stale daemon is checked while it stops.
const stalePoll = 50 * time.Millisecond

// staleKillWait is how long a stale daemon may take to go after SIGKILL.
const staleKillWait = 5 * time.Second

// staleTermWait is how long a stale daemon's processes get after SIGTERM
// before SIGKILL (StopTimeout when shorter). The listener exits on SIGTERM;
// a connection process only sets a flag that its I/O loop reads as data
// moves (rsync's main.c, sig_int: "let the normal process handle the
// shutdown"), which one moving a file does within a moment, keeping its
// partial file for the sender's next try. One left idle by a peer's push
// client prepared ahead (waiting for its file list) never does: with the
// 5 s of a daemon's own stop, a restart after a kill -9 started its daemon
// 5 s late, and every peer's runs to it failed meanwhile.
const staleTermWait = time.Second

// stopStale stops the daemon named in the pid file when it is one of ours
// (an rsync --daemon started with this rsyncd.conf), left running by an
// agent that was killed (kill -9) before it could stop it: it still holds
// the port and the pid file lock, and a new daemon fails to start ("failed
// to lock pid file"). The pid is checked by its command line first, since
// it may have been reused. The pid and lock files are removed afterwards;
// a missing pid file is not an error.
//
// A daemon started by Run leads its own process group, so its connection
// processes are stopped with it. When the daemon itself is already gone
// (Pdeathsig killed it with the agent), its connection processes may
// still write into the root, unannounced: on Linux they are found by the
// group (the daemon's pid, which the kernel does not give to another
// process while the group has members) and their command line (forks of
// the daemon), and stopped too. Elsewhere they finish or time out on
// their own (--timeout).
func (d *Daemon) stopStale(ctx context.Context, log logr.Logger) error {
	pidFile := d.Config.PIDFile()
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read rsync pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	switch {
	case err != nil || pid <= 1:
		log.Info("removing unreadable rsync pid file", "pidFile", pidFile, "content", string(data))
	case !d.isOurDaemon(pid) && d.ourGroupLeft(pid):
		log.Info("stopping the connection processes of a stale rsync daemon that is gone", "pgid", pid)
		if err := d.stopForeign(ctx, pid); err != nil {
			return err
		}
	case !d.isOurDaemon(pid):
		log.Info("removing stale rsync pid file", "pidFile", pidFile, "pid", pid)
	default:
		log.Info("stopping stale rsync daemon", "pid", pid)
		if err := d.stopForeign(ctx, pid); err != nil {
			return err
		}
		log.Info("stale rsync daemon stopped", "pid", pid)
	}
	for _, f := range []string{pidFile, d.Config.LockFile()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", f, err)
		}
	}
	return nil
}

// isOurDaemon reports whether pid runs rsync --daemon with our rsyncd.conf.
// A process that is gone, a zombie (no arguments) or unreadable is not.
func (d *Daemon) isOurDaemon(pid int) bool {
	args, err := processArgs(pid)
	if err != nil || len(args) == 0 {
		return false
	}
	return strings.HasPrefix(filepath.Base(args[0]), "rsync") &&
		slices.Contains(args, "--daemon") &&
		slices.Contains(args, "--config="+d.Config.ConfigFile())
}

// ourGroupLeft reports whether process group pgid, whose leader is gone,
// still has members that are our daemon's forks.
func (d *Daemon) ourGroupLeft(pgid int) bool {
	for _, pid := range groupMembers(pgid) {
		if d.isOurDaemon(pid) {
			return true
		}
	}
	return false
}

// stopForeign stops a daemon that is not our child: SIGTERM to its group,
// SIGKILL after staleTermWait, then waits until its command line is no
// longer ours (it exited, or is a zombie waiting for its parent).
func (d *Daemon) stopForeign(ctx context.Context, pid int) error {
	grace := staleTermWait
	if d.StopTimeout > 0 {
		grace = min(grace, d.StopTimeout)
	}
	if err := signalGroup(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop stale rsync daemon: %w", err)
	}
	if d.waitGone(ctx, pid, grace) {
		return nil
	}
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill stale rsync daemon: %w", err)
	}
	if d.waitGone(ctx, pid, staleKillWait) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stop stale rsync daemon %d: %w", pid, err)
	}
	return fmt.Errorf("stale rsync daemon %d still runs after SIGKILL", pid)
}

func (d *Daemon) waitGone(ctx context.Context, pid int, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(stalePoll)
	defer tick.Stop()
	gone := func() bool { return !d.isOurDaemon(pid) && !d.ourGroupLeft(pid) }
	for {
		if gone() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return gone()
		case <-tick.C:
		}
	}
}
