package rsyncd

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
)

// MinVersion is the oldest rsync the configuration works with: negated
// "refuse options" entries (!delete-missing-args) arrived in 3.2.0
// (rsyncd.conf(5)); older versions would refuse the engine's deletions.
const MinVersion = "3.2.0"

var minVersion = [3]int{3, 2, 0}

// ErrUnsupportedVersion is returned (wrapped) by CheckVersion when rsync is
// older than MinVersion or its version cannot be read.
var ErrUnsupportedVersion = errors.New("unsupported rsync version")

var versionRE = regexp.MustCompile(`rsync\s+version\s+v?(\d+)\.(\d+)\.(\d+)`)

// CheckVersion runs rsync --version (rsyncPath, "rsync" from PATH when
// empty) and returns its version, or an error wrapping
// ErrUnsupportedVersion when it is older than MinVersion.
func CheckVersion(ctx context.Context, rsyncPath string) (string, error) {
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	out, err := exec.CommandContext(ctx, rsyncPath, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("rsync --version: %w", err)
	}
	return parseVersion(string(out))
}

func parseVersion(out string) (string, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%w: no version in rsync --version output", ErrUnsupportedVersion)
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	version := m[1] + "." + m[2] + "." + m[3]
	if !atLeast(v, minVersion) {
		return version, fmt.Errorf("%w: rsync %s is older than %s; install a newer rsync", ErrUnsupportedVersion, version, MinVersion)
	}
	return version, nil
}

// atLeast reports whether version v is want or later.
func atLeast(v, want [3]int) bool {
	for i := range v {
		if v[i] != want[i] {
			return v[i] > want[i]
		}
	}
	return true
}

// ErrAmbiguousLog is returned (wrapped) by Daemon.Run for a TransferLog
// with an rsync that does not escape the names it logs.
var ErrAmbiguousLog = errors.New("this rsync's transfer log cannot be read exactly")

// checkTransferLog refuses a transfer log (Config.TransferLog) from an
// rsync older than 3.5.0: only from 3.5.0 on does rsync escape the names
// it writes to its log file (log.c, "escape control chars written to the
// log file"); before, a name holding a newline, or the text "\#012",
// reads as another name (ParseLogLine would record a file that never
// came). The agent keeps the transfer log off and reads what arrived from
// the sender's confirmation instead.
func checkTransferLog(ctx context.Context, rsyncPath string) error {
	version, err := CheckVersion(ctx, rsyncPath)
	if err != nil {
		return err
	}
	var v [3]int
	if _, err := fmt.Sscanf(version, "%d.%d.%d", &v[0], &v[1], &v[2]); err != nil {
		return fmt.Errorf("%w: version %q", ErrAmbiguousLog, version)
	}
	if !atLeast(v, [3]int{3, 5, 0}) {
		return fmt.Errorf("%w: rsync %s writes names to its log file unescaped (3.5.0 escapes them)", ErrAmbiguousLog, version)
	}
	return nil
}
