//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rig is one system under test, set up and ready: the writer's directory,
// the three receivers' directories, and how to read the system's CPU time
// and peak memory on the writer (and on the receivers, for an agent there).
type rig struct {
	src   string   // where the workload is written
	peers []string // the receivers' directories, compared after each workload
	// push, for systems that do not watch (the lower bound), runs after the
	// writes with the names written (nil: everything) and returns when every
	// peer has them. Nil for live systems: the bench polls the peers.
	push func(names []string) error
	// mirror, for such a system that can delete (the lower bound), pushes
	// the whole directory with deletions (rsync -a --delete): the rename
	// workload's push.
	mirror func() error
	// cpu returns the CPU seconds the system has used on the writer so far
	// (its processes and the rsync clients they reaped); hwm the peak RSS in
	// bytes (VmHWM). Nil when there is no such process (the lower bound, whose
	// rsync clients are counted through cpu alone).
	cpu func() float64
	hwm func() int64
	// recvCPU and recvHWM are the same for the receivers' agents, where the
	// system runs one on each receiver (jailsync): the sum of their CPU
	// seconds, and the largest VmHWM among them. Nil otherwise.
	recvCPU func() float64
	recvHWM func() int64
	// split, when set, returns CPU seconds so far by part of the system
	// (JAILSYNC_BENCH_SPLIT=1 prints what each workload run added).
	split   func() map[string]float64
	cleanup func()
}

// workloadData is the content every workload writes: random, so that
// compression (the old script's -z) gains nothing a real data set would not.
func workloadData(size int) []byte {
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(data)
	return data
}

func mount(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return syscall.Mount("bench", dir, "tmpfs", 0, "size=1200m")
}

func unmount(dir string) { _ = syscall.Unmount(dir, syscall.MNT_DETACH) }

func fileName(i int) string { return fmt.Sprintf("f%05d", i) }

