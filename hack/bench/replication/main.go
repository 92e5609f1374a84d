//go:build linux

// Command replication measures jailsync against the references on the same
// workloads, on loopback, in one run: one writer and three receivers
// (127.0.3.1 writes to 127.0.3.2-4), every directory on its own tmpfs,
// every receiver an rsync daemon with TCP_NODELAY (for jailsync, the
// agents' own managed daemons, configured the same way; Syncthing has its
// own protocol). It prints a table with ratios to the lower bound and
// writes the same figures as JSON with fixed keys.
//
// Systems (JSON key): the lower bound (lowerBound: one `rsync -a` per peer
// after the writes, the three in parallel), the floor of jailsync's rsync
// interface (filesFrom: the same, through the agent's --files-from client),
// the same with its clients started ahead, as the agent's are
// (preparedFloor: on single files, the least any agent calling rsync that
// way can take),
// the old script (oldScript: one
// rsync per file per peer after a 1 s size check, emulated; cut to 100
// files and extrapolated where a workload has more), lsyncd (delay = 0),
// clsync (rsyncdirect, -t 0 -w 0 -T 0, one per peer), Syncthing (lowest
// delays) and jailsync.
//
// Workloads (JSON key): burst (2,000 x 4 KiB), files1MiB (100 x 1 MiB),
// file256MiB (1 x 256 MiB): makespan from the first write until every peer
// holds every file whole; latency (one 4 KiB file at a time, 200 files,
// each written 50 ms after the previous one arrived everywhere) and
// latencyBackToBack (the same, each written as soon as the previous one
// arrived): p50 and p99 from each close until all peers hold it whole;
// renameDir (a directory of 10,000 x 4 KiB that every peer holds,
// renamed): makespan from the rename until every peer holds the files
// under the new name and nothing under the old one (the lower bound:
// rsync -a --delete per peer; the old script and the floors of the
// --files-from interface do not run it).
//
// Needs root (tmpfs, fanotify), rsync, lsyncd, clsync, syncthing and the
// nodeagent binary (-nodeagent).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// system is one system under test.
type system struct {
	key, name string
	start     func() (*rig, error)
	// maxFiles, when set, cuts larger makespan workloads to this many files
	// and scales the time up by the ratio (labelled extrapolated).
	maxFiles int
	// latencyFiles, when set, replaces the latency workload's file count;
	// backToBackFiles that of latencyBackToBack. For the systems with a 1 s
	// floor per file, which would otherwise take minutes a run.
	latencyFiles, backToBackFiles int
	// noRenames, when set, is why the system does not run the rename
	// workload: it replicates no renames or deletions.
	noRenames string
}

type workload struct {
	key, name   string
	files, size int
	latency     bool
	// gap is the pause, on latency workloads, between a file's arrival on
	// every peer and the next file's write.
	gap time.Duration
	// rename: files files of size bytes in a directory that every peer
	// holds already (written and replicated before the measurement), which
	// is then renamed; the makespan runs from the rename until every peer
	// holds the files under the new name and nothing under the old one.
	rename bool
}

// latencyGap lets every system finish with a file before the next one is
// written: the lower bound's timing ends when its rsync clients exit, but
// a live tool's ends when the file arrives, while its clients, the
// daemons' children and its own bookkeeping still run. Without the gap,
// that tail shares the CPU with the next file (see docs/benchmarks.md);
// latencyBackToBack measures it so.
const latencyGap = 50 * time.Millisecond

