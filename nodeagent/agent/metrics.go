package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/jailsync/jailsync/nodeagent/sender"
)

// metrics are the agent's Prometheus metrics, labelled by group and peer.
// Each agent has its own registry (no package-level state).
type metrics struct {
	reg          *prometheus.Registry
	pendingFiles *prometheus.GaugeVec
	pendingBytes *prometheus.GaugeVec
	lag          *prometheus.GaugeVec
	filesSynced  *prometheus.CounterVec
	bytesSynced  *prometheus.CounterVec
	bytesSent    *prometheus.CounterVec
	runs         *prometheus.CounterVec
	rescans      *prometheus.CounterVec
}

func newMetrics() *metrics {
	peer := []string{"group", "peer"}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		pendingFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jailsync_pending_files",
			Help: "Paths journaled for a peer and not yet confirmed on it."}, peer),
		pendingBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jailsync_pending_bytes",
			Help: "File bytes journaled for a peer and not yet confirmed on it."}, peer),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jailsync_lag_seconds",
			Help: "Age of the oldest change not yet confirmed on a peer; 0 when nothing is pending."}, peer),
		filesSynced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_files_synced_total",
			Help: "Paths confirmed on a peer."}, peer),
		bytesSynced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_bytes_synced_total",
			Help: "File bytes confirmed on a peer (a file found unchanged there, or renamed in place, counts whole)."}, peer),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_bytes_sent_total",
			Help: "Bytes rsync put on the wire to a peer (its --stats total bytes sent): what a transfer really cost."}, peer),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_rsync_runs_total",
			Help: "rsync runs to a peer by exit code."}, append(peer, "exit_code")),
		rescans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_rescans_total",
			Help: "Scans of the data root by reason."}, []string{"group", "peer", "reason"}),
	}
	m.reg.MustRegister(m.pendingFiles, m.pendingBytes, m.lag, m.filesSynced, m.bytesSynced, m.bytesSent, m.runs, m.rescans,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// run records a finished run. rsync_runs_total counts the runs that
// exited with their exit code, and those that failed before rsync could
// run (the announcement to the peer, or rsync's start) as "none"; a run
// that needed no rsync (renames only, kept deletes) is not counted there.
func (m *metrics) run(group string, r sender.Run) {
	switch {
	case r.Exited:
		m.runs.WithLabelValues(group, r.Peer, strconv.Itoa(r.Code)).Inc()
	case r.Err != nil:
		m.runs.WithLabelValues(group, r.Peer, "none").Inc()
	}
	m.filesSynced.WithLabelValues(group, r.Peer).Add(float64(len(r.Sent)))
	var bytes int64
	for _, e := range r.Sent {
		bytes += e.Size
	}
	m.bytesSynced.WithLabelValues(group, r.Peer).Add(float64(bytes))
	m.bytesSent.WithLabelValues(group, r.Peer).Add(float64(r.Bytes))
}

// refresh copies the journal's pending counts and lag into the gauges.
func (m *metrics) refresh(r Report) {
	for _, p := range r.Peers {
		m.pendingFiles.WithLabelValues(r.Group, p.Target).Set(float64(p.PendingFiles))
		m.pendingBytes.WithLabelValues(r.Group, p.Target).Set(float64(p.PendingBytes))
		m.lag.WithLabelValues(r.Group, p.Target).Set(float64(p.LagMilliseconds) / 1000)
	}
}

// serveMetrics serves /metrics, /healthz and /readyz on addr. /readyz is
// ready once the group runs (the daemon answered and detection started).
func (g *group) serveMetrics(ctx context.Context, eg *errgroup.Group, addr string, ready func() bool) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if g.cfg.Profile {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	serve(ctx, eg, ln, mux)
	eg.Go(func() error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				g.metrics.refresh(g.status.Snapshot())
			}
		}
	})
	return nil
}
