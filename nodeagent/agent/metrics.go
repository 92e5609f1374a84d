package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/jailsync/jailsync/nodeagent/sender"
)

// metrics are the agent's Prometheus metrics, labelled by group and peer.
// Each agent has its own registry (no package-level state).
type metrics struct {
	reg         *prometheus.Registry
	filesSynced *prometheus.CounterVec
	bytesSynced *prometheus.CounterVec
	bytesSent   *prometheus.CounterVec
	runs        *prometheus.CounterVec
	rescans     *prometheus.CounterVec
	compares    *prometheus.CounterVec
}

// newMetrics registers the counters, and the pending counts and lag read
// from snapshot at each scrape.
func newMetrics(snapshot func() Report) *metrics {
	peer := []string{"group", "peer"}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		filesSynced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_files_synced_total",
			Help: "Paths confirmed on a peer."}, peer),
		bytesSynced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_bytes_synced_total",
			Help: "File bytes confirmed on a peer (a file found unchanged there, or renamed in place, counts whole)."}, peer),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_bytes_sent_total",
			Help: "Bytes rsync put on the wire to a peer (its --stats total bytes sent): what a transfer really cost."}, peer),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_rsync_runs_total",
			Help: `rsync runs to a peer by exit code; "none" for runs that failed before rsync could exit.`}, append(peer, "exit_code")),
		// A scan looks at the local data root, and what it finds is
		// journaled for every peer: each scan counts once per peer, so that
		// every series is labelled by group and peer as the others are.
		// (Anti-entropy against one peer will count for that peer alone.)
		rescans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_rescans_total",
			Help: "Scans of the data root whose changes go to the peer, by reason; a scan of the local root counts once for every peer."}, []string{"group", "peer", "reason"}),
		compares: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jailsync_compares_total",
			Help: `Anti-entropy compares of this member's tree with a peer's, by result: "same", "sent" (this member journaled what it wins for the peer), "peer-sends" (they differ, and the peer sends what it wins), "others-send" (what this member wins, members named lower hold alike and send).`}, []string{"group", "peer", "result"}),
	}
	m.reg.MustRegister(progress{
		snapshot: snapshot,
		files: prometheus.NewDesc("jailsync_pending_files",
			"Paths journaled for a peer and not yet confirmed on it.", peer, nil),
		bytes: prometheus.NewDesc("jailsync_pending_bytes",
			"File bytes journaled for a peer and not yet sent to it: not yet confirmed, less what runs in flight carrying a large file have already carried.", peer, nil),
		lag: prometheus.NewDesc("jailsync_lag_seconds",
			"Age of the oldest change not yet confirmed on a peer; 0 when nothing is pending.", peer, nil),
	}, m.filesSynced, m.bytesSynced, m.bytesSent, m.runs, m.rescans, m.compares,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// peers makes every peer's counters present at 0 from the start, so that
// a scrape before the first run finds them (and rate() sees the first
// increase): files and bytes synced and sent, the runs that exited 0, and
// the start scan (every source has one).
func (m *metrics) peers(group string, names []string) {
	for _, p := range names {
		m.filesSynced.WithLabelValues(group, p)
		m.bytesSynced.WithLabelValues(group, p)
		m.bytesSent.WithLabelValues(group, p)
		m.runs.WithLabelValues(group, p, "0")
		m.rescans.WithLabelValues(group, p, "start")
	}
}

// progress is the pending counts and lag, read from the journal when
// scraped (a prometheus.Collector), so that a scrape never sees a stale
// copy.
type progress struct {
	snapshot          func() Report
	files, bytes, lag *prometheus.Desc
}

func (p progress) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.files
	ch <- p.bytes
	ch <- p.lag
}

func (p progress) Collect(ch chan<- prometheus.Metric) {
	r := p.snapshot()
	for _, peer := range r.Peers {
		ch <- prometheus.MustNewConstMetric(p.files, prometheus.GaugeValue, float64(peer.PendingFiles), r.Group, peer.Target)
		ch <- prometheus.MustNewConstMetric(p.bytes, prometheus.GaugeValue, float64(peer.PendingBytes), r.Group, peer.Target)
		ch <- prometheus.MustNewConstMetric(p.lag, prometheus.GaugeValue, float64(peer.LagMilliseconds)/1000, r.Group, peer.Target)
	}
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
	// A counter panics on a negative Add, and a metric must not stop the
	// agent: a size below 0 (a journal written before the forty-eighth
	// session kept a placeholder's, journal.Journal.Again) counts none.
	var bytes int64
	for _, e := range r.Sent {
		bytes += max(e.Size, 0)
	}
	m.bytesSynced.WithLabelValues(group, r.Peer).Add(float64(bytes))
	m.bytesSent.WithLabelValues(group, r.Peer).Add(float64(max(r.Bytes, 0)))
}

// serveMetrics serves /metrics, /healthz and /readyz on addr. /readyz
// answers 503 until ready() (the group runs and its rsync daemon serves),
// and again whenever the daemon is down.
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
	return nil
}
