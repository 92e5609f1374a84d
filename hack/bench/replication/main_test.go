//go:build linux

package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// figureKeys is the JSON file's contract: every figure has every one of
// these keys, null where the figure does not apply or was not measured.
// Other tools read them: rename none, only add.
var figureKeys = []string{
	"system", "seconds", "p50Millis", "p99Millis", "ratioToLowerBound", "runs",
	"cpuSeconds", "machineCpuSeconds", "peakRSSMiB",
	"receiverAgentCpuSeconds", "receiverAgentPeakRSSMiB",
	"measuredFiles", "extrapolated", "error",
}

var reportKeys = []string{"date", "cpus", "runs", "workloads"}

func TestFigureKeysFixed(t *testing.T) {
	burst := workload{key: "burst", files: 2000, size: 4 << 10}
	latency := workload{key: "latency", files: 200, size: 4 << 10, latency: true}
	lbBurst := &figure{System: "lb", Runs: []float64{0.2, 0.3, 0.25}, cpus: []float64{0.1}, machine: []float64{0.4}, measured: 2000}
	lbLatency := &figure{System: "lb", Runs: []float64{20}, p99s: []float64{30}, cpus: []float64{4}, machine: []float64{5}, measured: 200}
	for _, tc := range []struct {
		name string
		w    workload
		lb   *figure // the workload's lower bound, nil for none
		f    *figure
		// nonNull are the keys that must hold a value; every other key of
		// figureKeys must be present and null (extrapolated: false).
		nonNull []string
	}{
		{
			name: "errored system", w: burst, lb: lbBurst,
			f:       &figure{System: "lsyncd", Error: new("lsyncd not installed"), measured: 2000},
			nonNull: []string{"system", "error"},
		},
		{
			name: "errored before any run, no lower bound", w: latency,
			f:       &figure{System: "clsync", Error: new("not ready")},
			nonNull: []string{"system", "error"},
		},
		{
			name: "lower bound failed", w: burst, lb: &figure{System: "lb", Error: new("rsync: exit 10")},
			f:       &figure{System: "jailsync", Runs: []float64{0.5}, cpus: []float64{0.4}, hwms: []float64{30}, rcpus: []float64{0.1}, rhwms: []float64{20}, machine: []float64{1}, measured: 2000},
			nonNull: []string{"system", "seconds", "runs", "cpuSeconds", "machineCpuSeconds", "peakRSSMiB", "receiverAgentCpuSeconds", "receiverAgentPeakRSSMiB"},
		},
		{
			name: "makespan, no process to read (the lower bound)", w: burst, lb: lbBurst,
			f:       lbBurst,
			nonNull: []string{"system", "seconds", "ratioToLowerBound", "runs", "cpuSeconds", "machineCpuSeconds"},
		},
		{
			name: "makespan, jailsync", w: burst, lb: lbBurst,
			f:       &figure{System: "jailsync", Runs: []float64{0.5}, cpus: []float64{0.4}, hwms: []float64{30}, rcpus: []float64{0.1}, rhwms: []float64{20}, machine: []float64{1}, measured: 2000},
			nonNull: []string{"system", "seconds", "ratioToLowerBound", "runs", "cpuSeconds", "machineCpuSeconds", "peakRSSMiB", "receiverAgentCpuSeconds", "receiverAgentPeakRSSMiB"},
		},
		{
			name: "makespan, cut and extrapolated (the old script)", w: burst, lb: lbBurst,
			f:       &figure{System: "old", Runs: []float64{2000}, cpus: []float64{2}, machine: []float64{3}, measured: 100, Extrapolated: true},
			nonNull: []string{"system", "seconds", "ratioToLowerBound", "runs", "cpuSeconds", "machineCpuSeconds", "measuredFiles", "extrapolated"},
		},
		{
			name: "latency, a reference with a process", w: latency, lb: lbLatency,
			f:       &figure{System: "lsyncd", Runs: []float64{26}, p99s: []float64{42}, cpus: []float64{5}, hwms: []float64{12}, machine: []float64{6}, measured: 200},
			nonNull: []string{"system", "p50Millis", "p99Millis", "ratioToLowerBound", "runs", "cpuSeconds", "machineCpuSeconds", "peakRSSMiB"},
		},
		{
			name: "latency, cut (the old script)", w: latency, lb: lbLatency,
			f:       &figure{System: "old", Runs: []float64{1024}, p99s: []float64{2045}, cpus: []float64{0.5}, machine: []float64{1}, measured: 20},
			nonNull: []string{"system", "p50Millis", "p99Millis", "ratioToLowerBound", "runs", "cpuSeconds", "machineCpuSeconds", "measuredFiles"},
		},
		{
			name: "nothing at all", w: burst,
			f:       &figure{},
			nonNull: []string{"system"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			figs := map[string]*figure{"x": tc.f}
			if tc.lb != nil {
				figs["lowerBound"] = tc.lb
			}
			for _, f := range figs {
				summarize(f, tc.w)
			}
			rate(figs, tc.w)
			rep := report{Date: "2026-01-01T00:00:00Z", Workloads: map[string]map[string]*figure{tc.w.key: figs}}
			data, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			for _, k := range reportKeys {
				if _, ok := got[k]; !ok {
					t.Errorf("report key %q missing: %s", k, data)
				}
			}
			fig := got["workloads"].(map[string]any)[tc.w.key].(map[string]any)["x"].(map[string]any)
			for _, k := range figureKeys {
				v, ok := fig[k]
				switch {
				case !ok:
					t.Errorf("key %q missing: %s", k, data)
				case slices.Contains(tc.nonNull, k) && (v == nil || v == false):
					t.Errorf("key %q = %v, want a value", k, v)
				case !slices.Contains(tc.nonNull, k) && k == "extrapolated" && v != false:
					t.Errorf("key %q = %v, want false", k, v)
				case !slices.Contains(tc.nonNull, k) && k != "extrapolated" && v != nil:
					t.Errorf("key %q = %v, want null", k, v)
				}
			}
			if extra := slices.DeleteFunc(slices.Sorted(maps.Keys(fig)), func(k string) bool { return slices.Contains(figureKeys, k) }); len(extra) > 0 {
				t.Errorf("keys %v not in figureKeys: add them to the contract (and to docs/benchmarks.md)", extra)
			}
		})
	}
}

