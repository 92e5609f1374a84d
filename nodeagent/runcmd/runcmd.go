// Package runcmd is `nodeagent run` (standalone mode: one SyncGroup from a
// file, no API server) and `nodeagent status` (per-peer progress of a
// running agent, from its status socket).
package runcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/internal/cli"
	"github.com/jailsync/jailsync/nodeagent/agent"
	"github.com/jailsync/jailsync/nodeagent/scan"
	"github.com/jailsync/jailsync/nodeagent/sender"
	"github.com/jailsync/jailsync/nodeagent/standalone"
)

const runUsage = `usage: nodeagent run --config group.yaml --node NAME [--root DIR] [--state-dir DIR]
       [--metrics-bind-address ADDR] [--retry-backoff-cap D] [--scan-interval D]
       [--max-delete-share F] [--allow-mass-delete] [--insecure] [--profile] [-v]

Runs one SyncGroup without Kubernetes: the file holds the SyncGroup manifest
and, as a second YAML document, the Secret its transport.secretRef names
(docs/examples/standalone-www.yaml).

`

const statusUsage = `usage: nodeagent status --state-dir DIR [-o table|json]

Prints a running agent's per-peer progress (pending files and bytes, lag,
last sync, errors), asked over the status socket in its state directory;
-o json uses the SyncGroup's status.peers field names.

`

// helpShown is parseRun's code after -h or --help: the usage went to
// stderr, and the command exits 0.
const helpShown = -1

