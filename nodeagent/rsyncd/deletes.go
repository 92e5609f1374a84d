package rsyncd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrDeletesRefused is returned (wrapped) by CheckDeletes when this rsync,
// as a receiver, does not delete what a sender lists as missing.
var ErrDeletesRefused = errors.New("this rsync does not apply --delete-missing-args")

// CheckDeletes makes sure that rsync (rsyncPath, "rsync" from PATH when
// empty) deletes as a receiver what a sender lists with
// --delete-missing-args --force: the daemon this package runs is such a
// receiver, and every deletion a peer sends arrives that way. It runs one
// local transfer in a directory it makes under dir and removes: a file
// and a non-empty directory listed as missing must be gone, and rsync
// must exit 0.
//
// A version check is not enough. rsync 3.4.3 and 3.4.4 refuse the entry
// that stands for a missing argument (its mode is 0) with "invalid file
// mode 00 ... protocol incompatibility" (exit 2), a hardening of
// recv_file_entry that 3.5.0 relaxed again (rsync's flist.c, "mode 0 is
// the one legitimate exception", RsyncProject/rsync#910); Debian 12's
// 3.2.7-1+deb12u5 carries the same backported check. A member with such
// an rsync receives every write and no deletion, so the agent refuses to
// start on it instead of running with deletes that never land.
//
// When ctx ends first, the error wraps ctx's error and not
// ErrDeletesRefused: a check cut short says nothing of this rsync.
func CheckDeletes(ctx context.Context, rsyncPath, dir string) error {
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	probe, err := os.MkdirTemp(dir, "delete-probe-")
	if err != nil {
		return fmt.Errorf("check rsync's deletions: %w", err)
	}
	defer os.RemoveAll(probe)
	src, dst := filepath.Join(probe, "src"), filepath.Join(probe, "dst")
	for _, d := range []string{src, filepath.Join(dst, "dir")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("check rsync's deletions: %w", err)
		}
	}
	for _, f := range []string{filepath.Join(dst, "file"), filepath.Join(dst, "dir", "file")} {
		if err := os.WriteFile(f, []byte("probe\n"), 0o600); err != nil {
			return fmt.Errorf("check rsync's deletions: %w", err)
		}
	}
	// As the sender calls it (nodeagent/rsync.Delete), into a local
	// receiver instead of a daemon's.
	cmd := exec.CommandContext(ctx, rsyncPath, "-r", "--files-from=-", "--from0",
		"--delete-missing-args", "--force", "--", src+"/", dst+"/")
	cmd.Stdin = strings.NewReader("./file\x00./dir\x00")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// A local rsync forks its receiver, which holds the stderr pipe: when
	// ctx kills the parent, Run waits for the pipe no longer than this.
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("check rsync's deletions: %w", context.Cause(ctx))
	}
	var left []string
	for _, name := range []string{"file", "dir"} {
		if _, err := os.Lstat(filepath.Join(dst, name)); err == nil {
			left = append(left, name)
		}
	}
	if runErr == nil && len(left) == 0 {
		return nil
	}
	version, _ := CheckVersion(ctx, rsyncPath)
	msg := strings.TrimSpace(stderr.String())
	if msg == "" && runErr == nil {
		msg = fmt.Sprintf("exit 0, but %s not deleted", strings.Join(left, " and "))
	} else if runErr != nil {
		msg = fmt.Sprintf("%v: %s", runErr, msg)
	}
	hint := "install an rsync whose receiver applies --delete-missing-args --force (upstream 3.5.0 or later)"
	if strings.Contains(msg, "invalid file mode") {
		hint = "this rsync refuses the entries that stand for missing files (rsync 3.4.3 and 3.4.4, and Debian's 3.2.7-1+deb12u5, RsyncProject/rsync#910): " +
			"install upstream 3.5.0 or later (on Debian 12, 3.5.0+ds1-0+deb12u1 from bookworm-security)"
	}
	return fmt.Errorf("%w (rsync %s: %s): peers' deletions would never land here; %s", ErrDeletesRefused, version, msg, hint)
}
