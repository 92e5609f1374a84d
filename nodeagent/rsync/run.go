package rsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	return runner{}.run(ctx, root, files, t, o, modePush, nil)
}

// Delete deletes the listed root-relative paths on the peer in one rsync
// run (--delete-missing-args --force): a directory goes with its contents.
// List only the top-most removed directory, not its descendants. A path
// that exists here is not deleted (Present); each deletion is confirmed by
// rsync's "*deleting" line (Deleted), or by its silence in a successful run
// (Absent: the peer did not have it). Errors are as for Push.
func Delete(ctx context.Context, root string, paths []string, t Target, o Options) (Result, error) {
	return runner{}.run(ctx, root, paths, t, o, modeDelete, nil)
}

// runner runs Push and Delete; tests set its hooks.
type runner struct {
	// afterCheck runs after the paths were checked, before rsync starts.
	afterCheck func()
}

// killGrace is how long rsync has after SIGTERM before it is killed: it
// exits at once on SIGTERM (code 20) unless stuck in the kernel, and the
// agent's drain on shutdown (6 s) plus this must stay within 10 s.
const killGrace = 2 * time.Second

func (rn runner) run(ctx context.Context, root string, paths []string, t Target, o Options, m mode, warm *proc) (Result, error) {
	start := time.Now()
	args, err := buildArgs(t, o, m)
	if err != nil {
		warm.kill()
		return Result{}, err
	}
	l, err := buildListing(root, paths, m, o.Checked && m == modePush)
	if err != nil {
		warm.kill()
		return Result{}, err
	}
	res := Result{Paths: l.results}
	if len(l.index) == 0 {
		warm.kill()
		res.Duration = time.Since(start)
		return res, nil
	}
	if rn.afterCheck != nil {
		rn.afterCheck()
	}
	res.Args = args
	if err := ctx.Err(); err != nil {
		// Stopped before it started (shutdown): no new rsync.
		warm.kill()
		return res, fmt.Errorf("rsync run not started: %w", err)
	}
	var progress func(int64)
	if m == modePush {
		progress = o.Progress
	}
	p := warm
	if p == nil {
		if p, err = startProc(root, args, t.Password, o.RsyncPath, progress != nil); err != nil {
			return res, err
		}
	}
	out, err := p.finish(ctx, root, l, progress, []string{o.TempDir, o.PartialDir})
	res.Exited = p.cmd.ProcessState != nil
	res.Code, res.Stderr, res.Other, res.Implied, res.Made, res.Removed = out.code, out.stderr, out.other.n, out.other.dirs, out.other.made, out.other.removed
	res.NotDirs, res.Unmade = out.other.notDirs, out.unmade
	res.BytesSent, res.BytesReceived = out.stats.sent, out.stats.received
	res.Class = classifyRun(out.code, out.stderr)
	for _, i := range l.index {
		out.settle(&res.Paths[i], i, m)
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

// output is what one rsync run reported.
type output struct {
	code  int
	items map[int]item
	other unlisted
	stats stats
	errs  map[int]pathError
	// unattributed counts error lines that named no listed path.
	unattributed int
	stderr       string
	unmade       []string
}

// proc is a started rsync client waiting for its --files-from list on
// standard input. rsync runs in its own session (no terminal to ask a
// password on, one process group to signal) and dies with us (Pdeathsig:
// an orphaned run could land an old version after a newer one). Its
// output goes to files of our own (not exec's), so that it stays readable
// after the process exited: a goroutine waits for the process from the
// start, which tells a Warm whether it is still there.
//
// Standard output is an anonymous file (outputFile), read once the process
// has exited, unless its progress is read live (a pipe then). rsync writes
// one line per listed path, each with its own write(2): through a pipe
// every line woke the agent, 2,000 times per peer for a burst, and its
// scheduler's wake-ups took about 40% of the writer's agent's CPU while the
// burst's runs pushed (docs/benchmarks.md, the nineteenth session).
type proc struct {
	cmd            *exec.Cmd
	stdin          *os.File
	stdout, stderr *os.File
	live           bool          // stdout is a pipe, read as rsync writes it
	exited         chan struct{} // closed when the process has exited
	waitErr        error         // cmd.Wait's, once exited is closed
}

// startProc starts rsync with args in root; live: its standard output is
// read while it runs (progress), not after it exited.
func startProc(root string, args []string, password, rsyncPath string, live bool) (*proc, error) {
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	cmd := exec.Command(rsyncPath, args...)
	cmd.Dir = root
	cmd.Env = environ(password)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	var ends [3][2]*os.File // stdin, stdout, stderr: [read, write]
	closeAll := func() {
		for _, e := range ends {
			for _, f := range e {
				if f != nil {
					f.Close()
				}
			}
		}
	}
	for i := range ends {
		if i == 1 && !live {
			// One file, two ends: rsync writes through its descriptor, we
			// read ours from the start once it exited.
			f, err := outputFile()
			if err != nil {
				closeAll()
				return nil, err
			}
			ends[i] = [2]*os.File{f, f}
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("rsync pipes: %w", err)
		}
		ends[i] = [2]*os.File{r, w}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ends[0][0], ends[1][1], ends[2][1]
	// Pdeathsig fires when the thread that started the child ends: start
	// it from a locked thread, which Go keeps while the process lives.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	// The child's ends are the child's now.
	ends[0][0].Close()
	if live {
		ends[1][1].Close()
	}
	ends[2][1].Close()
	if err != nil {
		ends[0][1].Close()
		ends[1][0].Close()
		ends[2][0].Close()
		return nil, fmt.Errorf("start %s: %w", rsyncPath, err)
	}
	p := &proc{cmd: cmd, stdin: ends[0][1], stdout: ends[1][0], stderr: ends[2][0], live: live, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// signal sends sig to the process group, unless the process is gone (its
// group id may be reused).
func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// kill stops an unused process and releases it. A nil proc is a no-op.
func (p *proc) kill() {
	if p == nil {
		return
	}
	p.signal(syscall.SIGTERM)
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(killGrace):
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
	p.stdout.Close()
	p.stderr.Close()
}

// finish gives the process its list and reads its output until it exits.
// When ctx ends the process gets SIGTERM, then SIGKILL after killGrace.
func (p *proc) finish(ctx context.Context, root string, l listing, progress func(int64), reserved []string) (output, error) {
	defer p.stdout.Close()
	defer p.stderr.Close()
	stop := context.AfterFunc(ctx, func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(killGrace):
			p.signal(syscall.SIGKILL)
		}
	})
	defer stop()
	go func() {
		// A process that died before reading gives EPIPE here; its exit
		// status says why.
		_, _ = p.stdin.Write(l.list)
		p.stdin.Close()
	}()
	out := output{code: -1}
	var errErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		var el errorLines
		el, errErr = parseErrors(p.stderr, l.index, roots(root), reserved)
		out.errs, out.unattributed, out.stderr, out.unmade = el.errs, el.unattributed, el.tail, el.unmade
		_, _ = io.Copy(io.Discard, p.stderr)
	})
	var stdout io.Reader = p.stdout
	if !p.live {
		<-p.exited
		// The file's offset is the one rsync wrote at: read from the start.
		stdout = io.NewSectionReader(p.stdout, 0, 1<<62)
	}
	items, other, st, infoErrs, outErr := parseItems(stdout, l.index, progress)
	_, _ = io.Copy(io.Discard, stdout)
	wg.Wait()
	<-p.exited
	out.items, out.other, out.stats = items, other, st
	for i, pe := range infoErrs {
		if _, ok := out.errs[i]; !ok {
			out.errs[i] = pe
		}
	}
	if p.cmd.ProcessState != nil {
		out.code = p.cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil && out.code != 0: // a run that finished stands
		return out, fmt.Errorf("rsync run stopped: %w", ctx.Err())
	case p.waitErr != nil && !errors.As(p.waitErr, &exitErr):
		return out, fmt.Errorf("rsync run: %w", p.waitErr)
	case outErr != nil:
		return out, outErr
	}
	return out, errErr
}

// closedInExchange reports whether rsync's stderr says the daemon's
// connection closed during the exchange that starts a run, before the
// daemon said yes or no (clientserver.c, start_inband_exchange): "did not
// see server greeting" (closed before the greeting, as when the daemon
// dies or restarts just after accepting it), or "didn't get server
// startup line" (closed after the greeting, before "@RSYNCD: OK"), with no
// "@ERROR" line, which is how the daemon refuses and which ends the
// exchange without either message. A client prepared ahead (Warm) whose
// peer's daemon stopped met the second (TestWarm, once in a CI run of the
// seventy-first session). Taken for a refusal, the run skipped its delete
// step and was logged as the peer refusing this member; Retry and
// FatalPeer back off the peer alike.
func closedInExchange(stderr string) bool {
	return !strings.Contains(stderr, "@ERROR") &&
		(strings.Contains(stderr, "did not see server greeting") || strings.Contains(stderr, "didn't get server startup line"))
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

// classifyRun is Classify, refined by what rsync printed. An exit 5 that
// passes is Retry: a daemon's "max connections reached" refusal, or a
// connection that closed during the exchange (closedInExchange). A
// refused password, module or host stays FatalPeer.
func classifyRun(code int, stderr string) Class {
	if code == 5 && (strings.Contains(stderr, "max connections") || closedInExchange(stderr)) {
		return Retry
	}
	if code == 2 && strings.Contains(stderr, invalidPath) {
		// A directory here became a file while rsync read the list
		// (Result.Unmade): not the peer's fault, and the next run's list
		// is read anew.
		return Retry
	}
	return Classify(code)
}
