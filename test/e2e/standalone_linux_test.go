package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/agent"
)

// binary is the nodeagent built for this test run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jailsync-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "nodeagent")
	out, err := exec.Command("go", "build", "-o", binary, "../../cmd/nodeagent").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build nodeagent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is n agents of one group.
type cluster struct {
	t      *testing.T
	nodes  []string
	roots  map[string]string
	states map[string]string
	procs  map[string]*exec.Cmd
	config string
	// port is the members' daemon port; each member's agent endpoint is
	// port + 1 and its metrics endpoint port + 2, on its own address.
	port int
	// args are extra flags of every agent.
	args []string
	// metricsPort, when set, moves each agent's metrics endpoint to its
	// own address and this port (--metrics-bind-address).
	metricsPort int
}

func start(t *testing.T, n int, port int) *cluster { return startSpec(t, n, port, "", "") }

// startSpec starts n agents of a group whose spec has extra lines (YAML,
// indented by two spaces) beyond path, members and transport, and extra
// transport lines (indented by four).
func startSpec(t *testing.T, n int, port int, extra, transport string) *cluster {
	t.Helper()
	return startCluster(t, n, port, clusterOptions{extra: extra, transport: transport})
}

// clusterOptions change a test cluster.
type clusterOptions struct {
	// extra are spec lines (YAML, indented by two spaces) beyond path,
	// members and transport; transport are transport lines (by four).
	extra, transport string
	// insecure leaves the transport Secret out and runs the agents with
	// --insecure.
	insecure bool
	// args are more flags for every agent.
	args []string
	// metricsPort: see cluster.metricsPort.
	metricsPort int
}

// startCluster starts n agents of a group, as o says.
func startCluster(t *testing.T, n int, port int, o clusterOptions) *cluster {
	t.Helper()
	extra, transport, insecure := o.extra, o.transport, o.insecure
	c := &cluster{t: t, roots: map[string]string{}, states: map[string]string{}, procs: map[string]*exec.Cmd{}, port: port,
		args: slices.Clone(o.args), metricsPort: o.metricsPort}
	var members strings.Builder
	for i := range n {
		node := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, node)
		fmt.Fprintf(&members, "  - node: %s\n    address: 127.0.5.%d:%d\n", node, i+2, port)
	}
	c.config = filepath.Join(t.TempDir(), "group.yaml")
	secret := `  transport:
` + transport + `    secretRef:
      name: www-transport
---
apiVersion: v1
kind: Secret
metadata:
  name: www-transport
stringData:
  rsync-password: "e2e-secret"
`
	if insecure {
		secret = ""
		if transport != "" {
			secret = "  transport:\n" + transport
		}
		c.args = append(c.args, "--insecure")
	}
	manifest := fmt.Sprintf(`apiVersion: sync.jailsync.io/v1alpha1
kind: SyncGroup
metadata:
  name: www
spec:
  path: /data/www
  members:
%s%s%s`, members.String(), extra, secret)
	if err := os.WriteFile(c.config, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, node := range c.nodes {
		c.roots[node] = filepath.Join(tmpfs.Mount(t, "size=1g"), "root") // pages are taken as used: 100,000 small files need 400 MiB
		if err := os.Mkdir(c.roots[node], 0o755); err != nil {
			t.Fatal(err)
		}
		c.states[node] = t.TempDir()
		c.startAgent(node)
	}
	c.waitReady()
	return c
}

func (c *cluster) startAgent(node string) {
	c.t.Helper()
	// A short backoff cap, so that a peer down "for an hour" (as many
	// failed runs as an hour gives at the real cap) takes seconds here.
	args := []string{"run", "--config", c.config, "--node", node, "--root", c.roots[node], "--state-dir", c.states[node],
		"--retry-backoff-cap", "500ms"}
	if c.metricsPort != 0 {
		args = append(args, "--metrics-bind-address", fmt.Sprintf("127.0.5.%d:%d", slices.Index(c.nodes, node)+2, c.metricsPort))
	}
	cmd := exec.Command(binary, append(args, c.args...)...)
	// An agent outlives a test binary that dies without its cleanups (a
	// -timeout panic) and holds the group's ports, so every later run of
	// its test fails to bind: it gets SIGTERM with its parent, drains and
	// stops its daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	logf, err := os.Create(filepath.Join(c.states[node], "agent.log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[node] = cmd
	c.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		if c.t.Failed() {
			// A -v log is long: its end says what went wrong.
			log, _ := os.ReadFile(logf.Name())
			if len(log) > 64<<10 {
				log = log[len(log)-64<<10:]
			}
			c.t.Logf("agent %s log (end):\n%s", node, log)
		}
	})
}

