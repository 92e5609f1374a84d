package rsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		out, want string
		old       bool
	}{
		{"rsync  version 3.5.0  protocol version 32\nCopyright", "3.5.0", false},
		{"rsync  version v3.2.7  protocol version 31\n", "3.2.7", false},
		{"rsync  version 3.1.0  protocol version 31\n", "3.1.0", false},
		{"rsync  version 3.0.9  protocol version 30\n", "3.0.9", true},
		{"rsync  version 2.6.9  protocol version 29\n", "2.6.9", true},
		{"rsync  version 4.0.0pre1  protocol version 33\n", "4.0.0pre1", false},
	}
	for _, tc := range tests {
		v, err := parseVersion(tc.out)
		if v != tc.want {
			t.Errorf("%q: version %q, want %q", tc.out, v, tc.want)
		}
		if errors.Is(err, ErrOldRsync) != tc.old {
			t.Errorf("%q: error %v, old %v", tc.out, err, tc.old)
		}
	}
	if _, err := parseVersion("openrsync: protocol version 29"); err == nil {
		t.Error("no version: want an error")
	}
}

func TestCheckVersion(t *testing.T) {
	requireRsync(t)
	v, err := CheckVersion(context.Background(), "")
	if err != nil {
		t.Fatalf("installed rsync %s: %v", v, err)
	}
	old := filepath.Join(t.TempDir(), "rsync")
	must(t, os.WriteFile(old, []byte("#!/bin/sh\necho 'rsync  version 3.0.9  protocol version 30'\n"), 0o755))
	if _, err := CheckVersion(context.Background(), old); !errors.Is(err, ErrOldRsync) {
		t.Errorf("rsync 3.0.9: %v, want ErrOldRsync", err)
	}
	if _, err := CheckVersion(context.Background(), filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing rsync: want an error")
	}
}
