package rsyncd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// Defaults used when the corresponding Daemon field is zero.
const (
	DefaultMinRestartDelay = 100 * time.Millisecond
	DefaultMaxRestartDelay = 30 * time.Second
	DefaultStopTimeout     = 5 * time.Second
)

// waitDelay bounds how long Wait waits for the daemon's output pipe after
// the daemon exited: its connection processes inherit the pipe and may
// outlive it.
const waitDelay = 2 * time.Second

// Clock is the time source of the restart backoff.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Daemon runs and supervises one rsync daemon.
type Daemon struct {
	// Config is written when Run starts; later module changes are written
	// with Write (same Address and StateDir), without a restart.
	Config Config
	// RsyncPath is the rsync binary ("rsync" from PATH when empty).
	RsyncPath string
	// Log receives what the supervisor does and the daemon's own output.
	Log logr.Logger
	// MinRestartDelay and MaxRestartDelay bound the exponential backoff
	// between restarts (DefaultMinRestartDelay, DefaultMaxRestartDelay when
	// 0). A daemon that ran for MaxRestartDelay restarts after the minimum.
	MinRestartDelay, MaxRestartDelay time.Duration
	// StopTimeout is how long the daemon may take to exit after SIGTERM
	// before it gets SIGKILL (DefaultStopTimeout when 0).
	StopTimeout time.Duration
	// Credential, when set, runs the daemon under that uid/gid
	// (SysProcAttr.Credential). See the package Caveats: without root the
	// daemon cannot chroot or set owners, and the state directory and
	// secrets file must belong to that user.
	Credential *syscall.Credential
	// Wrapper, when set, is an argument vector the daemon is started
	// through: Wrapper[0] runs with Wrapper[1:], then the rsync path and the
	// daemon's arguments, and must exec rsync in its place (same pid, so
	// that supervision and the pid file still hold). The agent uses
	// `nodeagent audit exec --auid N --` on FreeBSD.
	Wrapper []string
	// Clock drives the backoff (the real clock when nil).
	Clock Clock

	mu  sync.Mutex
	pid int // the running daemon's pid, 0 when none
}

// PID is the running daemon's process id, 0 when none is running.
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pid
}

func (d *Daemon) setPID(pid int) {
	d.mu.Lock()
	d.pid = pid
	d.mu.Unlock()
}

func (d *Daemon) clock() Clock {
	if d.Clock == nil {
		return realClock{}
	}
	return d.Clock
}

// Run writes the configuration, stops a stale daemon left by a previous
// agent (see stopStale), starts rsync --daemon --no-detach and restarts it
// with exponential backoff whenever it exits, until ctx ends: then it stops
// the daemon (SIGTERM to its process group, SIGKILL after StopTimeout) and
// returns nil. It returns an error when the configuration cannot be
// written or rsync cannot be found.
func (d *Daemon) Run(ctx context.Context) error {
	rsync := d.RsyncPath
	if rsync == "" {
		rsync = "rsync"
	}
	path, err := exec.LookPath(rsync)
	if err != nil {
		return fmt.Errorf("rsync daemon: %w", err)
	}
	if d.Config.TransferLog {
		if err := checkTransferLog(ctx, path); err != nil {
			return fmt.Errorf("rsync daemon: %w", err)
		}
	}
	if err := Write(d.Config); err != nil {
		return fmt.Errorf("rsync daemon: %w", err)
	}
	log := d.Log.WithValues("address", d.Config.Address.String(), "config", d.Config.ConfigFile())
	minDelay, maxDelay := d.MinRestartDelay, d.MaxRestartDelay
	if minDelay <= 0 {
		minDelay = DefaultMinRestartDelay
	}
	if maxDelay <= 0 {
		maxDelay = DefaultMaxRestartDelay
	}
	var delay time.Duration // before the last restart; 0: none yet
	for ctx.Err() == nil {
		if err := d.stopStale(ctx, log); err != nil {
			log.Error(err, "stale rsync daemon")
		}
		started := d.clock().Now()
		err := d.runOnce(ctx, path, log)
		if ctx.Err() != nil {
			return nil
		}
		ran := d.clock().Now().Sub(started)
		delay = nextDelay(delay, ran, minDelay, maxDelay)
		log.Error(err, "rsync daemon exited; restarting", "ran", ran.String(), "delay", delay.String())
		select {
		case <-ctx.Done():
			return nil
		case <-d.clock().After(delay):
		}
	}
	return nil
}