// TestNoOmitempty fails when a JSON field of the file can be left out.
func TestNoOmitempty(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[figure](), reflect.TypeFor[report]()} {
		for f := range typ.Fields() {
			if tag := f.Tag.Get("json"); strings.Contains(tag, "omitempty") || strings.Contains(tag, "omitzero") {
				t.Errorf("%s.%s: json tag %q leaves the key out; the file has fixed keys (use a pointer for null)", typ.Name(), f.Name, tag)
			}
		}
	}
}

func TestResultCell(t *testing.T) {
	latency := workload{files: 200, latency: true}
	burst := workload{files: 2000}
	for _, tc := range []struct {
		name string
		w    workload
		f    figure
		want string
	}{
		{"latency", latency, figure{P50Millis: new(19.04), P99Millis: new(32.8)}, "p50 19.0 ms, p99 32.8 ms"},
		{"latency on fewer files", latency, figure{P50Millis: new(1024.0), P99Millis: new(2045.0), MeasuredFiles: new(20)}, "p50 1024.0 ms, p99 2045.0 ms (20 files)"},
		{"makespan", burst, figure{Seconds: new(0.5664)}, "0.566 s"},
		{"makespan extrapolated", burst, figure{Seconds: new(2051.0), MeasuredFiles: new(100), Extrapolated: true}, "2051.000 s (extrap.)"},
		{"not measured", burst, figure{}, "-"},
	} {
		if got := result(&tc.f, tc.w); got != tc.want {
			t.Errorf("%s: result = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestCloseToArrival_gap: on the spaced latency workload each file is
// written a gap after the previous one arrived; back to back, at once.
func TestCloseToArrival_gap(t *testing.T) {
	for _, tt := range []struct {
		name     string
		gap      time.Duration
		min, max time.Duration // between one arrival and the next write
	}{
		{"50 ms gap", latencyGap, latencyGap, time.Hour},
		{"no gap", 0, 0, latencyGap / 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var arrived, written []time.Time
			r := &rig{src: t.TempDir(), push: func(names []string) error {
				written = append(written, time.Now()) // the file was closed just before
				arrived = append(arrived, time.Now())
				return nil
			}}
			if _, _, err := closeToArrival(r, 4, 16, tt.gap); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(written); i++ {
				if d := written[i].Sub(arrived[i-1]); d < tt.min || d > tt.max {
					t.Errorf("file %d written %s after file %d arrived, want %s to %s", i, d, i-1, tt.min, tt.max)
				}
			}
		})
	}
}

// TestWaitRenamed: the rename workload ends when every peer holds every
// file whole under the new name and nothing is left under the old one.
func TestWaitRenamed(t *testing.T) {
	const files, size = 3, 5
	for _, tc := range []struct {
		name    string
		oldLeft bool // a peer still holds the old directory
		short   bool // a peer's last file is not whole yet
		wantErr bool
	}{
		{name: "renamed everywhere"},
		{name: "the old name left on a peer", oldLeft: true, wantErr: true},
		{name: "a file not whole", short: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peers := []string{t.TempDir(), t.TempDir()}
			for _, p := range peers {
				must(t, os.Mkdir(filepath.Join(p, renameTo), 0o755))
				for i := range files {
					must(t, os.WriteFile(filepath.Join(p, renameTo, fileName(i)), make([]byte, size), 0o644))
				}
			}
			if tc.oldLeft {
				must(t, os.Mkdir(filepath.Join(peers[1], renameFrom), 0o755))
			}
			if tc.short {
				must(t, os.WriteFile(filepath.Join(peers[1], renameTo, fileName(files-1)), make([]byte, size-1), 0o644))
			}
			err := waitRenamed(peers, files, size, time.Now().Add(50*time.Millisecond))
			if (err != nil) != tc.wantErr {
				t.Errorf("waitRenamed: %v, want an error: %v", err, tc.wantErr)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestInTurn(t *testing.T) {
	tests := []struct {
		run  int
		want []string
	}{
		{0, []string{"a", "b", "c"}},
		{1, []string{"b", "c", "a"}},
		{2, []string{"c", "a", "b"}},
		{3, []string{"a", "b", "c"}},
		{7, []string{"b", "c", "a"}},
	}
	systems := []string{"a", "b", "c"}
	for _, tc := range tests {
		if got := inTurn(systems, tc.run); !slices.Equal(got, tc.want) {
			t.Errorf("round %d: %q, want %q", tc.run, got, tc.want)
		}
	}
	if !slices.Equal(systems, []string{"a", "b", "c"}) {
		t.Errorf("inTurn changed its argument: %q", systems)
	}
	if got := inTurn([]string(nil), 2); len(got) != 0 {
		t.Errorf("no systems: %q", got)
	}
}
