package rsync

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPush_WrongPasswordIsFatalForThePeer(t *testing.T) {
	d := startDaemon(t, 20)
	root := t.TempDir()
	write(t, root, "f", []byte("x"))
	tg := d.target()
	tg.Password = "wrong"
	res, err := Push(context.Background(), root, []string{"f"}, tg, fastOptions())
	if code := codeOf(t, err); code != 5 {
		t.Fatalf("exit %d (%v), want 5", code, err)
	}
	if res.Class != FatalPeer {
		t.Errorf("class %v, want fatal-peer", res.Class)
	}
	wantOutcomes(t, res, map[string]Outcome{"f": Unconfirmed})
}

// TestPush_PasswordWithTrailingNewline: a password read from a file ends
// in a newline, which RSYNC_PASSWORD would send as part of the secret.
func TestPush_PasswordWithTrailingNewline(t *testing.T) {
	d := startDaemon(t, 21)
	root := t.TempDir()
	write(t, root, "f", []byte("x"))
	tg := d.target()
	tg.Password += "\n"
	res, err := Push(context.Background(), root, []string{"f"}, tg, fastOptions())
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	wantOutcomes(t, res, map[string]Outcome{"f": Sent})
}

func TestPush_DaemonDownIsRetry(t *testing.T) {
	requireRsync(t)
	root := t.TempDir()
	write(t, root, "f", []byte("x"))
	tg := Target{
		Addr:   netip.AddrPortFrom(netip.MustParseAddr(daemonAddr), basePort+99), // nothing listens
		Module: "data", User: testUser, Password: testSecret, Source: netip.MustParseAddr(clientAddr),
	}
	res, err := Push(context.Background(), root, []string{"f"}, tg, fastOptions())
	if code := codeOf(t, err); code != 10 {
		t.Fatalf("exit %d (%v), want 10", code, err)
	}
	if res.Class != Retry {
		t.Errorf("class %v, want retry", res.Class)
	}
	wantOutcomes(t, res, map[string]Outcome{"f": Unconfirmed})
}

// TestPush_StoppedDaemonEndsWithinTheTimeouts: a SIGSTOPped daemon still
// completes the TCP handshake (the kernel accepts), then says nothing.
func TestPush_StoppedDaemonEndsWithinTheTimeouts(t *testing.T) {
	d := startDaemon(t, 22)
	root := t.TempDir()
	write(t, root, "f", []byte("x"))
	d.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { _ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGCONT) })
	o := Options{ConnectTimeout: time.Second, IOTimeout: 2 * time.Second}
	start := time.Now()
	res, err := Push(context.Background(), root, []string{"f"}, d.target(), o)
	took := time.Since(start)
	code := codeOf(t, err)
	if code != 30 && code != 35 {
		t.Errorf("exit %d (%v), want 30 or 35", code, err)
	}
	if res.Class != Retry {
		t.Errorf("class %v, want retry", res.Class)
	}
	// rsync's own timeout handling takes up to about twice --timeout.
	if limit := o.ConnectTimeout + 3*o.IOTimeout; took > limit {
		t.Errorf("the run took %v, over %v", took, limit)
	}
	wantOutcomes(t, res, map[string]Outcome{"f": Unconfirmed})
}

func TestPush_CancelStopsTheRun(t *testing.T) {
	d := startDaemon(t, 23)
	root := t.TempDir()
	write(t, root, "big", randomBytes(1<<20))
	o := fastOptions()
	o.BandwidthLimit = 64 << 10 // 16 s for 1 MiB
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Push(ctx, root, []string{"big"}, d.target(), o)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the context's", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond+killGrace {
		t.Errorf("cancel took %v", took)
	}
	wantOutcomes(t, res, map[string]Outcome{"big": Unconfirmed})
}

// TestPush_VanishedBeforeTheRun: a file removed between the check and
// rsync's read is left out by rsync (--ignore-missing-args) and reported
// Vanished; the others go.
func TestPush_VanishedBeforeTheRun(t *testing.T) {
	d := startDaemon(t, 24)
	root := t.TempDir()
	write(t, root, "stays", []byte("x"))
	write(t, root, "#goes", []byte("y"))
	rn := runner{afterCheck: func() { must(t, os.Remove(filepath.Join(root, "#goes"))) }}
	res, err := rn.run(context.Background(), root, []string{"stays", "#goes", "never"}, d.target(), fastOptions(), modePush, nil)
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"stays": Sent, "#goes": Vanished, "never": Vanished})
}