// figure is one system's result on one workload: medians over the runs.
// Every key is always present (other tools read the file by fixed keys):
// a figure that does not apply to the workload (seconds on latency, the
// percentiles on a makespan), or to the system (a peak RSS where there is
// no process to read, receivers' agents where there are none), or that was
// not measured (the system failed) is null.
type figure struct {
	System    string   `json:"system"`
	Seconds   *float64 `json:"seconds"`
	P50Millis *float64 `json:"p50Millis"`
	P99Millis *float64 `json:"p99Millis"`
	Ratio     *float64 `json:"ratioToLowerBound"`
	// Runs is seconds per run, or p50 milliseconds for latency.
	Runs []float64 `json:"runs"`
	// CPUSeconds and PeakRSSMiB are the writer's side: the agent or tool,
	// with the rsync clients it reaped (rig.cpu, rig.hwm).
	CPUSeconds *float64 `json:"cpuSeconds"`
	// MachineCPUSeconds is the whole machine's busy CPU time during the
	// workload (/proc/stat): writer, receivers, daemons and the bench's
	// own polling alike, so that receivers' costs are counted too.
	MachineCPUSeconds *float64 `json:"machineCpuSeconds"`
	PeakRSSMiB        *float64 `json:"peakRSSMiB"`
	// ReceiverAgentCPUSeconds is the three receiving agents' CPU time (the
	// sum) and ReceiverAgentPeakRSSMiB their largest VmHWM, read like the
	// writer's (rig.recvCPU, rig.recvHWM): null for a system with no agent
	// on the receivers.
	ReceiverAgentCPUSeconds *float64 `json:"receiverAgentCpuSeconds"`
	ReceiverAgentPeakRSSMiB *float64 `json:"receiverAgentPeakRSSMiB"`
	// MeasuredFiles is the number of files measured when the system ran a
	// cut workload (the old script; clsync and Syncthing back to back),
	// null when it ran the whole workload.
	MeasuredFiles *int `json:"measuredFiles"`
	Extrapolated  bool `json:"extrapolated"`
	// Error is why the figure was not measured, null when it was.
	Error *string `json:"error"`

	measured                                int
	p99s, cpus, hwms, rcpus, rhwms, machine []float64
}

type report struct {
	Date      string                        `json:"date"`
	CPUs      int                           `json:"cpus"`
	Runs      int                           `json:"runs"`
	Workloads map[string]map[string]*figure `json:"workloads"`
}

func main() {
	nodeagent := flag.String("nodeagent", "bin/nodeagent", "the nodeagent binary")
	out := flag.String("json", "bin/bench/replication.json", "where to write the figures")
	runs := flag.Int("runs", 3, "runs per figure (the median is reported)")
	only := flag.String("systems", "", "comma-separated system keys to run (default all)")
	onlyW := flag.String("workloads", "", "comma-separated workload keys to run (default all)")
	compare := flag.String("compare", "", "another nodeagent binary, measured beside the first as jailsyncCompare (for A/B runs)")
	flag.Parse()
	systems := []system{
		{key: "lowerBound", name: "lower bound (rsync -a per peer after the writes)", start: lowerBound},
		{key: "filesFrom", name: "floor of --files-from (one run per peer after)", start: filesFromFloor, noRenames: noRenamesFloor},
		{key: "preparedFloor", name: "floor of --files-from, clients started ahead", start: preparedFloor, noRenames: noRenamesFloor},
		{key: "oldScript", name: "old script (rsync per file per peer after 1 s)", start: oldScript, maxFiles: 100, latencyFiles: 20, backToBackFiles: 20,
			noRenames: "replicates no renames or deletions (it ran rsync per written file)"},
		{key: "lsyncd", name: "lsyncd 2.2 (delay = 0)", start: lsyncd},
		{key: "clsync", name: "clsync 0.4 (rsyncdirect, -t0 -w0 -T0)", start: clsync, backToBackFiles: 20},
		{key: "syncthing", name: "Syncthing 1.19 (lowest delays)", start: syncthing, backToBackFiles: 20},
		{key: "jailsync", name: "jailsync", start: jailsyncRig(*nodeagent)},
	}
	if *compare != "" {
		systems = append(systems, system{key: "jailsyncCompare", name: "jailsync (" + filepath.Base(*compare) + ")", start: jailsyncRig(*compare)})
	}
	workloads := []workload{
		{key: "burst", name: "2,000 x 4 KiB burst", files: 2000, size: 4 << 10},
		{key: "files1MiB", name: "100 x 1 MiB", files: 100, size: 1 << 20},
		{key: "file256MiB", name: "1 x 256 MiB", files: 1, size: 256 << 20},
		{key: "latency", name: "one 4 KiB file at a time, 50 ms gap", files: 200, size: 4 << 10, latency: true, gap: latencyGap},
		{key: "latencyBackToBack", name: "one 4 KiB file at a time, no gap", files: 200, size: 4 << 10, latency: true},
		{key: "renameDir", name: "rename of a directory of 10,000 x 4 KiB", files: 10000, size: 4 << 10, rename: true},
	}
	if *only != "" {
		keys := strings.Split(*only, ",")
		systems = slices.DeleteFunc(systems, func(s system) bool { return !slices.Contains(keys, s.key) && s.key != "lowerBound" })
	}
	if *onlyW != "" {
		keys := strings.Split(*onlyW, ",")
		workloads = slices.DeleteFunc(workloads, func(w workload) bool { return !slices.Contains(keys, w.key) })
	}
	rep := report{Date: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), Runs: *runs, Workloads: map[string]map[string]*figure{}}
	for _, w := range workloads {
		rep.Workloads[w.key] = map[string]*figure{}
		for _, s := range systems {
			rep.Workloads[w.key][s.key] = &figure{System: s.name}
		}
		restore := func() {}
		if w.rename {
			// Its set-up writes 10,000 files, about 30,000 inotify events
			// at once: with the kernel's default queue (16,384) lsyncd
			// overflows, resets, and (with init = false, as configured
			// for the other workloads) never sends the rest. Raised, as
			// lsyncd's operators do, for the systems started during it.
			var err error
			if restore, err = inotifyQueue(1 << 20); err != nil {
				fmt.Fprintln(os.Stderr, "[bench] cannot raise the inotify queue:", err)
			}
		}
		// Runs interleave the systems, so that a slow phase of the machine
		// touches all of them alike, each round in turn from the next
		// system (inTurn).
		for run := range *runs {
			for _, s := range inTurn(systems, run) {
				f := rep.Workloads[w.key][s.key]
				if w.rename && s.noRenames != "" {
					f.Error = new(s.noRenames)
				}
				if f.Error != nil {
					continue
				}
				fmt.Fprintf(os.Stderr, "[bench] %s, %s, run %d\n", w.key, s.key, run+1)
				if err := measure(s, w, f); err != nil {
					f.Error = new(err.Error())
					fmt.Fprintf(os.Stderr, "[bench] %s, %s: %v\n", w.key, s.key, err)
					continue
				}
				// Each run's figure as it comes: a bench stopped early
				// (a slow reference) keeps what it measured.
				unit := "s"
				if w.latency {
					unit = "ms (p50)"
				}
				fmt.Fprintf(os.Stderr, "[bench] %s, %s, run %d: %.3f %s\n", w.key, s.key, run+1, f.Runs[len(f.Runs)-1], unit)
			}
		}
		restore()
		for _, f := range rep.Workloads[w.key] {
			summarize(f, w)
		}
		rate(rep.Workloads[w.key], w)
	}
	print(rep, systems, workloads)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// measure runs one workload once on a fresh rig of s and appends the
