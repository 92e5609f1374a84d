//go:build linux

// Command replication measures jailsync against the lower bound on the same
// workloads, on loopback, in one run: one writer and three receivers, each
// receiver an rsync daemon with TCP_NODELAY (for jailsync, the agents' own
// managed daemons, configured the same way). It prints a table with ratios
// and writes the same figures as JSON.
//
// References so far: (a) the lower bound, one `rsync -a` per peer after the
// writes, the three in parallel. The old script, lsyncd, clsync and
// Syncthing follow (docs/benchmarks.md says which are measured).
//
// Needs root (tmpfs, fanotify) and the nodeagent binary (-nodeagent).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type result struct {
	Workload  string  `json:"workload"`
	System    string  `json:"system"`
	Seconds   float64 `json:"seconds"`
	P50Millis float64 `json:"p50Millis,omitempty"`
	P99Millis float64 `json:"p99Millis,omitempty"`
}

func main() {
	nodeagent := flag.String("nodeagent", "bin/nodeagent", "the nodeagent binary")
	out := flag.String("json", "bin/bench/replication.json", "where to write the figures")
	runs := flag.Int("runs", 3, "runs per figure (the median is reported)")
	flag.Parse()
	if err := run(*nodeagent, *out, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(nodeagent, out string, runs int) error {
	var results []result
	workloads := []struct {
		name  string
		files int
		size  int
	}{
		{"burst 2000 x 4 KiB", 2000, 4 << 10},
		{"100 x 1 MiB", 100, 1 << 20},
		{"1 x 256 MiB", 1, 256 << 20},
	}
	for _, w := range workloads {
		lb, js := make([]float64, 0, runs), make([]float64, 0, runs)
		for range runs {
			s, err := lowerBound(w.files, w.size)
			if err != nil {
				return fmt.Errorf("lower bound, %s: %w", w.name, err)
			}
			lb = append(lb, s)
			s, err = jailsync(nodeagent, w.files, w.size)
			if err != nil {
				return fmt.Errorf("jailsync, %s: %w", w.name, err)
			}
			js = append(js, s)
		}
		results = append(results, result{Workload: w.name, System: "lower bound (rsync -a per peer after the writes)", Seconds: median(lb)},
			result{Workload: w.name, System: "jailsync", Seconds: median(js)})
	}
	lb50, lb99, err := lowerBoundLatency(200)
	if err != nil {
		return fmt.Errorf("lower bound latency: %w", err)
	}
	p50, p99, err := latency(nodeagent, 200)
	if err != nil {
		return fmt.Errorf("jailsync latency: %w", err)
	}
	const single = "one 4 KiB file at a time, 200 files"
	results = append(results, result{Workload: single, System: "lower bound (a fresh rsync per peer after each close)", P50Millis: lb50, P99Millis: lb99},
		result{Workload: single, System: "jailsync", P50Millis: p50, P99Millis: p99})

	fmt.Printf("%-40s %-50s %10s %8s\n", "workload", "system", "seconds", "ratio")
	for i, r := range results {
		ratio := ""
		if r.System == "jailsync" && i > 0 && results[i-1].Workload == r.Workload {
			ratio = fmt.Sprintf("%.2fx", r.Seconds/results[i-1].Seconds)
		}
		if r.P50Millis > 0 {
			if r.System == "jailsync" && i > 0 && results[i-1].Workload == r.Workload {
				ratio = fmt.Sprintf("%.2fx", r.P50Millis/results[i-1].P50Millis)
			}
			fmt.Printf("%-40s %-50s p50 %.1f ms, p99 %.1f ms %8s\n", r.Workload, r.System, r.P50Millis, r.P99Millis, ratio)
			continue
		}
		fmt.Printf("%-40s %-50s %10.3f %8s\n", r.Workload, r.System, r.Seconds, ratio)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(results, "", "  ")
	return os.WriteFile(out, data, 0o644)
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// host is one loopback member.
type host struct {
	addr  string // IP
	port  int
	root  string
	state string
	cmd   *exec.Cmd
}

func mount(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return syscall.Mount("bench", dir, "tmpfs", 0, "size=1200m")
}

func unmount(dir string) { _ = syscall.Unmount(dir, syscall.MNT_DETACH) }

func writeFiles(dir string, files, size int) error {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*31 + 7)
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// complete reports whether dir holds files files of size bytes.
func complete(dir string, files, size int) bool {
	for i := range files {
		fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("f%05d", i)))
		if err != nil || fi.Size() != int64(size) {
			return false
		}
	}
	return true
}

// references starts three plain receiving daemons (TCP_NODELAY) and
// returns the source directory, the daemons' URLs and a cleanup.
func references() (src string, dests []string, cleanup func(), err error) {
	base, err := os.MkdirTemp("", "bench-lb-")
	if err != nil {
		return "", nil, nil, err
	}
	var daemons []*exec.Cmd
	var mounts []string
	cleanup = func() {
		for _, d := range daemons {
			_ = d.Process.Kill()
			_ = d.Wait()
		}
		for _, m := range mounts {
			unmount(m)
		}
		os.RemoveAll(base)
	}
	src = filepath.Join(base, "src")
	if err := mount(src); err != nil {
		cleanup()
		return "", nil, nil, err
	}
	mounts = append(mounts, src)
	for i := range 3 {
		dst := filepath.Join(base, fmt.Sprintf("dst%d", i))
		if err := mount(dst); err != nil {
			cleanup()
			return "", nil, nil, err
		}
		mounts = append(mounts, dst)
		addr := fmt.Sprintf("127.0.3.%d", i+2)
		conf := filepath.Join(base, fmt.Sprintf("rsyncd%d.conf", i))
		cfg := fmt.Sprintf("address = %s\nport = 18401\npid file = %s.pid\nlock file = %s.lock\nsocket options = TCP_NODELAY\nreverse lookup = no\nlisten backlog = 128\n[m]\npath = %s\nuse chroot = yes\nuid = 0\ngid = 0\nread only = no\nhosts allow = 127.0.3.1\n",
			addr, conf, conf, dst)
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			cleanup()
			return "", nil, nil, err
		}
		d := exec.Command("rsync", "--daemon", "--no-detach", "--config="+conf)
		if err := d.Start(); err != nil {
			cleanup()
			return "", nil, nil, err
		}
		daemons = append(daemons, d)
		dests = append(dests, fmt.Sprintf("rsync://%s:18401/m/", addr))
	}
	time.Sleep(300 * time.Millisecond)
	return src, dests, cleanup, nil
}

// pushAll runs one rsync -a of what (relative to src) per destination, in
// parallel, and waits for all.
func pushAll(src string, what []string, dests []string) error {
	errs := make(chan error, len(dests))
	for _, d := range dests {
		go func() {
			args := append([]string{"-a", "--relative", "--sockopts=TCP_NODELAY", "--address=127.0.3.1"}, what...)
			cmd := exec.Command("rsync", append(args, d)...)
			cmd.Dir = src
			out, err := cmd.CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, out)
			}
			errs <- err
		}()
	}
	for range dests {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// lowerBound writes the files, then runs one rsync -a per peer daemon in
// parallel, and returns the makespan from the first write.
func lowerBound(files, size int) (float64, error) {
	src, dests, cleanup, err := references()
	if err != nil {
		return 0, err
	}
	defer cleanup()
	start := time.Now()
	if err := writeFiles(src, files, size); err != nil {
		return 0, err
	}
	if err := pushAll(src, []string{"."}, dests); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// lowerBoundLatency writes n 4 KiB files one at a time and, after each
// close, runs a fresh rsync per peer in parallel: the close-to-all-peers
// time of the lower bound.
func lowerBoundLatency(n int) (p50, p99 float64, err error) {
	src, dests, cleanup, err := references()
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	return closeToArrival(n, src, func(name string) error { return pushAll(src, []string{name}, dests) })
}

// closeToArrival writes n 4 KiB files into dir one at a time and returns
// the p50 and p99, in milliseconds, of the time from each close until
// arrived (which waits until every peer holds the file) returns.
func closeToArrival(n int, dir string, arrived func(name string) error) (p50, p99 float64, err error) {
	data := make([]byte, 4<<10)
	ms := make([]float64, 0, n)
	for i := range n {
		name := fmt.Sprintf("lat%04d", i)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return 0, 0, err
		}
		closed := time.Now()
		if err := arrived(name); err != nil {
			return 0, 0, err
		}
		ms = append(ms, float64(time.Since(closed).Microseconds())/1000)
	}
	slices.Sort(ms)
	return ms[len(ms)/2], ms[len(ms)*99/100], nil
}

// cluster starts four agents (127.0.3.1 writes) and returns them.
func cluster(nodeagent string) ([]*host, func(), error) {
	base, err := os.MkdirTemp("", "bench-js-")
	if err != nil {
		return nil, nil, err
	}
	var hosts []*host
	var members strings.Builder
	for i := range 4 {
		h := &host{addr: fmt.Sprintf("127.0.3.%d", i+1), port: 18410, root: filepath.Join(base, fmt.Sprintf("h%d", i), "root"), state: filepath.Join(base, fmt.Sprintf("state%d", i))}
		hosts = append(hosts, h)
		fmt.Fprintf(&members, "  - node: h%d\n    address: %s:%d\n", i, h.addr, h.port)
	}
	config := filepath.Join(base, "group.yaml")
	manifest := "apiVersion: sync.jailsync.io/v1alpha1\nkind: SyncGroup\nmetadata:\n  name: bench\nspec:\n  path: /data\n  members:\n" + members.String() +
		"  transport:\n    secretRef:\n      name: t\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: t\nstringData:\n  rsync-password: bench\n"
	if err := os.WriteFile(config, []byte(manifest), 0o600); err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		for _, h := range hosts {
			if h.cmd != nil {
				_ = h.cmd.Process.Signal(syscall.SIGTERM)
				_ = h.cmd.Wait()
			}
			unmount(filepath.Dir(h.root))
		}
		os.RemoveAll(base)
	}
	for i, h := range hosts {
		if err := mount(filepath.Dir(h.root)); err != nil {
			cleanup()
			return nil, nil, err
		}
		if err := os.MkdirAll(h.root, 0o755); err != nil {
			cleanup()
			return nil, nil, err
		}
		h.cmd = exec.Command(nodeagent, "run", "--config", config, "--node", fmt.Sprintf("h%d", i), "--root", h.root, "--state-dir", h.state)
		if err := h.cmd.Start(); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, h := range hosts {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(h.state, "agent.sock")); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond)
	return hosts, cleanup, ctx.Err()
}

// jailsync writes the files on the first agent and returns the makespan
// until all three peers hold them whole.
func jailsync(nodeagent string, files, size int) (float64, error) {
	hosts, cleanup, err := cluster(nodeagent)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	start := time.Now()
	if err := writeFiles(hosts[0].root, files, size); err != nil {
		return 0, err
	}
	deadline := start.Add(5 * time.Minute)
	for _, h := range hosts[1:] {
		for !complete(h.root, files, size) {
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%s incomplete after 5 minutes", h.addr)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return time.Since(start).Seconds(), nil
}

// latency writes n 4 KiB files one at a time on the first agent and
// measures from each close until all three peers hold it whole.
func latency(nodeagent string, n int) (p50, p99 float64, err error) {
	hosts, cleanup, err := cluster(nodeagent)
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	return closeToArrival(n, hosts[0].root, func(name string) error {
		start := time.Now()
		for _, h := range hosts[1:] {
			for {
				fi, err := os.Stat(filepath.Join(h.root, name))
				if err == nil && fi.Size() == 4<<10 {
					break
				}
				if time.Since(start) > 30*time.Second {
					return fmt.Errorf("%s never reached %s", name, h.addr)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		return nil
	})
}
