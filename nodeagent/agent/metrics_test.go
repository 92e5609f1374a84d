package agent

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/sender"
)

func TestMetrics_PeersArePresentBeforeTheirFirstRun(t *testing.T) {
	m := newMetrics(func() Report { return Report{Group: "g"} })
	m.peers("g", []string{"b", "c"})
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type series struct{ name, peer, code, reason string }
	got := map[series]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			k := series{name: f.GetName()}
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "peer":
					k.peer = l.GetValue()
				case "exit_code":
					k.code = l.GetValue()
				case "reason":
					k.reason = l.GetValue()
				}
			}
			if c := s.GetCounter(); c != nil {
				got[k] = c.GetValue()
			}
		}
	}
	for _, peer := range []string{"b", "c"} {
		for _, k := range []series{
			{name: "jailsync_files_synced_total", peer: peer},
			{name: "jailsync_bytes_synced_total", peer: peer},
			{name: "jailsync_bytes_sent_total", peer: peer},
			{name: "jailsync_rsync_runs_total", peer: peer, code: "0"},
			{name: "jailsync_rescans_total", peer: peer, reason: "start"},
		} {
			v, ok := got[k]
			if !ok {
				t.Errorf("%s{peer=%q,exit_code=%q} missing before any run", k.name, k.peer, k.code)
			} else if v != 0 {
				t.Errorf("%s{peer=%q} = %v, want 0", k.name, k.peer, v)
			}
		}
	}
}

// TestMetrics_RunWithNegativeSizesCountsThem0: a journal entry with a size
// below 0 (kept by a journal written before the forty-eighth session) adds
// nothing to the bytes synced, and does not panic the agent.
func TestMetrics_RunWithNegativeSizesCountsThem0(t *testing.T) {
	m := newMetrics(func() Report { return Report{Group: "g"} })
	m.run("g", sender.Run{Peer: "b", Sent: []journal.Entry{{Path: "p", Size: -1}, {Path: "q", Size: 5}, {Path: "r", Size: -2}}, Bytes: -1})
	if got := testutil.ToFloat64(m.bytesSynced.WithLabelValues("g", "b")); got != 5 {
		t.Errorf("bytes synced %v, want 5", got)
	}
	if got := testutil.ToFloat64(m.bytesSent.WithLabelValues("g", "b")); got != 0 {
		t.Errorf("bytes sent %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.filesSynced.WithLabelValues("g", "b")); got != 3 {
		t.Errorf("files synced %v, want 3", got)
	}
}