// waitReady waits until every agent answers on its status socket.
func (c *cluster) waitReady() {
	c.t.Helper()
	for _, node := range c.nodes {
		poll.Until(c.t, 20*time.Second, func() error {
			_, err := c.status(node)
			return err
		})
	}
}

func (c *cluster) status(node string) (*agent.Report, error) {
	out, err := exec.Command(binary, "status", "--state-dir", c.states[node], "-o", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", node, err)
	}
	var r agent.Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("status of %s: %w", node, err)
	}
	// Every other member is a peer: a check over r.Peers holds for none
	// when there are none.
	if len(r.Peers) != len(c.nodes)-1 {
		return nil, fmt.Errorf("status of %s: %d peers, want %d", node, len(r.Peers), len(c.nodes)-1)
	}
	return &r, nil
}

// metricsURL is node's metrics endpoint (its daemon port + 2, or
// metricsPort) with path.
func (c *cluster) metricsURL(node, path string) string {
	c.t.Helper()
	i := slices.Index(c.nodes, node)
	if i < 0 || c.port == 0 {
		c.t.Fatalf("no metrics endpoint for %s", node)
	}
	port := c.port + 2
	if c.metricsPort != 0 {
		port = c.metricsPort
	}
	return fmt.Sprintf("http://127.0.5.%d:%d%s", i+2, port, path)
}

// sample is one series of a Prometheus text exposition and its value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics reads node's /metrics.
func (c *cluster) metrics(node string) ([]sample, error) {
	res, err := http.Get(c.metricsURL(node, "/metrics"))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %s", node, res.Status)
	}
	return parseMetrics(string(body))
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseMetrics reads the sample lines of a Prometheus text exposition:
// name{label="value",...} value.
func parseMetrics(text string) ([]sample, error) {
	var out []sample
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics line %q", line)
			}
			s.name, rest = line[:i], line[j+1:]
			for _, m := range labelPair.FindAllStringSubmatch(line[i+1:j], -1) {
				v, err := strconv.Unquote(`"` + m[2] + `"`)
				if err != nil {
					return nil, fmt.Errorf("metrics line %q: %w", line, err)
				}
				s.labels[m[1]] = v
			}
		} else {
			s.name, rest, _ = strings.Cut(line, " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, nil
}

// series returns the samples of name whose labels include want's.
func series(ss []sample, name string, want map[string]string) []sample {
	var out []sample
	for _, s := range ss {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, s)
		}
	}
	return out
}

// snapshot describes a tree: per path its type, mode, owner, mtime (of
// files, directories and symlinks, to the nanosecond), and content hash or
// link target. The reserved .jailsync directory is left out.
func snapshot(root string) (map[string]string, error) { return snapshotWhere(root, nil) }

// snapshotWhere is snapshot of the paths that keep (when not nil) keeps; a
// directory it does not keep is not walked. For a part of the root that
// nothing changes meanwhile, while replication may still be changing the
// rest: a walk of that fails where an entry goes or turns into a file
// under it.
func snapshotWhere(root string, keep func(rel string) bool) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if rel == ".jailsync" {
			return filepath.SkipDir
		}
		if keep != nil && !keep(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s uid=%d gid=%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" mtime=%d -> %s", fi.ModTime().UnixNano(), target)
		case fi.IsDir():
			desc += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += fmt.Sprintf(" mtime=%d sha=%s", fi.ModTime().UnixNano(), hex.EncodeToString(sum[:8]))
		}
		out[rel] = desc
		return nil
	})
	return out, err
}

// converged waits until every root holds what want holds (the writer's).
func (c *cluster) converged(from string) {
	c.t.Helper()
	c.convergedWithin(from, 30*time.Second)
}

