//go:build linux && stress

package e2e

// Randomized stress tests of the real agents: random operations on the
// members' roots (writes, appends, truncations, mkdir -p, rm, rm -r, mv of
// files and directories, swaps, chains, hard links, symlinks, chmod, touch,
// hostile names), then a wait until every member holds the writer's tree.
// Built only with the stress tag (`make stress`, or by hand):
//
//   go test -tags stress -race -count=1 -run TestStress -timeout 30m ./test/e2e/
//
// Written in the twenty-ninth session; its first runs found divergences
// with one writer (docs/design.md, "Known limits"), some mended since, and
// it is not part of make test while it fails.
//
// Env:
//   JAILSYNC_STRESS_SEEDS=1,2,3     seeds (default 1)
//   JAILSYNC_STRESS_DUR=30s         op time per run
//   JAILSYNC_STRESS_OUT=/tmp/so     where op logs, diffs and agent logs go
//   JAILSYNC_STRESS_REPLAY=file     replay an ops.jsonl instead of generating
//   JAILSYNC_STRESS_PACED=1         replay each op at its time ("t") instead
//                                   of at once: the failures that depend on
//                                   the agents' timing come back more often
//
// Ops are logged (JSON lines) to OUT/<test>-<seed>/ops.jsonl before they run.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/test/stressops"
)

// ---------- cluster on 127.0.7.x ----------

type scluster struct {
	*cluster
	out    string
	mu     sync.Mutex
	exited map[string]chan error // per running agent: its Wait's result
	killed map[string]bool
	logs   map[string]*os.File
}

func startStressCluster(t *testing.T, n, port int, out string, args []string) *scluster {
	t.Helper()
	c := &cluster{t: t, roots: map[string]string{}, states: map[string]string{}, procs: map[string]*exec.Cmd{}, port: port, args: args}
	sc := &scluster{cluster: c, out: out, exited: map[string]chan error{}, killed: map[string]bool{}, logs: map[string]*os.File{}}
	var members strings.Builder
	for i := range n {
		node := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, node)
		fmt.Fprintf(&members, "  - node: %s\n    address: 127.0.7.%d:%d\n", node, i+2, port)
	}
	c.config = filepath.Join(out, "group.yaml")
	manifest := fmt.Sprintf(`apiVersion: sync.jailsync.io/v1alpha1
kind: SyncGroup
metadata:
  name: www
spec:
  path: /data/www
  members:
%s  transport:
    secretRef:
      name: www-transport
---
apiVersion: v1
kind: Secret
metadata:
  name: www-transport
stringData:
  rsync-password: "e2e-secret"
`, members.String())
	must(t, os.WriteFile(c.config, []byte(manifest), 0o600))
	for _, node := range c.nodes {
		c.roots[node] = filepath.Join(tmpfs.Mount(t, "size=1g"), "root")
		must(t, os.Mkdir(c.roots[node], 0o755))
		c.states[node] = filepath.Join(out, node)
		must(t, os.MkdirAll(c.states[node], 0o700))
	}
	// After the mounts: cleanups run last first, so the agents stop
	// before their roots are unmounted.
	t.Cleanup(func() {
		for _, node := range c.nodes {
			sc.mu.Lock()
			sc.killed[node] = true
			ch := sc.exited[node]
			sc.mu.Unlock()
			if c.procs[node] != nil {
				_ = c.procs[node].Process.Signal(syscall.SIGTERM)
				if ch != nil {
					select {
					case <-ch:
					case <-time.After(20 * time.Second):
						_ = c.procs[node].Process.Kill()
					}
				}
			}
			if f := sc.logs[node]; f != nil {
				f.Close()
			}
		}
	})
	for _, node := range c.nodes {
		sc.startAgent(node)
	}
	c.waitReady()
	return sc
}