// figures to f.
func measure(s system, w workload, f *figure) error {
	r, err := s.start()
	if err != nil {
		return err
	}
	defer r.cleanup()
	if err := prepare(r, w); err != nil {
		return err
	}
	u := startUsage(r)
	files := filesOf(s, w)
	f.measured = files
	if err := runWorkload(r, s, w, files, f); err != nil {
		return err
	}
	u.record(r, s, w, f)
	return nil
}

// prepare brings a fresh rig to where w starts: its system ready, the tree
// a rename workload renames in place, and the machine at rest.
func prepare(r *rig, w workload) error {
	if r.push == nil {
		if err := ready(r, 60*time.Second); err != nil {
			return err
		}
	}
	if w.rename {
		if err := renamedTreeBefore(r, w); err != nil {
			return err
		}
	}
	// At rest before the workload starts, for every system alike: the
	// probe's runs, their confirmations and what a system starts after
	// them (jailsync's prepared clients) otherwise ran into the first 200
	// ms of a burst (perf record -a, docs/benchmarks.md, the twentieth
	// session), which measured the set-up's tail, not the workload.
	atRest(10 * time.Second)
	return nil
}

// usage is what a rig's processes and the machine had used when a
// workload started (startUsage), for the figures of what it used.
type usage struct {
	cpu0, rcpu0, busy0 float64
	split0             map[string]float64
}

// startUsage reads the counters of r and the machine before a workload.
func startUsage(r *rig) usage {
	var u usage
	if r.cpu != nil {
		u.cpu0 = r.cpu()
	}
	if r.recvCPU != nil {
		u.rcpu0 = r.recvCPU()
	}
	u.busy0 = machineBusy()
	if r.split != nil && os.Getenv("JAILSYNC_BENCH_SPLIT") != "" {
		u.split0 = r.split()
	}
	return u
}

// filesOf is how many of w's files s is measured on: all, or the fewer
// that a slow system is cut to (its figure extrapolated).
func filesOf(s system, w workload) int {
	files := w.files
	switch {
	case w.latency && w.gap > 0 && s.latencyFiles > 0:
		files = s.latencyFiles
	case w.latency && w.gap == 0 && s.backToBackFiles > 0:
		files = s.backToBackFiles
	}
	if !w.latency && s.maxFiles > 0 && files > s.maxFiles {
		files = s.maxFiles
	}
	return files
}

