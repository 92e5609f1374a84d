package runcmd

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/agent"
	"github.com/jailsync/jailsync/nodeagent/scan"
	"github.com/jailsync/jailsync/nodeagent/sender"
	"github.com/jailsync/jailsync/nodeagent/standalone"
)

// TestParseRun: the flags of `nodeagent run` reach the agent's
// configuration, the state directory defaults to /var/db/jailsync/<group>,
// and usage errors exit 2 with a message.
func TestParseRun(t *testing.T) {
	sg := &syncv1.SyncGroup{}
	sg.Name = "www"
	m := &standalone.Manifest{Group: sg, Password: "secret"}
	base := []string{"--config", "g.yaml", "--node", "web-1"}
	tests := []struct {
		name  string
		args  []string
		code  int
		says  string // in stderr, for a usage error
		check func(t *testing.T, f runFlags)
	}{
		{name: "defaults", args: base, check: func(t *testing.T, f runFlags) {
			c := f.agentConfig(m, logr.Discard())
			if c.StateDir != "/var/db/jailsync/www" || c.MetricsAddr != "" || c.Root != "" || c.Insecure || c.AllowMassDelete ||
				c.MaxDeleteShare != scan.DefaultMaxDeleteShare || c.RetryBackoffCap != sender.DefaultBackoffCap || c.ScanInterval != scan.DefaultInterval ||
				c.Node != "web-1" || c.Group != sg || c.Password != "secret" {
				t.Errorf("config %+v", c)
			}
			if f.config != "g.yaml" {
				t.Errorf("config file %q", f.config)
			}
		}},
		{name: "every flag", args: append(base, "--root", "/data/h1", "--state-dir", "/tmp/s1", "--metrics-bind-address", "127.0.5.9:9100",
			"--insecure", "--allow-mass-delete", "--max-delete-share", "0.9", "--retry-backoff-cap", "3s", "--scan-interval", "7s"),
			check: func(t *testing.T, f runFlags) {
				c := f.agentConfig(m, logr.Discard())
				if c.Root != "/data/h1" || c.StateDir != "/tmp/s1" || c.MetricsAddr != "127.0.5.9:9100" || !c.Insecure || !c.AllowMassDelete ||
					c.MaxDeleteShare != 0.9 || c.RetryBackoffCap != 3*time.Second || c.ScanInterval != 7*time.Second {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "no share", args: append(base, "--max-delete-share", "0"), code: 2, says: "--max-delete-share 0: give a share above 0 and at most 1"},
		{name: "a share above 1", args: append(base, "--max-delete-share", "1.5"), code: 2, says: "at most 1"},
		{name: "a share that is not a number", args: append(base, "--max-delete-share", "NaN"), code: 2, says: "--max-delete-share NaN: give a share above 0"},
		{name: "no --node", args: []string{"--config", "g.yaml"}, code: 2, says: "--config and --node are required"},
		{name: "no --config", args: []string{"--node", "web-1"}, code: 2, says: "--config and --node are required"},
		{name: "an unknown flag", args: append(base, "--delete-everything"), code: 2, says: "flag provided but not defined: -delete-everything"},
		{name: "a stray argument", args: append(base, "g2.yaml"), code: 2, says: `unexpected argument "g2.yaml"`},
		{name: "--help", args: []string{"--help"}, code: helpShown, says: "usage: nodeagent run --config group.yaml --node NAME"},
		{name: "-h after flags", args: append(base, "-h"), code: helpShown, says: "usage: nodeagent run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			f, code := parseRun(tc.args, &stderr)
			if code != tc.code {
				t.Fatalf("code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if tc.says != "" && !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.says)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// TestStatusError: a socket the user may not open says whose it is; any
// other failure asks whether the agent runs with that state directory.
func TestStatusError(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &url.Error{Op: "Get", URL: "http://agent/status", Err: &net.OpError{Op: "dial", Net: "unix",
			Err: os.NewSyscallError("connect", errno)}}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"permission denied", dial(syscall.EACCES), "the status socket is the agent's user's only"},
		{"no agent", dial(syscall.ENOENT), "is the agent running with --state-dir /var/db/jailsync/www?"},
		{"refused", dial(syscall.ECONNREFUSED), "is the agent running with --state-dir /var/db/jailsync/www?"},
	}
	for _, tc := range tests {
		if got := statusError(tc.err, "/var/db/jailsync/www"); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want it to say %q", tc.name, got, tc.want)
		}
	}
}

// TestRun_helpExitsZero: `nodeagent run --help` and `nodeagent status
// --help` print their usage and exit 0; a usage error exits 2.
func TestRun_helpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(stderr *strings.Builder) int
		code int
		says string
	}{
		{"run --help", func(e *strings.Builder) int { return Run(context.Background(), []string{"--help"}, e) }, 0, "usage: nodeagent run"},
		{"status --help", func(e *strings.Builder) int {
			return Status(context.Background(), []string{"--help"}, io.Discard, e)
		}, 0, "usage: nodeagent status --state-dir DIR [-o table|json]"},
		{"status without --state-dir", func(e *strings.Builder) int { return Status(context.Background(), nil, io.Discard, e) }, 2, "usage: nodeagent status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			if code := tc.run(&stderr); code != tc.code || !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("exit %d, want %d; stderr %q, want it to say %q", code, tc.code, stderr.String(), tc.says)
			}
		})
	}
}

