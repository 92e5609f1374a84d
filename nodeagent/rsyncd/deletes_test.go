package rsyncd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDeletes: the rsync on this machine deletes what a sender lists
// as missing (the tests and the agent need one that does: .ci/run pins
// one), and an rsync that refuses the missing entries, or exits 0
// without deleting, is refused with what to install. The two refused
// ones are stand-ins with the broken rsync's exact output, since a second
// rsync cannot be installed beside the working one; the check reads
// nothing of them but their exit code, stderr and what is left on disk.
func TestCheckDeletes(t *testing.T) {
	real := requireRsync(t)
	stand := t.TempDir()
	standIn := func(name, script string) string {
		p := filepath.Join(stand, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, rsync string
		want        []string // in the error; none: no error
	}{
		{name: "this machine's rsync", rsync: real},
		{
			name: "refuses the missing entries (3.4.3, 3.4.4, Debian 3.2.7-1+deb12u5)",
			rsync: standIn("refusing", `case "$1" in --version) echo "rsync  version 3.2.7  protocol version 32"; exit 0;; esac
echo "invalid file mode 00 for file [Receiver]" >&2
echo "rsync error: protocol incompatibility (code 2) at flist.c(874) [Receiver=3.2.7]" >&2
exit 2
`),
			want: []string{"invalid file mode 00", "rsync 3.2.7", "#910", "3.5.0", "bookworm-security"},
		},
		{
			name:  "exits 0 and deletes nothing",
			rsync: standIn("idle", "exit 0\n"),
			want:  []string{"not deleted", "file and dir", "3.5.0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := CheckDeletes(context.Background(), tc.rsync, dir)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				if !errors.Is(err, ErrDeletesRefused) {
					t.Fatalf("CheckDeletes = %v, want ErrDeletesRefused", err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("the probe left %d entries in %s", len(left), dir)
			}
		})
	}
}