// Run is `nodeagent run ARGS` and returns the exit code.
func Run(ctx context.Context, args []string, stderr io.Writer) int {
	f, code := parseRun(args, stderr)
	switch code {
	case 0:
	case helpShown:
		return 0
	default:
		return code
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	m, err := load(ctx, f.config)
	if err == nil {
		err = withoutPassword(m, f.insecure, log)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeagent run: %v\n", err)
		return 1
	}
	if err := agent.Run(ctx, f.agentConfig(m, log)); err != nil {
		log.Error(err, "agent stopped")
		// And as plain text, as the refusals above: what stopped the
		// agent (at its start, a flag or the file to mend) is its last line.
		fmt.Fprintf(stderr, "nodeagent run: %v\n", err)
		return 1
	}
	return 0
}

// withoutPassword refuses a group whose transport.secretRef names a Secret
// that the file does not hold, unless insecure: then it runs without a
// password, as a group without a secretRef does (the agent refuses that one
// without --insecure too).
func withoutPassword(m *standalone.Manifest, insecure bool, log logr.Logger) error {
	if m.MissingSecret == "" {
		return nil
	}
	if !insecure {
		return fmt.Errorf("transport.secretRef names Secret %q, which the file does not hold: add it as a second YAML document, "+
			"or pass --insecure to run unauthenticated on a trusted network", m.MissingSecret)
	}
	log.Info("transport.secretRef names a Secret that the file does not hold; running without a password (--insecure)", "secret", m.MissingSecret)
	return nil
}

// runFlags are the flags of `nodeagent run`.
type runFlags struct {
	config, node, root, stateDir, metricsAddr string
	insecure, massDelete, profile, verbose    bool
	scanInterval, backoffCap                  time.Duration
	deleteShare                               float64
}

// parseRun parses the flags of `nodeagent run`; a code other than 0 is the
// exit code of a usage error, already reported on stderr.
func parseRun(args []string, stderr io.Writer) (runFlags, int) {
	var f runFlags
	fs := flag.NewFlagSet("nodeagent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, runUsage); fs.PrintDefaults() }
	fs.StringVar(&f.config, "config", "", "SyncGroup manifest (and its transport Secret)")
	fs.StringVar(&f.node, "node", "", "this member's node name in the SyncGroup")
	fs.StringVar(&f.root, "root", "", "this node's data root instead of spec.path (several agents on one host)")
	fs.StringVar(&f.stateDir, "state-dir", "", "index, journal, daemon files and sockets (default /var/db/jailsync/<group>)")
	fs.BoolVar(&f.insecure, "insecure", false, "run without a transport password (trusted networks only)")
	fs.DurationVar(&f.scanInterval, "scan-interval", scan.DefaultInterval, "scan period where no change source exists")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", "", "address of /metrics, /healthz and /readyz (default: the member's address, daemon port + 2)")
	fs.DurationVar(&f.backoffCap, "retry-backoff-cap", sender.DefaultBackoffCap, "longest wait between failed runs to a peer")
	fs.BoolVar(&f.massDelete, "allow-mass-delete", false, "let the start scan propagate deletions of more than --max-delete-share of the indexed files (after an intended wipe); later scans are held to the share again")
	fs.Float64Var(&f.deleteShare, "max-delete-share", scan.DefaultMaxDeleteShare, "largest share (0-1] of the indexed files that one scan may find deleted before the agent stops and asks for --allow-mass-delete")
	fs.BoolVar(&f.profile, "profile", false, "serve /debug/pprof on the metrics address")
	fs.BoolVar(&f.verbose, "v", false, "log debug messages")
	pos, err := cli.ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return f, helpShown
	}
	if err != nil {
		return f, 2
	}
	if err := cli.NoArgs(pos); err != nil {
		fmt.Fprintf(stderr, "nodeagent run: %v\n", err)
		return f, 2
	}
	if !(f.deleteShare > 0 && f.deleteShare <= 1) { // NaN too
		fmt.Fprintf(stderr, "nodeagent run: --max-delete-share %v: give a share above 0 and at most 1, such as 0.5\n", f.deleteShare)
		return f, 2
	}
	if f.config == "" || f.node == "" {
		fmt.Fprintln(stderr, "nodeagent run: --config and --node are required")
		fs.Usage()
		return f, 2
	}
	return f, 0
}

// agentConfig is the agent's configuration for the group in m; the state
// directory defaults to /var/db/jailsync/<group>.
func (f runFlags) agentConfig(m *standalone.Manifest, log logr.Logger) agent.Config {
	dir := f.stateDir
	if dir == "" {
		dir = filepath.Join("/var/db/jailsync", m.Group.Name)
	}
	return agent.Config{Node: f.node, Group: m.Group, Password: m.Password, Insecure: f.insecure,
		Root: f.root, StateDir: dir, ScanInterval: f.scanInterval, MetricsAddr: f.metricsAddr, RetryBackoffCap: f.backoffCap,
		AllowMassDelete: f.massDelete, MaxDeleteShare: f.deleteShare, Profile: f.profile, Log: log}
}

func load(ctx context.Context, path string) (*standalone.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := standalone.NewValidator()
	if err != nil {
		return nil, err
	}
	return v.Load(ctx, f)
}

// Status is `nodeagent status ARGS` and returns the exit code.
func Status(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodeagent status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, statusUsage); fs.PrintDefaults() }
	stateDir := fs.String("state-dir", "", "the agent's state directory")
	output := fs.String("o", "table", "output: table or json")
	pos, err := cli.ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if err := cli.NoArgs(pos); err != nil {
		fmt.Fprintf(stderr, "nodeagent status: %v\n", err)
		return 2
	}
	if *stateDir == "" || (*output != "table" && *output != "json") {
		fmt.Fprint(stderr, statusUsage)
		return 2
	}
	r, err := fetch(ctx, filepath.Join(*stateDir, agent.StatusSocket))
	if err != nil {
		fmt.Fprintln(stderr, statusError(err, *stateDir))
		return 1
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GROUP %s\tNODE %s\tSOURCE %s\n", r.Group, r.Node, r.AuditSource)
	if r.Suspended {
		fmt.Fprintln(tw, "SUSPENDED: changes are journaled and sent when spec.suspend is false")
	}
	fmt.Fprintln(tw, "TARGET\tPENDING FILES\tPENDING BYTES\tLAG\tLAST SYNC\tFILES SYNCED\tLAST ERROR")
	for _, p := range r.Peers {
		last := "never"
		if p.LastSyncTime != nil {
			last = time.Since(p.LastSyncTime.Time).Round(time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\n", p.Target, p.PendingFiles, p.PendingBytes,
			(time.Duration(p.LagMilliseconds) * time.Millisecond).String(), last, p.FilesSynced, p.LastError)
	}
	_ = tw.Flush()
	return 0
}

// statusError says why the agent's status could not be read, and what to
// do about it.
func statusError(err error, stateDir string) string {
	if errors.Is(err, fs.ErrPermission) {
		// The socket is the agent's user's alone (0600): its status names
		// the group's paths and errors.
		return fmt.Sprintf("nodeagent status: %v (the status socket is the agent's user's only: run as that user, root for the service)", err)
	}
	return fmt.Sprintf("nodeagent status: %v (is the agent running with --state-dir %s?)", err, stateDir)
}

func fetch(ctx context.Context, socket string) (*agent.Report, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}, Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/status", nil)
	if err != nil {
		return nil, err
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
		return nil, fmt.Errorf("agent answered %s: %s", res.Status, strings.TrimSpace(string(msg)))
	}
	var r agent.Report
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, err
	}
	return &r, nil
}
