package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// TestRun_refusesAnUnusableRsync: an rsync too old for the daemon's
// configuration and the engine's deletions (or none at all) stops the
// agent at start with a message that says what to install, before the
// index, the root's marker or the reserved directory exist. The real rsync
// here is new enough, so the old one is a stand-in script on PATH that
// only answers --version (the check runs nothing else).
func TestRun_refusesAnUnusableRsync(t *testing.T) {
	tests := []struct {
		name    string
		rsync   string // the stand-in's --version output; "" for no rsync on PATH
		is      error
		message string
	}{
		{name: "3.1.3, before negated refuse options", rsync: "rsync  version 3.1.3  protocol version 31", is: rsyncd.ErrUnsupportedVersion, message: "rsync 3.1.3 is older than 3.2.0; install a newer rsync"},
		{name: "2.6.9, before --delete-missing-args", rsync: "rsync  version 2.6.9  protocol version 29", is: rsyncd.ErrUnsupportedVersion, message: "rsync 2.6.9 is older than 3.2.0"},
		{name: "openrsync, no version", rsync: "openrsync: protocol version 29", is: rsyncd.ErrUnsupportedVersion, message: "no version in rsync --version output"},
		{name: "no rsync on PATH", message: "rsync --version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			if tc.rsync != "" {
				script := "#!/bin/sh\nprintf '%s\\n' '" + tc.rsync + "'\n"
				if err := os.WriteFile(filepath.Join(bin, "rsync"), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", bin)
			base := t.TempDir()
			root, state := filepath.Join(base, "root"), filepath.Join(base, "state")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			sg := testGroup("127.0.13.2:18900", "127.0.13.3:18900")
			// Bounded: an agent that did not refuse would run until then.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Run(ctx, Config{Node: "a", Group: sg, Password: "secret", Root: root, StateDir: state, Log: logr.Discard()})
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "refusing to start") {
				t.Fatalf("Run = %v; want a refusal saying %q", err, tc.message)
			}
			for _, p := range []string{filepath.Join(root, index.ReservedDir), filepath.Join(state, "index.db"), filepath.Join(state, "rsyncd")} {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after the refusal (%v)", p, err)
				}
			}
		})
	}
}