// TestPush_VanishedDuringTheRun: a file removed after rsync listed it and
// before it sent it: exit 24, Partial, that file Vanished, the others Sent.
func TestPush_VanishedDuringTheRun(t *testing.T) {
	d := startDaemon(t, 25)
	root := t.TempDir()
	write(t, root, "z-goes", []byte("y"))
	write(t, root, "z-stays", []byte("z"))
	res, err := pushRemovingMidway(t, d, root, "z-goes", "z-stays")
	if code := codeOf(t, err); code != 24 {
		t.Fatalf("exit %d (%v), want 24\n%s", code, err, res.Stderr)
	}
	if res.Class != Partial {
		t.Errorf("class %v, want partial", res.Class)
	}
	wantOutcomes(t, res, map[string]Outcome{"a-big": Sent, "z-goes": Vanished, "z-stays": Sent})
}

// TestPush_DirectoryReplacedForAFileThatVanished: the peer's directory at
// a path listed here as a file is deleted with its tree when rsync's
// generator reaches it (--force); the file then vanishes here before the
// sender reads it. rsync itemizes the tree's deletion ("*deleting", in
// Result.Removed) and never the directory's, nor the file: the path is
// Vanished without a line of its own, and the peer's directory is gone.
// The sender names such a path as removed by the push
// (sender.splitVanished).
func TestPush_DirectoryReplacedForAFileThatVanished(t *testing.T) {
	d := startDaemon(t, 36)
	root := t.TempDir()
	write(t, root, "z-goes", []byte("now a file"))
	write(t, d.dir, "z-goes/inside/x", []byte("old"))
	res, err := pushRemovingMidway(t, d, root, "z-goes")
	if code := codeOf(t, err); code != 24 {
		t.Fatalf("exit %d (%v), want 24\n%s", code, err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"a-big": Sent, "z-goes": Vanished})
	if c := res.Paths[1].Change; c != "" {
		t.Errorf("z-goes itemized %q, want no line", c)
	}
	if !slices.Contains(res.Removed, "z-goes/inside/x") || slices.Contains(res.Removed, "z-goes") {
		t.Errorf("Removed %q, want the tree below z-goes and not z-goes itself", res.Removed)
	}
	if _, err := os.Lstat(d.path("z-goes")); !os.IsNotExist(err) {
		t.Errorf("the peer's z-goes: %v, want it deleted", err)
	}
}

// pushRemovingMidway pushes a-big (1 MiB, written here, 2 s at the
// bandwidth limit) and then the paths more from root, and removes here the
// first of those once a-big is arriving on the peer: rsync has built its
// file list by then, and sends in name order.
func pushRemovingMidway(t *testing.T, d *daemon, root string, more ...string) (Result, error) {
	t.Helper()
	write(t, root, "a-big", randomBytes(1<<20))
	must(t, os.MkdirAll(d.path(".jailsync/tmp"), 0o700))
	o := fastOptions()
	o.TempDir = ".jailsync/tmp"
	o.BandwidthLimit = 512 << 10
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitFor(t, 10*time.Second, func() bool { return dirHasEntries(d.path(".jailsync/tmp")) })
		if err := os.Remove(filepath.Join(root, more[0])); err != nil {
			t.Error(err) // not Fatal: this is not the test's goroutine
		}
	}()
	res, err := Push(context.Background(), root, append([]string{"a-big"}, more...), d.target(), o)
	<-done
	return res, err
}

func TestPush_BandwidthLimitSlowsTheTransfer(t *testing.T) {
	d := startDaemon(t, 26)
	root := t.TempDir()
	write(t, root, "free", randomBytes(2<<20))
	write(t, root, "capped", randomBytes(2<<20))
	start := time.Now()
	if res, err := Push(context.Background(), root, []string{"free"}, d.target(), fastOptions()); err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	free := time.Since(start)
	o := fastOptions()
	o.BandwidthLimit = 1 << 20
	start = time.Now()
	if res, err := Push(context.Background(), root, []string{"capped"}, d.target(), o); err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	capped := time.Since(start)
	t.Logf("2 MiB: %v without a cap, %v at 1 MiB/s", free, capped)
	if capped < time.Second || capped < 3*free {
		t.Errorf("2 MiB at 1 MiB/s took %v (%v without a cap): the cap does not slow it", capped, free)
	}
}