// TestWithoutPassword: a secretRef whose Secret the file does not hold is
// refused, saying both ways out, unless --insecure; a file with its
// password, or without a secretRef, passes here (the agent refuses the
// latter without --insecure itself).
func TestWithoutPassword(t *testing.T) {
	for _, tc := range []struct {
		name     string
		m        standalone.Manifest
		insecure bool
		wantErr  string
	}{
		{"the Secret missing", standalone.Manifest{MissingSecret: "www-transport"}, false,
			`transport.secretRef names Secret "www-transport", which the file does not hold: add it as a second YAML document, or pass --insecure`},
		{"the Secret missing, --insecure", standalone.Manifest{MissingSecret: "www-transport"}, true, ""},
		{"a password", standalone.Manifest{Password: "s3cret"}, false, ""},
		{"no secretRef", standalone.Manifest{}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := withoutPassword(&tc.m, tc.insecure, logr.Discard())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("withoutPassword = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestStatus_table: `nodeagent status` asks the agent's socket in the state
// directory and prints one line per peer with its pending files and bytes,
// lag, last sync, files synced and last error; -o json gives the same
// under the CRD's status.peers field names, zeros included.
func TestStatus_table(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, agent.StatusSocket))
	if err != nil {
		t.Fatal(err)
	}
	last := metav1.NewTime(time.Now().Add(-1500 * time.Millisecond))
	report := agent.Report{Group: "www", Node: "web-1", AuditSource: "fanotify", Suspended: true, Peers: []syncv1.PeerStatus{
		{Source: "web-1", Target: "web-2", PendingFiles: 12, PendingBytes: 4096, LagMilliseconds: 2500, LastSyncTime: &last, FilesSynced: 7, LastError: "rsync exit 23: partial transfer"},
		{Source: "web-1", Target: "web-3"},
	}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(report)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	var stdout, stderr strings.Builder
	if code := Status(context.Background(), []string{"--state-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := [][]string{
		{"GROUP", "www", "NODE", "web-1", "SOURCE", "fanotify"},
		{"SUSPENDED:"},
		{"TARGET", "PENDING", "FILES", "PENDING", "BYTES", "LAG", "LAST", "SYNC", "FILES", "SYNCED", "LAST", "ERROR"},
		{"web-2", "12", "4096", "2.5s", "ago", "7", "rsync", "exit", "23:", "partial", "transfer"},
		{"web-3", "0", "0", "0s", "never", "0"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), stdout.String())
	}
	for i, w := range want {
		fields := strings.Fields(lines[i])
		for _, f := range w {
			if !slices.Contains(fields, f) {
				t.Errorf("line %d %q lacks %q", i+1, lines[i], f)
			}
		}
	}

	stdout.Reset()
	if code := Status(context.Background(), []string{"--state-dir", dir, "-o", "json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-o json: exit %d: %s", code, stderr.String())
	}
	var got struct {
		Peers []map[string]any `json:"peers"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatalf("-o json: %v\n%s", err, stdout.String())
	}
	if len(got.Peers) != 2 || got.Peers[0]["pendingFiles"] != float64(12) || got.Peers[0]["lagMilliseconds"] != float64(2500) ||
		got.Peers[1]["pendingFiles"] != float64(0) || got.Peers[1]["target"] != "web-3" {
		t.Errorf("-o json peers %v", got.Peers)
	}
}
