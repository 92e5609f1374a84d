package rsync

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ResumesFromPartialDir reports whether rsync (rsyncPath, "rsync" from
// PATH when empty), as a receiver, completes a transfer that resumes from
// a partial file in an absolute --partial-dir, as the agent's pushes of
// large files ask of a peer's daemon (the module's PartialDir). It runs
// one local delta transfer in a directory it makes under dir and removes:
// half of a 1 MiB file waits in the partial directory; the file must land
// whole and rsync exit 0.
//
// rsync before 3.4.4 (Debian 12's 3.2.7 among them) fails that transfer's
// verification ("failed verification -- update put into partial-dir",
// exit 23) and puts the result back into the partial directory: every
// later attempt resumes from it and fails again, and the file never lands
// (rsync's NEWS for 3.4.4: "a false failed verification ... when resuming
// a delta transfer with an absolute --partial-dir"). Where it reports
// false, the agent passes no --partial-dir: a cut transfer starts over.
// An error is returned only when the probe itself cannot run or ctx ends
// first (then it wraps ctx's error).
func ResumesFromPartialDir(ctx context.Context, rsyncPath, dir string) (bool, error) {
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	probe, err := os.MkdirTemp(dir, "resume-probe-")
	if err != nil {
		return false, fmt.Errorf("check rsync's resume: %w", err)
	}
	defer os.RemoveAll(probe)
	src, dst := filepath.Join(probe, "src"), filepath.Join(probe, "dst")
	partial, temp := filepath.Join(dst, "partial"), filepath.Join(dst, "tmp")
	for _, d := range []string{src, partial, temp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return false, fmt.Errorf("check rsync's resume: %w", err)
		}
	}
	data := make([]byte, 1<<20) // random: only the partial half matches
	_, _ = rand.NewChaCha8([32]byte{'j', 's'}).Read(data)
	if err := os.WriteFile(filepath.Join(src, "f"), data, 0o600); err != nil {
		return false, fmt.Errorf("check rsync's resume: %w", err)
	}
	if err := os.WriteFile(filepath.Join(partial, "f"), data[:len(data)/2], 0o600); err != nil {
		return false, fmt.Errorf("check rsync's resume: %w", err)
	}
	cmd := exec.CommandContext(ctx, rsyncPath, "-a", "--no-whole-file", "--temp-dir="+temp, "--partial-dir="+partial,
		"--", filepath.Join(src, "f"), dst+"/")
	cmd.WaitDelay = time.Second // for the receiver rsync forks, when ctx kills the parent
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("check rsync's resume: %w", context.Cause(ctx))
		}
		return false, nil
	}
	got, err := os.ReadFile(filepath.Join(dst, "f"))
	return err == nil && bytes.Equal(got, data), nil
}