// nextDelay is the backoff before a restart: min for the first restart and
// after a run that lasted at least max, else double the previous delay
// (prev), capped at max.
func nextDelay(prev, ran, min, max time.Duration) time.Duration {
	if ran >= max {
		return min
	}
	if prev < min {
		return min
	}
	if next := 2 * prev; next < max {
		return next
	}
	return max
}

// args is the daemon's argument vector after the program name.
func (d *Daemon) args() []string {
	return []string{"--daemon", "--no-detach",
		"--config=" + d.Config.ConfigFile(), "--log-file=" + d.Config.LogFile()}
}

// runOnce starts the daemon, waits until it exits or ctx ends (then stops
// it), and returns why it ended.
func (d *Daemon) runOnce(ctx context.Context, path string, log logr.Logger) error {
	out := &lineLogger{log: log}
	name, args := path, d.args()
	if len(d.Wrapper) > 0 {
		name, args = d.Wrapper[0], slices.Concat(d.Wrapper[1:], []string{path}, args)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.Env = daemonEnv()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = sysProcAttr(d.Credential)

	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits
		// (prctl(2) PR_SET_PDEATHSIG; golang/go#27505), and the runtime
		// ends threads that goroutines leave locked. So this goroutine
		// forks from a locked thread and keeps it, blocked in Wait, for the
		// daemon's life, and then unlocks it: left locked, the thread would
		// end, and with it every rsync client forked from it before this
		// goroutine took it (rsync.startProc forks from any thread).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start rsync daemon: %w", err)
	}
	pid := cmd.Process.Pid
	d.setPID(pid)
	defer d.setPID(0)
	log.Info("rsync daemon started", "pid", pid)
	select {
	case err := <-exited:
		out.flush()
		return fmt.Errorf("rsync daemon %d: %w", pid, exitError(err))
	case <-ctx.Done():
	}
	d.stopChild(pid, exited, log)
	out.flush()
	return ctx.Err()
}

// stopChild stops the daemon we started: SIGTERM to its process group (the
// daemon and its connection processes), SIGKILL after StopTimeout. A
// daemon that has already exited is not signalled, since its pid may be
// reused once Wait reaped it. That check narrows the window between reaping
// and signalling to microseconds without closing it; the kernel hands out
// pids cyclically, so one is not reused that fast in practice.
func (d *Daemon) stopChild(pid int, exited <-chan error, log logr.Logger) {
	grace := d.StopTimeout
	if grace <= 0 {
		grace = DefaultStopTimeout
	}
	select {
	case <-exited: // exited meanwhile: reaped, its pid may be reused
		return
	default:
	}
	if err := signalGroup(pid, syscall.SIGTERM); err != nil {
		log.Error(err, "stop rsync daemon", "pid", pid)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		log.Info("rsync daemon stopped", "pid", pid)
		return
	case <-timer.C:
	}
	log.Info("rsync daemon did not stop; killing it", "pid", pid, "grace", grace.String())
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		log.Error(err, "kill rsync daemon", "pid", pid)
	}
	<-exited
}

// signalGroup signals the process group led by pid, or pid alone when it
// leads none (a daemon started by someone else).
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(pid, sig)
	}
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

func exitError(err error) error {
	if err == nil {
		return errors.New("exited with status 0")
	}
	return err
}

// daemonEnv is the daemon's environment: rsyncd.conf expands "%NAME%"
// from it (loadparm.c expand_vars), so it holds nothing a value could name
// by accident; no LANG or LC_*, so the daemon runs in the C locale. TZ is
// kept so that log times are read back in the agent's zone.
func daemonEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if tz, ok := os.LookupEnv("TZ"); ok {
		env = append(env, "TZ="+tz)
	}
	return env
}

// lineLogger logs the daemon's stdout and stderr a line at a time.
type lineLogger struct {
	log logr.Logger
	mu  sync.Mutex
	buf []byte
}

// maxLine bounds a buffered partial line.
const maxLine = 4096

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log.Info("rsync daemon output", "line", string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > maxLine {
		l.log.Info("rsync daemon output", "line", string(l.buf))
		l.buf = nil
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.log.Info("rsync daemon output", "line", string(l.buf))
		l.buf = nil
	}
}