// convergedWithin is converged with a limit of its own, for trees too big
// to compare within converged's.
func (c *cluster) convergedWithin(from string, limit time.Duration) {
	c.t.Helper()
	start := time.Now()
	defer func() {
		if !c.t.Failed() {
			// Logged, never asserted (timing lives in make bench): how
			// long each run took to converge, for the docs.
			c.t.Logf("identical after %s", time.Since(start).Round(time.Millisecond))
		}
	}()
	poll.Until(c.t, limit, func() error {
		// from's tree, read once a poll (content hashes of every file) and
		// compared with every other member's. Every member's difference,
		// not only the first: which member holds which version says where
		// a run went wrong.
		want, err := snapshot(c.roots[from])
		if err != nil {
			return err
		}
		var errs []error
		for _, node := range c.nodes {
			if node == from {
				continue
			}
			if err := c.holdsTree(node, from, want); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// holds reports how node's root differs from from's, nil when it holds
// the same.
func (c *cluster) holds(node, from string) error {
	want, err := snapshot(c.roots[from])
	if err != nil {
		return err
	}
	return c.holdsTree(node, from, want)
}

// holdsTree is holds against want, from's snapshot taken already.
func (c *cluster) holdsTree(node, from string, want map[string]string) error {
	got, err := snapshot(c.roots[node])
	if err != nil {
		return err
	}
	if d := diff(want, got); d != "" {
		return fmt.Errorf("%s differs from %s: %s", node, from, d)
	}
	return nil
}

func diff(want, got map[string]string) string {
	var d []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			d = append(d, fmt.Sprintf("missing %q", p))
		} else if g != w {
			d = append(d, fmt.Sprintf("%q: %s, want %s", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			d = append(d, fmt.Sprintf("extra %q", p))
		}
	}
	sort.Strings(d)
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("... %d more", len(d)-5))
	}
	return strings.Join(d, "; ")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// appendTo appends text to the file at path, which must exist.
func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(text)
	must(t, err)
	must(t, f.Close())
}

func TestStandalone_ConvergeFromEveryMember(t *testing.T) {
	c := start(t, 4, 18500)
	for i, node := range c.nodes {
		t.Run("writes on "+node, func(t *testing.T) {
			r := c.roots[node]
			p := func(rel string) string { return filepath.Join(r, rel) }
			dir := "from-" + node
			if i > 0 {
				// A file this member received, changed here: its own
				// change, not an echo of the previous member's.
				received := "from-" + c.nodes[i-1] + "/renamed"
				appendTo(t, p(received), ", then changed on "+node)
				must(t, os.Chmod(p(received), 0o604))
				c.converged(node)
			}
			must(t, os.MkdirAll(p(dir+"/tree/deep"), 0o755))
			must(t, os.WriteFile(p(dir+"/file"), []byte("first"), 0o644))
			must(t, os.WriteFile(p(dir+"/tree/deep/leaf"), []byte("leaf"), 0o600))
			must(t, os.Symlink("../file", p(dir+"/tree/link")))
			must(t, os.Symlink("/etc/passwd", p(dir+"/abs-link")))
			// A symlinked directory pointing outside the root: the link
			// goes as a link; what is written through it is outside and
			// never sent (a peer that got a real directory here, or the
			// files below it, would differ in the snapshot).
			outside := t.TempDir()
			must(t, os.Symlink(outside, p(dir+"/out-dir")))
			must(t, os.WriteFile(filepath.Join(p(dir+"/out-dir"), "written-through-link"), []byte("outside"), 0o644))
			c.converged(node)
			for _, other := range c.nodes {
				fi, err := os.Lstat(filepath.Join(c.roots[other], dir, "out-dir"))
				if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("%s: out-dir is %v (%v), want the symlink", other, fi, err)
				}
			}

			must(t, os.WriteFile(p(dir+"/file"), []byte("overwritten"), 0o644))
			appendTo(t, p(dir+"/file"), " and appended")
			must(t, os.Truncate(p(dir+"/tree/deep/leaf"), 2))
			must(t, os.Chmod(p(dir+"/tree/deep/leaf"), 0o640))
			must(t, os.Lchown(p(dir+"/file"), 1234, 5678))
			must(t, os.Chtimes(p(dir+"/file"), time.Now(), time.Unix(1_600_000_000, 0)))
			must(t, os.Link(p(dir+"/file"), p(dir+"/hardlink")))
			c.converged(node)
			// converged compares content, not link identity.
			content := []byte("overwritten and appended")
			c.linkedEverywhere(content, dir+"/file", dir+"/hardlink")

			must(t, os.Rename(p(dir+"/file"), p(dir+"/renamed")))
			must(t, os.Rename(p(dir+"/tree"), p(dir+"/moved-tree")))
			c.converged(node)
			c.linkedEverywhere(content, dir+"/renamed", dir+"/hardlink")

			must(t, os.RemoveAll(p(dir+"/moved-tree")))
			must(t, os.Remove(p(dir+"/abs-link")))
			must(t, os.Remove(p(dir+"/hardlink"))) // one name of two: the other stays
			// The next member starts from a settled group.
			c.settled(node)
			// Every member's out-dir points at outside: nothing any of
			// them received went through the link.
			es, err := os.ReadDir(outside)
			must(t, err)
			if len(es) != 1 || es[0].Name() != "written-through-link" {
				t.Errorf("outside the root: %v, want only written-through-link", es)
			}
		})
	}
}

func TestStandalone_EchoSuppressionExactTransfers(t *testing.T) {
	// The metrics endpoints moved by --metrics-bind-address (checked at
	// the end: nothing listens at port + 2).
	c := startCluster(t, 4, 18510, clusterOptions{metricsPort: 18625})
	// A file in the root: the write journals that one path (the root's
	// own changes are never journaled, detect.route; a directory's are
	// not reported for entries made in it), so each peer's sender has one
	// entry, which one run (sender.Run: one announce, one rsync push, one
	// confirmation) carries. The push client a sender prepares ahead of
	// its next run (sender/warm.go) transfers nothing and is not a run.
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "one"), []byte("one write"), 0o644))
	c.converged("n1")
	// An echo would be a receiver taking the file it received for a
	// change of its own: its detector holds a received path until the
	// sender's confirmation, and re-checks held paths every second
	// (detect.filter). After 3 s of quiet anything echoed has been sent.
	time.Sleep(3 * time.Second)
	// And the anti-entropy compare, once every member is quiet, finds one
	// tree and sends nothing: each member compared with each peer.
	for _, node := range c.nodes {
		poll.Until(t, 30*time.Second, func() error {
			ss, err := c.metrics(node)
			if err != nil {
				return err
			}
			for _, p := range slices.DeleteFunc(slices.Clone(c.nodes), func(n string) bool { return n == node }) {
				if s := series(ss, "jailsync_compares_total", map[string]string{"peer": p, "result": "same"}); len(s) != 1 || s[0].value < 1 {
					return fmt.Errorf("%s has not compared with %s and found the same tree: %v", node, p, series(ss, "jailsync_compares_total", nil))
				}
			}
			return nil
		})
	}
	for _, node := range c.nodes {
		r, err := c.status(node)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Peers {
			want := int64(0)
			if node == "n1" {
				want = 1
			}
			if p.FilesSynced != want {
				t.Errorf("%s -> %s: %d files synced, want %d (one write on n1 is exactly 3 transfers)", node, p.Target, p.FilesSynced, want)
			}
		}
	}
	// The same from every agent's /metrics, with the runs: n1 ran exactly
	// one rsync run to each peer, which succeeded and carried one file;
	// the three receivers ran none at all (a counter that never counted is
	// absent; absent or 0 passes).
	for _, node := range c.nodes {
		ss, err := c.metrics(node)
		if err != nil {
			t.Fatal(err)
		}
		runs := series(ss, "jailsync_rsync_runs_total", map[string]string{"group": "www"})
		files := series(ss, "jailsync_files_synced_total", map[string]string{"group": "www"})
		if node != "n1" {
			if len(series(ss, "jailsync_pending_files", map[string]string{"group": "www"})) == 0 {
				t.Errorf("%s's metrics lack jailsync_pending_files: not the agent's metrics?", node)
			}
			for _, s := range append(runs, files...) {
				if s.value != 0 {
					t.Errorf("%s, which only received, has %s%v = %v, want none", node, s.name, s.labels, s.value)
				}
			}
			continue
		}
		for _, s := range append(runs, files...) {
			if s.labels["peer"] == "n1" || !slices.Contains(c.nodes, s.labels["peer"]) {
				t.Errorf("n1 has %s%v = %v for a peer that is not one", s.name, s.labels, s.value)
			}
		}
		for _, peer := range []string{"n2", "n3", "n4"} {
			var total float64
			for _, s := range series(runs, "jailsync_rsync_runs_total", map[string]string{"peer": peer}) {
				total += s.value
				if s.value != 0 && s.labels["exit_code"] != "0" {
					t.Errorf("n1 -> %s: %v runs with exit code %s, want none", peer, s.value, s.labels["exit_code"])
				}
			}
			if total != 1 {
				t.Errorf("n1 -> %s: %v rsync runs, want exactly 1 for the one write", peer, total)
			}
			f := series(files, "jailsync_files_synced_total", map[string]string{"peer": peer})
			if len(f) != 1 || f[0].value != 1 {
				t.Errorf("n1 -> %s: jailsync_files_synced_total %v, want exactly 1", peer, f)
			}
		}
		for _, name := range []string{"jailsync_pending_files", "jailsync_pending_bytes", "jailsync_lag_seconds", "jailsync_bytes_synced_total", "jailsync_bytes_sent_total", "jailsync_rsync_runs_total", "jailsync_rescans_total", "jailsync_compares_total"} {
			if len(series(ss, name, nil)) == 0 {
				t.Errorf("n1's metrics lack %s", name)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(c.metricsURL("n1", path))
		if err != nil || res.StatusCode != http.StatusOK {
			t.Errorf("%s: %v %v", path, err, res)
		}
		if res != nil {
			res.Body.Close()
		}
	}
	if res, err := http.Get(fmt.Sprintf("http://127.0.5.2:%d/metrics", c.port+2)); err == nil {
		res.Body.Close()
		t.Errorf("n1 still serves /metrics at its daemon port + 2, given --metrics-bind-address")
	}
}

func TestStandalone_HostileNames(t *testing.T) {
	// Compressed (transport.compress): the names, and what the files
	// hold, arrive the same.
	c := startSpec(t, 3, 18520, "", "    compress: true\n")
	// Were a name ever run by a shell, each command among them would make
	// marker in that shell's working directory.
	marker := fmt.Sprintf("jailsync-pwned-%d", os.Getpid())
	names := []string{"with space", "new\nline", "tab\there", " leading space", "trailing space ", "-n", "--delete", "-e touch " + marker,
		"--rsh=touch " + marker, "#hash", ";semi", "$(touch " + marker + ")", "`touch " + marker + "`", "; touch " + marker,
		"| touch " + marker, "&& touch " + marker, "`id`", "*", "?", "[a-z]*", "back\\slash", "ends in a backslash\\",
		"\xff\xfe not utf-8", "...", strings.Repeat("x", 255)}
	// Names that a name split at its spaces, or taken for a pattern,
	// would also hit ("*" and "[a-z]*" match them all): they must outlive
	// the deletes of the names above.
	bystanders := []string{"keep", "with", "space", "new", "line", "back", "slash", "a", "x"}
	for _, n := range slices.Concat(names, bystanders) {
		must(t, os.WriteFile(filepath.Join(c.roots["n2"], n), []byte(n), 0o644))
	}
	c.converged("n2")
	for _, node := range c.nodes {
		for _, n := range slices.Concat(names, bystanders) {
			if data, err := os.ReadFile(filepath.Join(c.roots[node], n)); err != nil || string(data) != n {
				t.Errorf("%s: %q holds %q (%v), want its name", node, n, data, err)
			}
		}
	}
	// The names as directories too, each holding a file and a symlink
	// whose target is a name: made on n2, renamed on n1, then removed
	// there. (Removed on n3 as soon as every member held the renamed
	// trees, they could cross n1's verification of them and come back on
	// every member, 1 run in 32: docs/design.md, "Removals crossing a
	// rename's verification".)
	dirName := func(n, suffix string) string { return n[:min(len(n), 240)] + suffix }
	for i, n := range names {
		d := filepath.Join(c.roots["n2"], dirName(n, ".d"))
		must(t, os.Mkdir(d, 0o755))
		inner := names[(i+1)%len(names)]
		must(t, os.WriteFile(filepath.Join(d, inner), []byte(inner), 0o644))
		must(t, os.Symlink(n, filepath.Join(d, "link")))
	}
	c.settled("n2")
	for _, n := range names {
		must(t, os.Rename(filepath.Join(c.roots["n1"], dirName(n, ".d")), filepath.Join(c.roots["n1"], dirName(n, ".moved"))))
	}
	c.converged("n1")
	for _, n := range names {
		must(t, os.RemoveAll(filepath.Join(c.roots["n1"], dirName(n, ".moved"))))
	}
	c.converged("n1")
	// Every hostile name deleted on another member than the writer: each
	// goes from every peer, and nothing else does.
	for _, n := range names {
		must(t, os.Remove(filepath.Join(c.roots["n3"], n)))
	}
	poll.Until(t, 30*time.Second, func() error {
		for _, node := range c.nodes {
			for _, n := range names {
				if _, err := os.Lstat(filepath.Join(c.roots[node], n)); !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%q still on %s (%v)", n, node, err)
				}
			}
		}
		return nil
	})
	c.converged("n3")
	for _, node := range c.nodes {
		got, err := snapshot(c.roots[node])
		must(t, err)
		if len(got) != len(bystanders) {
			t.Errorf("%s holds %d paths after the deletes, want the %d bystanders: %v", node, len(got), len(bystanders), got)
		}
		for _, n := range bystanders {
			if data, err := os.ReadFile(filepath.Join(c.roots[node], n)); err != nil || string(data) != n {
				t.Errorf("%s: bystander %q holds %q (%v) after the deletes", node, n, data, err)
			}
		}
	}
	// Nothing was executed: no marker in the working directory of any
	// process involved (the agents run in this test's, rsync clients in
	// the data root, the daemons in / and then chrooted into the root),
	// nor anywhere in the roots' filesystems and the state directories.
	cwd, err := os.Getwd()
	must(t, err)
	home, _ := os.UserHomeDir()
	for _, dir := range []string{cwd, "/", os.TempDir(), home} {
		if dir == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, marker)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a name was executed: %s exists (%v)", filepath.Join(dir, marker), err)
		}
	}
	for _, node := range c.nodes {
		for _, dir := range []string{filepath.Dir(c.roots[node]), c.states[node]} {
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.Name() == marker {
					t.Errorf("a name was executed on %s: %s exists", node, p)
				}
				return nil
			})
			must(t, err)
		}
	}
}