func TestPush_CompressSendsFewerBytes(t *testing.T) {
	d := startDaemon(t, 27)
	root := t.TempDir()
	text := bytes.Repeat([]byte("jailsync keeps a data directory identical on several hosts.\n"), 1<<14)
	write(t, root, "plain", text)
	write(t, root, "packed", text)
	res, err := Push(context.Background(), root, []string{"plain"}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	o := fastOptions()
	o.Compress = true
	zres, err := Push(context.Background(), root, []string{"packed"}, d.target(), o)
	if err != nil {
		t.Fatalf("compressed push: %v\n%s", err, zres.Stderr)
	}
	checkSame(t, root, d.dir, []string{"plain", "packed"})
	t.Logf("%d bytes: %d sent plain, %d compressed", len(text), res.BytesSent, zres.BytesSent)
	if res.BytesSent < int64(len(text)) || zres.BytesSent*10 > res.BytesSent {
		t.Errorf("sent %d bytes plain and %d compressed, want the compressed run ten times smaller", res.BytesSent, zres.BytesSent)
	}
}

// TestPush_TempDirKeepsPartialFilesOutOfPlace: while a slow transfer runs,
// the file is only in the temp dir, never under its name.
func TestPush_TempDirKeepsPartialFilesOutOfPlace(t *testing.T) {
	d := startDaemon(t, 28)
	root := t.TempDir()
	data := randomBytes(2 << 20)
	write(t, root, "dir/slow", data)
	tmp := d.path(".jailsync/tmp")
	must(t, os.MkdirAll(tmp, 0o700))
	o := fastOptions()
	o.TempDir = ".jailsync/tmp"
	o.BandwidthLimit = 1 << 20
	type result struct {
		res Result
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := Push(context.Background(), root, []string{"dir/slow"}, d.target(), o)
		ch <- result{res, err}
	}()
	sawTemp := false
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("push: %v\n%s", r.err, r.res.Stderr)
			}
			if !sawTemp {
				t.Error("the temp dir never held the arriving file")
			}
			checkSame(t, root, d.dir, []string{"dir/slow"})
			if dirHasEntries(tmp) {
				t.Error("the temp dir keeps a file after the run")
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		// The name first: once it exists, the temp dir must be empty
		// (one file in the run).
		_, err := os.Lstat(d.path("dir/slow"))
		inTemp := dirHasEntries(tmp)
		if err == nil && inTemp {
			t.Fatal("the file is under its name while it still arrives")
		}
		sawTemp = sawTemp || inTemp
	}
}

// randomBytes are incompressible.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

func dirHasEntries(dir string) bool {
	es, err := os.ReadDir(dir)
	return err == nil && len(es) > 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("condition not met within %v", limit)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPush_PartialDirKeepsAnInterruptedFile: a run stopped mid-file leaves
// the partial file in the partial dir (an absolute one is inside the
// chrooted module), not under its name; the next run completes it.
func TestPush_PartialDirKeepsAnInterruptedFile(t *testing.T) {
	d := startDaemon(t, 29)
	root := t.TempDir()
	write(t, root, "sub/big", randomBytes(2<<20))
	must(t, os.MkdirAll(d.path(".jailsync/tmp"), 0o700))
	must(t, os.MkdirAll(d.path(".jailsync/partial"), 0o700))
	o := fastOptions()
	o.TempDir, o.PartialDir = ".jailsync/tmp", "/.jailsync/partial"
	o.BandwidthLimit = 512 << 10
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		waitFor(t, 10*time.Second, func() bool { return dirHasEntries(d.path(".jailsync/tmp")) })
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	res, err := Push(ctx, root, []string{"sub/big"}, d.target(), o)
	<-stopped
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want cancelled\n%s", err, res.Stderr)
	}
	waitFor(t, 5*time.Second, func() bool { return dirHasEntries(d.path(".jailsync/partial")) })
	if _, err := os.Lstat(d.path("sub/big")); err == nil {
		t.Error("the interrupted file is under its name")
	}
	o.BandwidthLimit = 0
	res, err = Push(context.Background(), root, []string{"sub/big"}, d.target(), o)
	// Before 3.4.4 rsync cannot resume from an absolute partial directory
	// (ResumesFromPartialDir): the agent passes none then. Here the second
	// push must fail as the probe predicts.
	resumes, perr := ResumesFromPartialDir(context.Background(), "", t.TempDir())
	if perr != nil {
		t.Fatal(perr)
	}
	if !resumes {
		if err == nil || !strings.Contains(res.Stderr, "failed verification") {
			t.Fatalf("this rsync resumed (%v), though ResumesFromPartialDir says it cannot:\n%s", err, res.Stderr)
		}
		if _, err := os.Lstat(d.path("sub/big")); err == nil {
			t.Error("a file that failed verification is under its name")
		}
		t.Logf("this rsync cannot resume from an absolute partial directory, as ResumesFromPartialDir found")
		return
	}
	if err != nil {
		t.Fatalf("second push: %v\n%s", err, res.Stderr)
	}
	checkSame(t, root, d.dir, []string{"sub/big"})
	if dirHasEntries(d.path(".jailsync/partial")) {
		t.Error("the partial file stays after the run that completed it")
	}
}