func (sc *scluster) startAgent(node string) {
	c := sc.cluster
	c.t.Helper()
	args := []string{"run", "--config", c.config, "--node", node, "--root", c.roots[node], "--state-dir", c.states[node],
		"--retry-backoff-cap", "500ms"}
	cmd := exec.Command(binary, append(args, c.args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	sc.mu.Lock()
	logf := sc.logs[node]
	if logf == nil {
		var err error
		logf, err = os.OpenFile(filepath.Join(c.states[node], "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			sc.mu.Unlock()
			c.t.Fatal(err)
		}
		sc.logs[node] = logf
	}
	fmt.Fprintf(logf, "===== STRESS: agent %s started at %s =====\n", node, time.Now().Format(time.RFC3339Nano))
	sc.killed[node] = false
	sc.mu.Unlock()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	ch := make(chan error, 1)
	sc.mu.Lock()
	c.procs[node] = cmd
	sc.exited[node] = ch
	sc.mu.Unlock()
	go func() {
		err := cmd.Wait()
		sc.mu.Lock()
		expected := sc.killed[node]
		sc.mu.Unlock()
		if !expected {
			c.t.Errorf("AGENT %s EXITED UNEXPECTEDLY: %v (see %s)", node, err, filepath.Join(c.states[node], "agent.log"))
		}
		ch <- err
		close(ch)
	}()
}

func (sc *scluster) kill9(node string) {
	sc.mu.Lock()
	sc.killed[node] = true
	ch := sc.exited[node]
	cmd := sc.procs[node]
	sc.mu.Unlock()
	fmt.Fprintf(sc.logs[node], "===== STRESS: agent %s kill -9 at %s =====\n", node, time.Now().Format(time.RFC3339Nano))
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-ch
}

// ---------- ops ----------

// sop is an op of the run (test/stressops).
type sop = stressops.Op

var hostileNames = []string{"with space", "new\nline", "-lead", "#hash", "--delete", " sp ", "tab\tx", "-n", "#", "é ü"}

type gen struct {
	rng     *rand.Rand
	base    string // subtree the writer may use ("" = whole root)
	deleted []string
}

type tree struct {
	files, dirs, links []string // relative to the root
}

func readTree(root, base string) tree {
	var tr tree
	start := filepath.Join(root, base)
	_ = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ".jailsync" {
			return filepath.SkipDir
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			tr.links = append(tr.links, rel)
		case d.IsDir():
			tr.dirs = append(tr.dirs, rel) // includes base itself (or ".")
		case d.Type().IsRegular():
			tr.files = append(tr.files, rel)
		}
		return nil
	})
	return tr
}

func (g *gen) pick(l []string) string { return l[g.rng.IntN(len(l))] }

func (g *gen) name(prefix string) string {
	if g.rng.IntN(100) < 15 {
		return g.pick(hostileNames) + strconv.Itoa(g.rng.IntN(3))
	}
	return prefix + strconv.Itoa(g.rng.IntN(30))
}

func join(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// freshIn returns a name in dir that does not exist in root.
func (g *gen) freshIn(root, dir, prefix string) string {
	for range 20 {
		n := join(dir, g.name(prefix))
		if _, err := os.Lstat(filepath.Join(root, n)); errors.Is(err, fs.ErrNotExist) {
			return n
		}
	}
	return join(dir, fmt.Sprintf("%s-u%d", prefix, g.rng.Uint32()))
}

func (g *gen) size() int64 {
	switch r := g.rng.IntN(100); {
	case r < 3:
		return 1<<20 + g.rng.Int64N(4<<20)
	case r < 12:
		return 4096 + g.rng.Int64N(200<<10)
	default:
		return g.rng.Int64N(4096)
	}
}

func (g *gen) mtime() int64 {
	return time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() + g.rng.Int64N(int64(24*365*time.Hour)*20)
}

// next chooses one op for the writer's root. dirs[0] is the base (never moved or removed).
func (g *gen) next(root string) *sop {
	tr := readTree(root, g.base)
	dirs := tr.dirs
	movableDirs := slices.DeleteFunc(slices.Clone(dirs), func(d string) bool { return d == "." || d == g.base })
	entries := slices.Concat(tr.files, tr.links, movableDirs)
	nFiles := len(tr.files) + len(tr.links)
	// grow while small, shrink when large
	total := len(tr.files) + len(dirs) + len(tr.links)
	for range 50 {
		o := &sop{}
		r := g.rng.IntN(100)
		if total > 400 && r < 30 {
			r = 100 // deletes below
		}
		switch {
		case r < 20 || len(tr.files) == 0: // create
			o.Op, o.Size, o.Seed = "write", g.size(), g.rng.Uint64()
			o.Mode = []uint32{0o644, 0o600, 0o755, 0o640}[g.rng.IntN(4)]
			d := g.pick(dirs)
			if len(g.deleted) > 0 && g.rng.IntN(4) == 0 {
				o.P = []string{g.pick(g.deleted)}
				o.Note = "onto a deleted name"
			} else {
				o.P = []string{g.freshIn(root, d, "f")}
			}
		case r < 30: // overwrite
			o.Op, o.Size, o.Seed, o.Mode = "write", g.size(), g.rng.Uint64(), 0o644
			o.P = []string{g.pick(tr.files)}
		case r < 34:
			f := g.pick(tr.files)
			o.Op, o.Size, o.Seed, o.Mode = "atomicwrite", g.size(), g.rng.Uint64(), 0o644
			o.P = []string{f, join(filepath.Dir(f), ".tmp-"+strconv.Itoa(g.rng.IntN(1000)))}
		case r < 40:
			o.Op, o.Size, o.Seed, o.P = "append", g.rng.Int64N(8192), g.rng.Uint64(), []string{g.pick(tr.files)}
		case r < 44:
			f := g.pick(tr.files)
			fi, err := os.Stat(filepath.Join(root, f))
			if err != nil {
				continue
			}
			o.Op, o.Size, o.P = "truncate", g.rng.Int64N(fi.Size()+2000), []string{f}
		case r < 50:
			d := g.pick(dirs)
			for range 1 + g.rng.IntN(3) {
				d = join(d, g.name("d"))
			}
			o.Op, o.P = "mkdirp", []string{d}
		case r < 55:
			if nFiles == 0 {
				continue
			}
			f := g.pick(slices.Concat(tr.files, tr.links))
			o.Op, o.P = "rm", []string{f}
			g.deleted = append(g.deleted, f)
		case r < 58:
			if len(movableDirs) == 0 {
				continue
			}
			d := g.pick(movableDirs)
			o.Op, o.P = "rmr", []string{d}
			g.deleted = append(g.deleted, d)
		case r < 66: // mv file or link
			if nFiles == 0 {
				continue
			}
			src := g.pick(slices.Concat(tr.files, tr.links))
			var dst string
			switch k := g.rng.IntN(10); {
			case k < 2 && len(g.deleted) > 0:
				dst, o.Note = g.pick(g.deleted), "onto a deleted name"
			case k < 4 && len(tr.files) > 1:
				dst, o.Note = g.pick(tr.files), "replacing a file"
			default:
				dst = g.freshIn(root, g.pick(dirs), "m")
			}
			if dst == src || under(dst, src) {
				continue
			}
			o.Op, o.P = "mv", []string{src, dst}
			g.deleted = append(g.deleted, src)
		case r < 71: // mv dir
			if len(movableDirs) == 0 {
				continue
			}
			src := g.pick(movableDirs)
			var dst string
			if len(g.deleted) > 0 && g.rng.IntN(3) == 0 {
				dst, o.Note = g.pick(g.deleted), "onto a deleted name"
			} else {
				dst = g.freshIn(root, g.pick(dirs), "D")
			}
			if under(dst, src) || under(src, dst) {
				continue
			}
			o.Op, o.P = "mv", []string{src, dst}
			g.deleted = append(g.deleted, src)
		case r < 75: // swap
			if len(entries) < 2 {
				continue
			}
			a, b := g.pick(entries), g.pick(entries)
			if a == b || under(a, b) || under(b, a) {
				continue
			}
			o.Op, o.P = "swap", []string{a, b, g.freshIn(root, filepath.Dir(a), "swaptmp")}
		case r < 79: // chain
			if len(entries) == 0 {
				continue
			}
			a := g.pick(entries)
			b := g.freshIn(root, g.pick(dirs), "c")
			c := g.freshIn(root, g.pick(dirs), "c")
			if b == c || under(b, a) || under(c, a) {
				continue
			}
			o.Op, o.P = "mv", []string{a, b, c}
			g.deleted = append(g.deleted, a, b)
		case r < 84:
			if g.rng.IntN(3) == 0 && len(movableDirs) > 0 {
				o.Op, o.P, o.Mode = "chmod", []string{g.pick(movableDirs)}, []uint32{0o755, 0o700, 0o750, 0o775, 0o711}[g.rng.IntN(5)]
			} else {
				o.Op, o.P, o.Mode = "chmod", []string{g.pick(tr.files)}, []uint32{0o644, 0o600, 0o640, 0o755, 0o444, 0o666}[g.rng.IntN(6)]
			}
		case r < 89:
			o.Op, o.Time = "touch", g.mtime()
			switch k := g.rng.IntN(10); {
			case k < 3 && len(movableDirs) > 0:
				o.P = []string{g.pick(movableDirs)}
			case k < 4 && len(tr.links) > 0:
				o.P = []string{g.pick(tr.links)}
			default:
				o.P = []string{g.pick(tr.files)}
			}
		case r < 94:
			o.Op, o.P = "ln", []string{g.pick(tr.files), g.freshIn(root, g.pick(dirs), "h")}
		case r < 100:
			link := g.freshIn(root, g.pick(dirs), "s")
			var target string
			if len(entries) > 0 && g.rng.IntN(5) > 0 {
				target = g.pick(entries)
			} else {
				target = join(g.pick(dirs), "dangling"+strconv.Itoa(g.rng.IntN(5)))
			}
			rel, err := filepath.Rel(filepath.Dir(link), target)
			if err != nil {
				continue
			}
			o.Op, o.P = "symlink", []string{rel, link}
		default: // deletes when large
			if g.rng.IntN(2) == 0 && len(movableDirs) > 0 {
				o.Op, o.P = "rmr", []string{g.pick(movableDirs)}
			} else if nFiles > 0 {
				o.Op, o.P = "rm", []string{g.pick(slices.Concat(tr.files, tr.links))}
			} else {
				continue
			}
			g.deleted = append(g.deleted, o.P[0])
		}
		if len(g.deleted) > 20 {
			g.deleted = g.deleted[len(g.deleted)-20:]
		}
		return o
	}
	return &sop{Op: "sleep", Size: 10}
}

// ---------- run harness ----------

type stressRun struct {
	t     *testing.T
	sc    *scluster
	start time.Time
	mu    sync.Mutex
	log   *os.File
	ops   int
	errs  int
	phase int
	// noFail: settle reports a difference only by its result (shrinking).
	noFail bool
	// renamed: each node's renames that its ops made (old, new), for
	// unmatchedRenames.
	renamed map[string]map[[2]string]bool
}

func (r *stressRun) record(o *sop) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o.T = time.Since(r.start).Milliseconds()
	if o.Phase == 0 {
		o.Phase = r.phase
	}
	b, _ := json.Marshal(o)
	r.log.Write(append(b, '\n'))
	r.addRenames(o)
	r.ops++
	if o.Err != "" {
		r.errs++
	}
}

// addRenames notes the renames o makes.
func (r *stressRun) addRenames(o *sop) {
	pairs := o.Renames()
	if len(pairs) == 0 {
		return
	}
	if r.renamed == nil {
		r.renamed = map[string]map[[2]string]bool{}
	}
	if r.renamed[o.Node] == nil {
		r.renamed[o.Node] = map[[2]string]bool{}
	}
	for _, p := range pairs {
		r.renamed[o.Node][p] = true
	}
}

// unmatchedRenames returns the renames a member journaled as its own (its
// agent log's "change journaled" lines at -v, echoes aside) that no op of
// the run made on it: a source that joined a directory's path of one
// moment with a name of another (docs/design.md, the fanotify source's
// directory cache). Every peer replays such a rename, into directories it
// makes for it; not every one leaves the members apart, so the run only
// reports them.
func (r *stressRun) unmatchedRenames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, node := range r.sc.nodes {
		f, err := os.Open(filepath.Join(r.sc.states[node], "agent.log"))
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", node, err))
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !strings.Contains(string(line), `"change journaled"`) {
				continue
			}
			var c struct {
				Path, Op, Old string
				Echo          bool
			}
			if json.Unmarshal(line, &c) != nil || c.Echo || c.Old == "" || !slices.Contains(strings.Split(c.Op, "|"), "rename") {
				continue
			}
			if !r.renamed[node][[2]string{c.Old, c.Path}] {
				out = append(out, fmt.Sprintf("%s: %q -> %q (%s)", node, c.Old, c.Path, c.Op))
			}
		}
		f.Close()
	}
	return out
}