func TestStandalone_ExcludeAndKeepDeletes(t *testing.T) {
	c := startSpec(t, 3, 18570, "  deletes: Keep\n  exclude:\n  - \"*.tmp\"\n  - /cache/\n", "")
	r1 := c.roots["n1"]
	must(t, os.WriteFile(filepath.Join(r1, "keep-me"), []byte("data"), 0o644))
	must(t, os.WriteFile(filepath.Join(r1, "scratch.tmp"), []byte("local only"), 0o644))
	must(t, os.MkdirAll(filepath.Join(r1, "cache"), 0o755))
	must(t, os.WriteFile(filepath.Join(r1, "cache", "blob"), []byte("local only"), 0o644))
	must(t, os.MkdirAll(filepath.Join(r1, "sub", "cache"), 0o755)) // only /cache/ at the root is excluded
	must(t, os.WriteFile(filepath.Join(r1, "sub", "cache", "kept"), []byte("replicated"), 0o644))
	for _, node := range []string{"n2", "n3"} {
		poll.Until(t, 20*time.Second, func() error {
			for _, p := range []string{"keep-me", "sub/cache/kept"} {
				if _, err := os.Stat(filepath.Join(c.roots[node], p)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	must(t, os.Remove(filepath.Join(r1, "keep-me")))
	must(t, os.WriteFile(filepath.Join(r1, "marker"), []byte("after the delete"), 0o644))
	// Until n1 has nothing pending for either peer: the removal is done
	// with (under Mirror, deleted on the peers by then), not merely
	// behind the marker in a run that pushes before it deletes.
	c.nothingPending("n1")
	for _, node := range []string{"n2", "n3"} {
		poll.Until(t, 20*time.Second, func() error {
			_, err := os.Stat(filepath.Join(c.roots[node], "marker"))
			return err
		})
		for _, p := range []string{"scratch.tmp", "cache/blob", "cache"} {
			if _, err := os.Lstat(filepath.Join(c.roots[node], p)); err == nil {
				t.Errorf("excluded %s reached %s", p, node)
			}
		}
		if _, err := os.Stat(filepath.Join(c.roots[node], "keep-me")); err != nil {
			t.Errorf("deletes: Keep, but keep-me was deleted on %s: %v", node, err)
		}
	}
}

// settled waits until every member holds from's tree and from has
// nothing pending: its runs are over, so that what another member does
// next does not cross them. A tree can be identical before the runs end:
// a replayed rename moves the tree on the peer, and the push that
// verifies the new names comes after it.
func (c *cluster) settled(from string) {
	c.t.Helper()
	c.converged(from)
	c.nothingPending(from)
}

// nothingPending waits until node has nothing pending for any peer: its
// runs are confirmed, not merely delivered.
func (c *cluster) nothingPending(node string) {
	c.t.Helper()
	poll.Until(c.t, 20*time.Second, func() error {
		r, err := c.status(node)
		if err != nil {
			return err
		}
		if len(r.Peers) != len(c.nodes)-1 {
			return fmt.Errorf("%s reports %d peers, want %d", node, len(r.Peers), len(c.nodes)-1)
		}
		for _, p := range r.Peers {
			if p.PendingFiles != 0 {
				return fmt.Errorf("%s -> %s: %d files pending", node, p.Target, p.PendingFiles)
			}
		}
		return nil
	})
}

// stopAll stops every agent with SIGTERM and waits for them.
func (c *cluster) stopAll() {
	c.t.Helper()
	for _, node := range c.nodes {
		_ = c.procs[node].Process.Signal(syscall.SIGTERM)
		_, _ = c.procs[node].Process.Wait()
	}
}

func TestStandalone_SuspendKeepsChangesInTheJournal(t *testing.T) {
	c := startSpec(t, 3, 18525, "  suspend: true\n", "")
	must(t, os.WriteFile(filepath.Join(c.roots["n1"], "from-n1"), []byte("written while suspended"), 0o644))
	must(t, os.WriteFile(filepath.Join(c.roots["n2"], "from-n2"), []byte("also while suspended"), 0o644))
	// Journaled for every peer, and reported so.
	for _, node := range []string{"n1", "n2"} {
		poll.Until(t, 20*time.Second, func() error {
			r, err := c.status(node)
			if err != nil {
				return err
			}
			if !r.Suspended {
				return fmt.Errorf("%s does not report the group suspended", node)
			}
			for _, p := range r.Peers {
				if p.PendingFiles != 1 {
					return fmt.Errorf("%s -> %s: %d files pending, want 1", node, p.Target, p.PendingFiles)
				}
			}
			return nil
		})
	}
	// A running sender sends within milliseconds; a suspended one not at all.
	time.Sleep(time.Second)
	// What waits, in bytes and in time, in the status and the metrics.
	size := float64(len("written while suspended"))
	r, err := c.status("n1")
	must(t, err)
	ss, err := c.metrics("n1")
	must(t, err)
	for _, p := range r.Peers {
		if p.PendingBytes != int64(size) || p.LagMilliseconds < 1000 {
			t.Errorf("n1 -> %s: %d bytes pending, lag %d ms; want %v bytes, at least 1000 ms", p.Target, p.PendingBytes, p.LagMilliseconds, size)
		}
		by := series(ss, "jailsync_pending_bytes", map[string]string{"peer": p.Target})
		lag := series(ss, "jailsync_lag_seconds", map[string]string{"peer": p.Target})
		if len(by) != 1 || by[0].value != size || len(lag) != 1 || lag[0].value < 1 {
			t.Errorf("n1 -> %s: jailsync_pending_bytes %v, jailsync_lag_seconds %v; want %v bytes, at least 1 s", p.Target, by, lag, size)
		}
	}
	for _, node := range c.nodes {
		for _, name := range []string{"from-n1", "from-n2"} {
			owner := "n" + name[len(name)-1:]
			if _, err := os.Stat(filepath.Join(c.roots[node], name)); err == nil && node != owner {
				t.Errorf("%s reached %s while the group was suspended", name, node)
			}
		}
	}
	// Resumed (standalone: the file changed, the agents restarted): what
	// the journals hold goes out.
	c.stopAll()
	manifest, err := os.ReadFile(c.config)
	must(t, err)
	must(t, os.WriteFile(c.config, []byte(strings.Replace(string(manifest), "  suspend: true\n", "", 1)), 0o600))
	for _, node := range c.nodes {
		c.startAgent(node)
	}
	c.converged("n1")
	if _, err := os.Stat(filepath.Join(c.roots["n1"], "from-n2")); err != nil {
		t.Errorf("n2's change made while suspended did not reach n1: %v", err)
	}
}