// runWorkload runs w on r, files of it, and appends its result to f's runs (and
// p99s).
func runWorkload(r *rig, s system, w workload, files int, f *figure) error {
	switch {
	case w.rename:
		start := time.Now()
		if err := os.Rename(filepath.Join(r.src, renameFrom), filepath.Join(r.src, renameTo)); err != nil {
			return err
		}
		if r.push != nil {
			if err := r.mirror(); err != nil {
				return err
			}
		}
		if err := waitRenamed(r.peers, files, w.size, start.Add(10*time.Minute)); err != nil {
			return err
		}
		f.Runs = append(f.Runs, time.Since(start).Seconds())
	case w.latency:
		p50, p99, err := closeToArrival(r, files, w.size, w.gap)
		if err != nil {
			return err
		}
		f.Runs = append(f.Runs, p50)
		f.p99s = append(f.p99s, p99)
	default:
		secs, err := makespan(r, s, w, files)
		if err != nil {
			return err
		}
		if files < w.files {
			secs *= float64(w.files) / float64(files)
			f.Extrapolated = true
		}
		f.Runs = append(f.Runs, secs)
	}
	return nil
}

// makespan writes files of w's files on r and returns the seconds until
// every peer holds them whole.
func makespan(r *rig, s system, w workload, files int) (float64, error) {
	data := workloadData(w.size)
	start := time.Now()
	if err := writeFiles(r.src, files, data); err != nil {
		return 0, err
	}
	if r.push != nil {
		if err := r.push(nil); err != nil {
			return 0, err
		}
	}
	if err := waitFiles(r.peers, files, w.size, start.Add(10*time.Minute)); err != nil {
		return 0, err
	}
	end := time.Now()
	if os.Getenv("JAILSYNC_BENCH_WINDOWS") != "" {
		// For profilers that record the whole machine (perf record -k
		// CLOCK_REALTIME): the measured interval, in Unix seconds.
		fmt.Fprintf(os.Stderr, "[bench] window %s %s %d.%09d %d.%09d\n", w.key, s.key,
			start.Unix(), start.Nanosecond(), end.Unix(), end.Nanosecond())
	}
	return end.Sub(start).Seconds(), nil
}

// record appends to f what r's processes and the machine used since u.
func (u usage) record(r *rig, s system, w workload, f *figure) {
	f.machine = append(f.machine, machineBusy()-u.busy0)
	if u.split0 != nil {
		time.Sleep(200 * time.Millisecond) // confirmations, and daemons reaping their children
		var parts []string
		for k, v := range r.split() {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, v-u.split0[k]))
		}
		slices.Sort(parts)
		fmt.Fprintf(os.Stderr, "[bench] %s, %s: CPU s by part: %s\n", w.key, s.key, strings.Join(parts, ", "))
	}
	if r.cpu != nil {
		f.cpus = append(f.cpus, r.cpu()-u.cpu0)
	}
	if r.hwm != nil {
		f.hwms = append(f.hwms, float64(r.hwm())/(1<<20))
	}
	if r.recvCPU != nil {
		f.rcpus = append(f.rcpus, r.recvCPU()-u.rcpu0)
	}
	if r.recvHWM != nil {
		f.rhwms = append(f.rhwms, float64(r.recvHWM())/(1<<20))
	}
}

// closeToArrival writes n files of size bytes one at a time, each gap after
// the previous one arrived, and returns the p50 and p99, in milliseconds,
// of the time from each close until every peer holds the file whole (for
// the lower bound: until its push returns).
func closeToArrival(r *rig, n, size int, gap time.Duration) (p50, p99 float64, err error) {
	data := workloadData(size)
	ms := make([]float64, 0, n)
	for i := range n {
		name := fmt.Sprintf("lat%04d", i)
		if err := os.WriteFile(filepath.Join(r.src, name), data, 0o644); err != nil {
			return 0, 0, err
		}
		closed := time.Now()
		if r.push != nil {
			err = r.push([]string{name})
		} else {
			err = waitOne(r.peers, name, size, closed.Add(30*time.Second))
		}
		if err != nil {
			return 0, 0, err
		}
		ms = append(ms, float64(time.Since(closed).Microseconds())/1000)
		if os.Getenv("JAILSYNC_BENCH_CLOSES") != "" {
			// For joining with the agents' logs: the close in Unix
			// microseconds, and the latency measured.
			fmt.Fprintf(os.Stderr, "[bench] close %s %d %.3f\n", name, closed.UnixMicro(), ms[len(ms)-1])
		}
		time.Sleep(gap)
	}
	slices.Sort(ms)
	return ms[len(ms)/2], ms[len(ms)*99/100], nil
}

