package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/nodeagent/rsync"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// TestCheckWithAttempts: each local rsync check the agent runs at start
// is cut when an attempt hangs, even though the hanging rsync left a
// child holding its output (a local rsync forks its receiver), and is
// run again; a check that hangs on every attempt ends in an error that
// says so. The rsync here is a stand-in that hangs on its first `hang`
// calls and then runs this machine's rsync: the checks' own work is
// real.
func TestCheckWithAttempts(t *testing.T) {
	real, err := exec.LookPath("rsync")
	if err != nil {
		t.Fatalf("rsync is needed (.ci/run installs it): %v", err)
	}
	checks := []struct {
		name  string
		check func(ctx context.Context, rsyncPath, dir string) error
	}{
		{"deletions", func(ctx context.Context, rsyncPath, dir string) error {
			return rsyncd.CheckDeletes(ctx, rsyncPath, dir)
		}},
		{"resume", func(ctx context.Context, rsyncPath, dir string) error {
			ok, err := rsync.ResumesFromPartialDir(ctx, rsyncPath, dir)
			if err == nil && !ok {
				// Not what this test is about, but the stand-in must
				// have run the real transfer to the end.
				resumes, _ := rsync.ResumesFromPartialDir(ctx, real, dir)
				if resumes {
					return errors.New("the check through the stand-in found no resume, the real rsync does")
				}
			}
			return err
		}},
	}
	tests := []struct {
		name    string
		hang    int // calls that hang before the real rsync runs
		wantErr string
		calls   int
	}{
		{name: "no hang", hang: 0, calls: 1},
		{name: "the first attempt hangs", hang: 1, calls: 2},
		{name: "two attempts hang", hang: 2, calls: 3},
		{name: "every attempt hangs", hang: 3, calls: 3, wantErr: "did not finish in 3 attempts"},
	}
	// Each attempt's bound (the agent gives 5 s). A hung attempt waits it
	// out, so it is short; but the last attempt runs the real checks, and
	// 500 ms was not enough for the resume check's two transfers on two
	// cores busy with something else (it failed beside the bench's
	// Syncthing rename in the sixty-seventh session).
	const timeout = 2 * time.Second
	for _, c := range checks {
		for _, tc := range tests {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				count := filepath.Join(dir, "calls")
				standIn := filepath.Join(dir, "rsync")
				// Each call appends a line to count; the first tc.hang
				// calls leave a sleeping child on the output, as rsync's
				// forked receiver would, and hang.
				script := fmt.Sprintf(`#!/bin/sh
echo >> %[1]q
if [ "$(wc -l < %[1]q)" -le %[2]d ]; then sleep 30 & exec sleep 30; fi
exec %[3]q "$@"
`, count, tc.hang, real)
				if err := os.WriteFile(standIn, []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
				work := filepath.Join(dir, "state")
				if err := os.Mkdir(work, 0o700); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				err := checkWithAttempts(context.Background(), logr.Discard(), "check "+c.name, timeout, 3, func(ctx context.Context) error {
					return c.check(ctx, standIn, work)
				})
				elapsed := time.Since(start)
				if tc.wantErr == "" && err != nil {
					t.Fatalf("checkWithAttempts = %v, want success", err)
				}
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("checkWithAttempts = %v, want an error saying %q that wraps the deadline", err, tc.wantErr)
					}
				}
				data, _ := os.ReadFile(count)
				if got := strings.Count(string(data), "\n"); got != tc.calls {
					t.Errorf("rsync ran %d times, want %d", got, tc.calls)
				}
				// A hang is cut within its timeout and the WaitDelay the
				// checks give a forked child; the stand-in sleeps 30 s.
				if bound := time.Duration(tc.hang) * (timeout + 5*time.Second); elapsed > bound+10*time.Second {
					t.Errorf("took %s: a hung attempt was not cut", elapsed)
				}
				if left, _ := os.ReadDir(work); len(left) != 0 {
					t.Errorf("the checks left %d entries in the state directory", len(left))
				}
			})
		}
	}
}

// TestCheckWithAttempts_otherErrorsAreNotRetried: an answer (a refused
// rsync) and the end of the agent's own context end the checks at once.
func TestCheckWithAttempts_otherErrorsAreNotRetried(t *testing.T) {
	refused := errors.New("refused")
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		err   error
		want  error
		calls int
	}{
		{name: "a refusal", ctx: context.Background(), err: refused, want: refused, calls: 1},
		{name: "the agent stops", ctx: ended, err: context.Canceled, want: context.Canceled, calls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := checkWithAttempts(tc.ctx, logr.Discard(), "check", time.Second, 3, func(context.Context) error {
				calls++
				return tc.err
			})
			if !errors.Is(err, tc.want) || calls != tc.calls {
				t.Fatalf("checkWithAttempts = %v after %d calls, want %v after %d", err, calls, tc.want, tc.calls)
			}
		})
	}
}
