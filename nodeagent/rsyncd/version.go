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
	for i := range v {
		if v[i] != minVersion[i] {
			if v[i] < minVersion[i] {
				return version, fmt.Errorf("%w: rsync %s is older than %s; install a newer rsync", ErrUnsupportedVersion, version, MinVersion)
			}
			break
		}
	}
	return version, nil
}