// summarize sets f's figures from its runs: the medians, and null for
// whatever does not apply to w or was not measured.
func summarize(f *figure, w workload) {
	if f.Error != nil || len(f.Runs) == 0 {
		return
	}
	if w.latency {
		f.P50Millis, f.P99Millis = new(median(f.Runs)), new(median(f.p99s))
	} else {
		f.Seconds = new(median(f.Runs))
	}
	if f.measured != 0 && f.measured != w.files {
		f.MeasuredFiles = new(f.measured) // only a cut workload says how many files it measured
	}
	f.CPUSeconds = medianOrNil(f.cpus)
	f.PeakRSSMiB = medianOrNil(f.hwms)
	f.ReceiverAgentCPUSeconds = medianOrNil(f.rcpus)
	f.ReceiverAgentPeakRSSMiB = medianOrNil(f.rhwms)
	f.MachineCPUSeconds = medianOrNil(f.machine)
}

// rate sets each figure's ratio to the lower bound of its workload (p50 for
// latency, makespan otherwise), where both were measured.
func rate(figs map[string]*figure, w workload) {
	lb := figs["lowerBound"]
	if lb == nil {
		return
	}
	base := lb.Seconds
	if w.latency {
		base = lb.P50Millis
	}
	if base == nil || *base <= 0 {
		return
	}
	for _, f := range figs {
		v := f.Seconds
		if w.latency {
			v = f.P50Millis
		}
		if v != nil {
			f.Ratio = new(*v / *base)
		}
	}
}

func medianOrNil(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	return new(median(xs))
}

// result is the table's result cell: the median, and how many files it
// stands for when the system ran a cut workload.
func result(f *figure, w workload) string {
	var s string
	switch {
	case w.latency && f.P50Millis != nil && f.P99Millis != nil:
		s = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", *f.P50Millis, *f.P99Millis)
	case !w.latency && f.Seconds != nil:
		s = fmt.Sprintf("%.3f s", *f.Seconds)
	default:
		return "-"
	}
	switch {
	case f.Extrapolated:
		s += " (extrap.)"
	case f.MeasuredFiles != nil:
		s += fmt.Sprintf(" (%d files)", *f.MeasuredFiles)
	}
	return s
}

// cell formats an optional figure, blank when it is null.
func cell(format string, v *float64) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf(format, *v)
}

// inTurn is the order of round run: systems from the run-th on, and then
// the first ones. In a fixed order the system measured after two others
// in each round of 100 x 1 MiB was the slower in 24 of 28 pairs, which
// agent it was made no difference (docs/benchmarks.md, the seventy-sixth
// session); in turn, every system takes every place.
func inTurn[T any](systems []T, run int) []T {
	if len(systems) == 0 {
		return nil
	}
	k := run % len(systems)
	return append(slices.Clone(systems[k:]), systems[:k]...)
}

// print writes the table: CPU seconds and VmHWM of the writer's side, then
// of the receivers' agents (jailsync only), then the machine's busy CPU.
func print(rep report, systems []system, workloads []workload) {
	const row = "%-36s %-50s %40s %8s %8s %9s %9s %9s %10s\n"
	fmt.Printf(row, "workload", "system", "result (median)", "ratio", "cpu s", "VmHWM MiB", "rcv cpu s", "rcv MiB", "machine s")
	for _, w := range workloads {
		for _, s := range systems {
			f := rep.Workloads[w.key][s.key]
			if f.Error != nil {
				fmt.Printf("%-36s %-50s %s\n", w.name, s.name, "not measured: "+*f.Error)
				continue
			}
			fmt.Printf(row, w.name, s.name, result(f, w), cell("%.2fx", f.Ratio), cell("%.2f", f.CPUSeconds), cell("%.1f", f.PeakRSSMiB),
				cell("%.2f", f.ReceiverAgentCPUSeconds), cell("%.1f", f.ReceiverAgentPeakRSSMiB), cell("%.2f", f.MachineCPUSeconds))
		}
	}
	fmt.Println("cpu s, VmHWM MiB: the writer's agent or tool (with the rsync clients it reaped); rcv: the three receiving agents (CPU summed, largest VmHWM); machine s: every process")
}
