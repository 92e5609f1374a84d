package rsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Push sends the listed root-relative paths to the peer in one rsync run:
// content, mode, mtime, numeric owner and group, symlinks as links, hard
// links among the listed names, devices and special files. Parents of a
// listed path are created on the peer. A listed directory is sent without
// its contents; nothing on the peer is deleted.
//
// Each path is checked beneath root first; what leaves the root or passes
// through a symlink is Dropped, what is gone is Vanished. The error is nil
// when rsync exited 0; an *ExitError when it exited otherwise (Result.Class
// says what to do); another error when it could not run or ctx ended. The
// Result's per-path outcomes are valid in every case.
func Push(ctx context.Context, root string, files []string, t Target, o Options) (Result, error) {
	return runner{}.run(ctx, root, files, t, o, modePush)
}

// Delete deletes the listed root-relative paths on the peer in one rsync
// run (--delete-missing-args --force): a directory goes with its contents.
// List only the top-most removed directory, not its descendants. A path
// that exists here is not deleted (Present); each deletion is confirmed by
// rsync's "*deleting" line (Deleted), or by its silence in a successful run
// (Absent: the peer did not have it). Errors are as for Push.
func Delete(ctx context.Context, root string, paths []string, t Target, o Options) (Result, error) {
	return runner{}.run(ctx, root, paths, t, o, modeDelete)
}

// runner runs Push and Delete; tests set its hooks.
type runner struct {
	// afterCheck runs after the paths were checked, before rsync starts.
	afterCheck func()
}

// killGrace is how long rsync has after SIGTERM before it is killed.
const killGrace = 5 * time.Second

func (rn runner) run(ctx context.Context, root string, paths []string, t Target, o Options, m mode) (Result, error) {
	start := time.Now()
	args, err := buildArgs(t, o, m)
	if err != nil {
		return Result{}, err
	}
	l, err := buildListing(root, paths, m)
	if err != nil {
		return Result{}, err
	}
	res := Result{Paths: l.results}
	if len(l.index) == 0 {
		res.Duration = time.Since(start)
		return res, nil
	}
	if rn.afterCheck != nil {
		rn.afterCheck()
	}
	res.Args = args
	out, err := execute(ctx, root, args, l, t.Password, o.RsyncPath)
	res.Code, res.Stderr, res.Other = out.code, out.stderr, out.other
	res.BytesSent, res.BytesReceived = out.stats.sent, out.stats.received
	res.Class = classifyRun(out.code, out.stderr)
	for _, i := range l.index {
		it, hasItem := out.items[i]
		pe, hasErr := out.errs[i]
		settle(&res.Paths[i], it, hasItem, pe, hasErr, m, out.code)
	}
	res.Duration = time.Since(start)
	switch {
	case err != nil:
		return res, err
	case out.code != 0:
		return res, &ExitError{Code: out.code, Class: res.Class, Stderr: out.stderr}
	}
	return res, nil
}

// output is what execute read from one rsync run.
type output struct {
	code   int
	items  map[int]item
	other  int
	stats  stats
	errs   map[int]pathError
	stderr string
}

// execute runs rsync in root with the list on standard input and reads its
// output. rsync runs in its own session (no terminal to ask a password on,
// one process group to signal), dies with us (Pdeathsig: an orphaned run
// could land an old version after a newer one), and gets SIGTERM, then
// SIGKILL, when ctx ends.
func execute(ctx context.Context, root string, args []string, l listing, password, rsyncPath string) (output, error) {
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	cmd := exec.CommandContext(ctx, rsyncPath, args...)
	cmd.Dir = root
	cmd.Env = environ(password)
	cmd.Stdin = bytes.NewReader(l.list)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = killGrace
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return output{code: -1}, fmt.Errorf("rsync stdout: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return output{code: -1}, fmt.Errorf("rsync stderr: %w", err)
	}
	// Pdeathsig fires when the thread that started the child ends: start
	// it from a locked thread, which Go keeps while the process lives.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return output{code: -1}, fmt.Errorf("start %s: %w", rsyncPath, err)
	}
	out := output{code: -1}
	var errErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		out.errs, out.stderr, errErr = parseErrors(stderr, l.index, roots(root))
		_, _ = io.Copy(io.Discard, stderr)
	})
	items, other, st, infoErrs, outErr := parseItems(stdout, l.index)
	_, _ = io.Copy(io.Discard, stdout)
	wg.Wait()
	out.items, out.other, out.stats = items, other, st
	for i, pe := range infoErrs {
		if _, ok := out.errs[i]; !ok {
			out.errs[i] = pe
		}
	}
	werr := cmd.Wait()
	if cmd.ProcessState != nil {
		out.code = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil && out.code != 0: // a run that finished stands
		return out, fmt.Errorf("rsync run stopped: %w", ctx.Err())
	case werr != nil && !errors.As(werr, &exitErr):
		return out, fmt.Errorf("rsync run: %w", werr)
	case outErr != nil:
		return out, outErr
	}
	return out, errErr
}

// roots are the prefixes rsync may print before a path under root: root
// as given, and as getcwd reports it (symlinks resolved).
func roots(root string) []string {
	abs, _ := filepath.Abs(root)
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		real = abs
	}
	return []string{filepath.Clean(root), abs, real}
}

// classifyRun is Classify, refined by what rsync printed: a daemon's "max
// connections reached" refusal (exit 5) passes, so it is Retry.
func classifyRun(code int, stderr string) Class {
	if code == 5 && strings.Contains(stderr, "max connections") {
		return Retry
	}
	return Classify(code)
}