// done notes the run's op count and reports its unmatched renames.
func (r *stressRun) done() {
	r.note("ops %d (errors %d)", r.ops, r.errs)
	// Each member's final tree, its paths quoted one a line, beside the
	// agents' state directories: what their indexes are compared with
	// once the roots are gone (hack/dumpj -tree).
	if ss, err := r.snaps(); err == nil {
		for n, s := range ss {
			lines := make([]string, 0, len(s))
			for p := range s {
				lines = append(lines, strconv.Quote(p))
			}
			sort.Strings(lines)
			_ = os.WriteFile(filepath.Join(r.sc.out, "final-"+n+".txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		}
	}
	u := r.unmatchedRenames()
	r.note("renames journaled that match no op: %d", len(u))
	for i, l := range u {
		if i == 20 {
			r.t.Logf("... and %d more", len(u)-i)
			break
		}
		r.t.Logf("  %s", l)
	}
}

func (r *stressRun) note(format string, args ...any) {
	r.record(&sop{Op: "note", Note: fmt.Sprintf(format, args...)})
	r.t.Logf(format, args...)
}

// do generates (or takes) one op for node, logs it, runs it.
func (r *stressRun) do(node string, o *sop) {
	o.Node = node
	if err := stressops.Apply(r.sc.roots[node], o); err != nil {
		o.Err = err.Error()
	}
	r.record(o)
}

// writeFor runs random ops on node under g.base for d.
func (r *stressRun) writeFor(node string, g *gen, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		o := g.next(r.sc.roots[node])
		r.do(node, o)
		if g.rng.IntN(4) == 0 {
			time.Sleep(time.Duration(g.rng.IntN(30)) * time.Millisecond)
		}
		if gap, _ := strconv.Atoi(os.Getenv("JAILSYNC_STRESS_GAP")); gap > 0 {
			time.Sleep(time.Duration(gap) * time.Millisecond)
		}
	}
}

// snapshots of every member; an error if any walk failed.
func (r *stressRun) snaps() (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, n := range r.sc.nodes {
		s, err := snapshot(r.sc.roots[n])
		if err != nil {
			return nil, err
		}
		out[n] = s
	}
	return out, nil
}

func fullDiff(want, got map[string]string) []string {
	var d []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			d = append(d, fmt.Sprintf("missing %q (want %s)", p, w))
		} else if g != w {
			d = append(d, fmt.Sprintf("%q: got %s, want %s", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			d = append(d, fmt.Sprintf("extra %q: %s", p, g))
		}
	}
	sort.Strings(d)
	return d
}

// settle waits until every member holds the same tree, and, when want is
// given, that tree is want. Then checks it stays so for 3 s.
func (r *stressRun) settle(what string, want map[string]string, limit time.Duration) bool {
	r.t.Helper()
	start := time.Now()
	var last string
	for {
		ss, err := r.snaps()
		if err == nil {
			ref := want
			refName := "expected"
			if ref == nil {
				ref, refName = ss[r.sc.nodes[0]], r.sc.nodes[0]
			}
			var diffs []string
			for _, n := range r.sc.nodes {
				if want == nil && n == r.sc.nodes[0] {
					continue
				}
				for _, d := range fullDiff(ref, ss[n]) {
					diffs = append(diffs, fmt.Sprintf("%s vs %s: %s", n, refName, d))
				}
			}
			if len(diffs) == 0 {
				// stable?
				time.Sleep(3 * time.Second)
				ss2, err := r.snaps()
				if err == nil {
					var d2 []string
					for _, n := range r.sc.nodes {
						for _, d := range fullDiff(ref, ss2[n]) {
							d2 = append(d2, fmt.Sprintf("%s vs %s (after 3 s of quiet): %s", n, refName, d))
						}
					}
					if len(d2) == 0 {
						r.note("%s: identical after %v", what, time.Since(start).Round(time.Millisecond))
						return true
					}
					diffs = d2
				}
			}
			last = strings.Join(diffs, "\n")
		} else {
			last = err.Error()
		}
		if time.Since(start) > limit {
			r.note("%s: NOT CONVERGED within %v", what, limit)
			f := filepath.Join(r.sc.out, fmt.Sprintf("diff-phase%d.txt", r.phase))
			_ = os.WriteFile(f, []byte(last+"\n"), 0o644)
			for _, n := range r.sc.nodes {
				if s, err := snapshot(r.sc.roots[n]); err == nil {
					var lines []string
					for p, v := range s {
						lines = append(lines, fmt.Sprintf("%q %s", p, v))
					}
					sort.Strings(lines)
					_ = os.WriteFile(filepath.Join(r.sc.out, fmt.Sprintf("snap-%s-phase%d.txt", n, r.phase)), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
				}
			}
			if len(last) > 6000 {
				last = last[:6000] + "..."
			}
			if !r.noFail {
				r.t.Errorf("%s: members differ after %v (%s):\n%s", what, limit, f, last)
			}
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func stressSeeds() []uint64 {
	s := os.Getenv("JAILSYNC_STRESS_SEEDS")
	if s == "" {
		return []uint64{1}
	}
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err == nil {
			out = append(out, v)
		}
	}
	return out
}

func stressDur() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("JAILSYNC_STRESS_DUR")); err == nil {
		return d
	}
	return 30 * time.Second
}

// stressSkip is a no-op: the stress build tag is the opt-in.
func stressSkip(*testing.T) {}

func newRun(t *testing.T, name string, seed uint64, port int) *stressRun {
	base := os.Getenv("JAILSYNC_STRESS_OUT")
	if base == "" {
		base = "/tmp/so"
	}
	out := filepath.Join(base, fmt.Sprintf("%s-%d-%d", name, seed, time.Now().Unix()%100000))
	must(t, os.MkdirAll(out, 0o755))
	// --max-delete-share 1: the writers remove and rename whole trees of
	// a small root while an agent is down (Kill9), and its start scan,
	// which sees no renames, read most files as gone and stopped the agent
	// for an operator's --allow-mass-delete (Kill9 seed 2 of the
	// fifty-ninth session: 158 of 171 paths). That stop has tests of its
	// own (nodeagent/scan, detect/massdelete_linux_test.go); this one is
	// about converging.
	sc := startStressCluster(t, 3, port, out, []string{"-v", "--max-delete-share", "1"})
	lf, err := os.Create(filepath.Join(out, "ops.jsonl"))
	must(t, err)
	t.Cleanup(func() { lf.Close() })
	t.Logf("output in %s", out)
	r := &stressRun{t: t, sc: sc, start: time.Now(), log: lf}
	r.note("seed %d", seed)
	return r
}

// replay runs a recorded ops.jsonl (its ops and notes of phases), settling at
// each "settle" note.
func (r *stressRun) replay(file string) {
	f, err := os.Open(file)
	must(r.t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	paced := os.Getenv("JAILSYNC_STRESS_PACED") != ""
	start := time.Now()
	for sc.Scan() {
		var o sop
		must(r.t, json.Unmarshal(sc.Bytes(), &o))
		if paced {
			time.Sleep(time.Until(start.Add(time.Duration(o.T) * time.Millisecond)))
		}
		switch {
		case o.Op == "note" && strings.HasPrefix(o.Note, "kill9 "):
			r.sc.kill9(strings.TrimPrefix(o.Note, "kill9 "))
		case o.Op == "note" && strings.HasPrefix(o.Note, "restart "):
			r.sc.startAgent(strings.TrimPrefix(o.Note, "restart "))
		case o.Op == "note" && strings.HasPrefix(o.Note, "pause "):
			ms, _ := strconv.Atoi(strings.TrimPrefix(o.Note, "pause "))
			time.Sleep(time.Duration(ms) * time.Millisecond)
		case o.Op == "note":
		default:
			o.Err = ""
			r.do(o.Node, &o)
		}
	}
	r.settle("replay", nil, 60*time.Second)
}

// ---------- scenarios ----------

// Scenario 1 (strict): one writer at a time; each phase ends with every
// member holding exactly the writer's tree.
func TestStress_RotatingWriter(t *testing.T) {
	stressSkip(t)
	for i, seed := range stressSeeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			r := newRun(t, "rotating", seed, 19100+10*(i%5))
			if f := os.Getenv("JAILSYNC_STRESS_REPLAY"); f != "" {
				r.replay(f)
				return
			}
			rng := rand.New(rand.NewPCG(seed, 1))
			g := &gen{rng: rng}
			end := time.Now().Add(stressDur())
			for k := 0; time.Now().Before(end); k++ {
				r.phase++
				w := r.sc.nodes[k%3]
				r.note("phase %d writer %s", r.phase, w)
				r.writeFor(w, g, time.Duration(2000+rng.IntN(3000))*time.Millisecond)
				want, err := snapshot(r.sc.roots[w])
				must(t, err)
				if !r.settle(fmt.Sprintf("phase %d (writer %s)", r.phase, w), want, 60*time.Second) {
					break
				}
			}
			r.done()
		})
	}
}

// Scenario 1b (loose): rotation after a short pause only; converge at the end.
func TestStress_RotatingWriterLoose(t *testing.T) {
	stressSkip(t)
	for i, seed := range stressSeeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			r := newRun(t, "loose", seed, 19150+10*(i%5))
			rng := rand.New(rand.NewPCG(seed, 2))
			g := &gen{rng: rng}
			end := time.Now().Add(stressDur())
			for k := 0; time.Now().Before(end); k++ {
				r.phase++
				w := r.sc.nodes[k%3]
				r.note("phase %d writer %s", r.phase, w)
				r.writeFor(w, g, time.Duration(1000+rng.IntN(3000))*time.Millisecond)
				ms := 200 + rng.IntN(800)
				r.note("pause %d", ms)
				time.Sleep(time.Duration(ms) * time.Millisecond)
			}
			r.settle("final", nil, 60*time.Second)
			r.done()
		})
	}
}

