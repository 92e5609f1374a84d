//go:build !freebsd

package auditcmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestExec checks `nodeagent audit exec` before it would exec: bad
// arguments are usage errors, a missing program is 127, and outside
// FreeBSD setting the audit user id fails with a clear message instead of
// running the program without it.
func TestExec(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no auid", []string{"exec", "--", "true"}, 2, "give a number"},
		{"auid not a number", []string{"exec", "--auid", "jail", "--", "true"}, 2, "give a number"},
		{"auid unset value", []string{"exec", "--auid", "4294967295", "--", "true"}, 2, "means unset"},
		{"auid too large", []string{"exec", "--auid", "4294967296", "--", "true"}, 2, "give a number"},
		{"no program", []string{"exec", "--auid", "7"}, 2, "usage: nodeagent audit exec"},
		{"program not found", []string{"exec", "--auid", "7", "--", "no-such-program-jailsync"}, 127, "no-such-program-jailsync"},
		{"not FreeBSD", []string{"exec", "--auid", "7", "--", "true"}, 1, "need FreeBSD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantErr)
			}
		})
	}
}