func writeFiles(dir string, files int, data []byte) error {
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fileName(i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitFiles waits until every peer holds files files of size bytes, each
// whole under its name. It remembers how far each peer got, so that polling
// costs one stat per file plus one per poll, not the whole set each time
// (the bench shares the 2 cores with the system it measures).
func waitFiles(peers []string, files, size int, deadline time.Time) error {
	for _, p := range peers {
		for i := 0; i < files; {
			fi, err := os.Stat(filepath.Join(p, fileName(i)))
			if err == nil && fi.Size() == int64(size) {
				i++
				continue
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s still missing or incomplete", p, fileName(i))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// The rename workload's directory, before and after its rename.
const (
	renameFrom = "tree"
	renameTo   = "tree.renamed"
)

// noRenamesFloor is why the floors of the --files-from interface do not
// run the rename workload: they push a list of names, and deletions go by
// another list (the agent's own); the lower bound measures rsync -a
// --delete.
const noRenamesFloor = "pushes names only; the lower bound measures the rename's push (rsync -a --delete)"

// renamedTreeBefore writes the rename workload's directory and waits until
// every peer holds it whole: set-up, not measured.
func renamedTreeBefore(r *rig, w workload) error {
	dir := filepath.Join(r.src, renameFrom)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := writeFiles(dir, w.files, workloadData(w.size)); err != nil {
		return err
	}
	if r.push != nil {
		if err := r.mirror(); err != nil {
			return err
		}
	}
	return waitFiles(under(r.peers, renameFrom), w.files, w.size, time.Now().Add(10*time.Minute))
}

// waitRenamed waits until every peer holds the rename workload's files
// whole under the directory's new name, and nothing under its old one.
func waitRenamed(peers []string, files, size int, deadline time.Time) error {
	if err := waitFiles(under(peers, renameTo), files, size, deadline); err != nil {
		return err
	}
	for _, p := range under(peers, renameFrom) {
		for {
			if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s is still there", p)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// inotifyQueue raises fs.inotify.max_queued_events to at least n for the
// inotify instances made from now on, and returns what puts it back.
func inotifyQueue(n int) (restore func(), err error) {
	const knob = "/proc/sys/fs/inotify/max_queued_events"
	b, err := os.ReadFile(knob)
	if err != nil {
		return func() {}, err
	}
	was := strings.TrimSpace(string(b))
	if v, err := strconv.Atoi(was); err == nil && v >= n {
		return func() {}, nil
	}
	if err := os.WriteFile(knob, []byte(strconv.Itoa(n)), 0o644); err != nil {
		return func() {}, err
	}
	return func() { _ = os.WriteFile(knob, []byte(was), 0o644) }, nil
}

// under joins name to each of dirs.
func under(dirs []string, name string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = filepath.Join(d, name)
	}
	return out
}

// waitOne waits until every peer holds name whole.
func waitOne(peers []string, name string, size int, deadline time.Time) error {
	for _, p := range peers {
		for {
			fi, err := os.Stat(filepath.Join(p, name))
			if err == nil && fi.Size() == int64(size) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never reached %s", name, p)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}

// ready writes a probe file, again every second (a tool that has not
// started watching yet misses a write), until every peer has it: a live
// system is watching and its connections are up.
func ready(r *rig, timeout time.Duration) error {
	const name = "ready-probe"
	deadline := time.Now().Add(timeout)
	for {
		if err := os.WriteFile(filepath.Join(r.src, name), []byte("ready\n"), 0o644); err != nil {
			return err
		}
		err := waitOne(r.peers, name, 6, time.Now().Add(time.Second))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
	}
}

// refDaemons is three plain receiving rsync daemons (TCP_NODELAY, one
// module "m" each, on 127.0.3.2-4:18401, accepting 127.0.3.1), each on its
// own tmpfs, and the writer's tmpfs: the receivers of every reference.
type refDaemons struct {
	base    string
	src     string
	dirs    []string // the daemons' module paths
	urls    []string // rsync://127.0.3.N:18401/m/
	daemons []*exec.Cmd
	mounts  []string
}

func startRefDaemons(prefix string) (*refDaemons, error) {
	base, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	d := &refDaemons{base: base, src: filepath.Join(base, "src")}
	if err := mount(d.src); err != nil {
		d.close()
		return nil, err
	}
	d.mounts = append(d.mounts, d.src)
	for i := range 3 {
		dst := filepath.Join(base, fmt.Sprintf("dst%d", i))
		if err := mount(dst); err != nil {
			d.close()
			return nil, err
		}
		d.mounts = append(d.mounts, dst)
		addr := fmt.Sprintf("127.0.3.%d", i+2)
		conf := filepath.Join(base, fmt.Sprintf("rsyncd%d.conf", i))
		// The same global settings as jailsync's managed daemons
		// (nodeagent/rsyncd): TCP_NODELAY, no reverse lookup, a raised backlog.
		cfg := fmt.Sprintf("address = %s\nport = 18401\npid file = %s.pid\nlock file = %s.lock\nsocket options = TCP_NODELAY\nreverse lookup = no\nlisten backlog = 128\n[m]\npath = %s\nuse chroot = yes\nmunge symlinks = no\nuid = 0\ngid = 0\nread only = no\nhosts allow = 127.0.3.1\n",
			addr, conf, conf, dst)
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			d.close()
			return nil, err
		}
		cmd := exec.Command("rsync", "--daemon", "--no-detach", "--config="+conf)
		if err := cmd.Start(); err != nil {
			d.close()
			return nil, err
		}
		d.daemons = append(d.daemons, cmd)
		d.dirs = append(d.dirs, dst)
		d.urls = append(d.urls, fmt.Sprintf("rsync://%s:18401/m/", addr))
	}
	for _, u := range d.urls {
		if err := waitListening(u); err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

// waitListening lists the module until the daemon answers.
func waitListening(url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("rsync", "--address=127.0.3.1", "--contimeout=2", url).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon %s not answering: %w: %s", url, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// split is rig.split for a system whose only processes on the writer are
// the rsync clients the bench itself runs (the lower bound, the floor).
func (d *refDaemons) split() map[string]float64 {
	m := map[string]float64{"writer rsync clients": childrenCPU()}
	for _, c := range d.daemons {
		self, children := procTimes(c.Process.Pid)
		m["receiver rsync daemon"] += self + children
	}
	return m
}

func (d *refDaemons) close() {
	for _, c := range d.daemons {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	for _, m := range d.mounts {
		unmount(m)
	}
	_ = os.RemoveAll(d.base)
}

// rsyncTo runs one rsync client (an argument vector, no shell) in dir.
func rsyncTo(dir string, args ...string) error {
	cmd := exec.Command("rsync", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("rsync %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// parallel runs f for each index and returns the first error.
func parallel(n int, f func(i int) error) error {
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- f(i) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// procCPU returns the CPU seconds of the processes, including the children
// each has waited for (utime, stime, cutime, cstime of /proc/PID/stat).
func procCPU(pids ...int) float64 {
	var sum float64
	for _, pid := range pids {
		self, children := procTimes(pid)
		sum += self + children
	}
	return sum
}

// procTimes returns a process's own CPU seconds (utime+stime) and those of
// the children it reaped (cutime+cstime); zero when it cannot be read.
func procTimes(pid int) (self, children float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// The command name is in parentheses and may hold spaces: fields
	// start after the last ')'. utime is field 14, so index 11 here.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return 0, 0
	}
	var t [4]int64
	for k := range t {
		t[k], _ = strconv.ParseInt(f[11+k], 10, 64)
	}
	return float64(t[0]+t[1]) / clockTicks, float64(t[2]+t[3]) / clockTicks
}

// procHWM returns the largest VmHWM of the processes, in bytes.
func procHWM(pids ...int) int64 {
	var peak int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				peak = max(peak, kb<<10)
			}
		}
	}
	return peak
}

// atRest waits until the machine has been idle (at most one clock tick of
// CPU, 10 ms, in each of two consecutive 100 ms intervals), or for max.
func atRest(max time.Duration) {
	deadline := time.Now().Add(max)
	quiet := 0
	for quiet < 2 && time.Now().Before(deadline) {
		b := machineBusy()
		time.Sleep(100 * time.Millisecond)
		if machineBusy()-b <= 0.0101 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// machineBusy returns the CPU seconds all of the machine's CPUs have spent
// busy so far: /proc/stat's first line, less idle and iowait (proc(5)).
func machineBusy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	var ticks int64
	for i, s := range strings.Fields(line)[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	return float64(ticks) / clockTicks
}

// childrenCPU returns the CPU seconds of this process's waited-for
// children: the rsync clients an in-process reference ran.
func childrenCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// stop sends SIGTERM, then SIGKILL after a grace period, and waits.
func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

var errSkipped = errors.New("skipped")