// Scenario 2: two writers at once on disjoint subtrees a/ and b/; each phase
// ends with a/ as its writer has it and b/ as its.
func TestStress_DisjointWriters(t *testing.T) {
	stressSkip(t)
	for i, seed := range stressSeeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			r := newRun(t, "disjoint", seed, 19100+10*(i%5))
			rng := rand.New(rand.NewPCG(seed, 3))
			for _, d := range []string{"a", "b"} {
				r.do("n1", &sop{Op: "mkdirp", P: []string{d}})
			}
			r.settle("setup", nil, 30*time.Second)
			ga := &gen{rng: rand.New(rand.NewPCG(seed, 31)), base: "a"}
			gb := &gen{rng: rand.New(rand.NewPCG(seed, 32)), base: "b"}
			end := time.Now().Add(stressDur())
			for k := 0; time.Now().Before(end); k++ {
				r.phase++
				wa, wb := r.sc.nodes[k%3], r.sc.nodes[(k+1)%3]
				r.note("phase %d writers a:%s b:%s", r.phase, wa, wb)
				d := time.Duration(2000+rng.IntN(3000)) * time.Millisecond
				var wg sync.WaitGroup
				wg.Go(func() { r.writeFor(wa, ga, d) })
				wg.Go(func() { r.writeFor(wb, gb, d) })
				wg.Wait()
				// Each writer's tree without the other's subtree, which is
				// still arriving from its writer: a walk of it failed where
				// an entry went meanwhile (seeds 21-23 of the seventy-fourth
				// session). Not a's subtree alone: a write through a symlink
				// can put a file above it, at the root (seed 27).
				sa, err := snapshotWhere(r.sc.roots[wa], func(rel string) bool { return !under(rel, "b") })
				must(t, err)
				sb, err := snapshotWhere(r.sc.roots[wb], func(rel string) bool { return under(rel, "b") })
				must(t, err)
				want := map[string]string{}
				for p, v := range sa {
					if !under(p, "b") {
						want[p] = v
					}
				}
				for p, v := range sb {
					if under(p, "b") {
						want[p] = v
					}
				}
				if !r.settle(fmt.Sprintf("phase %d (a:%s b:%s)", r.phase, wa, wb), want, 60*time.Second) {
					break
				}
			}
			r.done()
		})
	}
}

