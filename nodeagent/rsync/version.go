package rsync

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// ErrOldRsync is returned by CheckVersion for an rsync older than 3.1,
// which lacks --delete-missing-args.
var ErrOldRsync = errors.New("rsync is older than 3.1: install rsync 3.1 or later")

// CheckVersion runs "rsyncPath --version" ("rsync" when empty) and returns
// its version, such as "3.5.0". It refuses (ErrOldRsync) an rsync older
// than 3.1, the first with --delete-missing-args.
func CheckVersion(ctx context.Context, rsyncPath string) (string, error) {
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	out, err := exec.CommandContext(ctx, rsyncPath, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s --version: %w", rsyncPath, err)
	}
	return parseVersion(string(out))
}

// parseVersion reads and checks the version in the first line of rsync
// --version ("rsync  version 3.5.0  protocol version 32").
func parseVersion(out string) (string, error) {
	line, _, _ := strings.Cut(out, "\n")
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "rsync" || f[1] != "version" {
		return "", fmt.Errorf("no rsync version in rsync --version output %.80q", line)
	}
	v := strings.TrimPrefix(f[2], "v")
	parts := strings.Split(v, ".")
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := 0, error(nil)
	if len(parts) > 1 {
		minor, err2 = strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	}
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("no version in rsync --version output %.80q", line)
	}
	if major < 3 || major == 3 && minor < 1 {
		return v, fmt.Errorf("rsync %s: %w", v, ErrOldRsync)
	}
	return v, nil
}