// Scenario 3: rotating single writer; in each phase one agent (a
// non-writer or the writer) is killed -9 and restarted some seconds later.
func TestStress_Kill9(t *testing.T) {
	stressSkip(t)
	for i, seed := range stressSeeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			r := newRun(t, "kill9", seed, 19150+10*(i%5))
			rng := rand.New(rand.NewPCG(seed, 4))
			g := &gen{rng: rng}
			end := time.Now().Add(stressDur())
			for k := 0; time.Now().Before(end); k++ {
				r.phase++
				w := r.sc.nodes[k%3]
				victim := r.sc.nodes[(k+1+rng.IntN(2))%3]
				if k%2 == 1 {
					victim = w
				}
				killAt := time.Duration(300+rng.IntN(2000)) * time.Millisecond
				down := time.Duration(1000+rng.IntN(4000)) * time.Millisecond
				r.note("phase %d writer %s victim %s at %v for %v", r.phase, w, victim, killAt, down)
				var wg sync.WaitGroup
				wg.Go(func() {
					time.Sleep(killAt)
					r.note("kill9 %s", victim)
					r.sc.kill9(victim)
					time.Sleep(down)
					r.note("restart %s", victim)
					r.sc.startAgent(victim)
				})
				r.writeFor(w, g, time.Duration(2500+rng.IntN(3000))*time.Millisecond)
				wg.Wait()
				want, err := snapshot(r.sc.roots[w])
				must(t, err)
				if !r.settle(fmt.Sprintf("phase %d (writer %s, killed %s)", r.phase, w, victim), want, 60*time.Second) {
					break
				}
			}
			r.done()
		})
	}
}

// Scenario 4: all three write the same subtree at once; must converge.
func TestStress_Crossing(t *testing.T) {
	stressSkip(t)
	for i, seed := range stressSeeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			r := newRun(t, "crossing", seed, 19100+10*(i%5))
			end := time.Now().Add(stressDur())
			var wg sync.WaitGroup
			for j, n := range r.sc.nodes {
				g := &gen{rng: rand.New(rand.NewPCG(seed, uint64(50+j)))}
				wg.Go(func() {
					for time.Now().Before(end) {
						r.writeFor(n, g, time.Second)
						time.Sleep(time.Duration(g.rng.IntN(500)) * time.Millisecond)
					}
				})
			}
			wg.Wait()
			r.settle("final", nil, 90*time.Second)
			r.done()
		})
	}
}
