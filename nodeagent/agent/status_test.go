package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/sender"
)

// TestReport_JSON: every peers field is written, zeros included, with the
// CRD's names, and the report reads back as it was.
func TestReport_JSON(t *testing.T) {
	r := Report{Group: "www", Node: "a", Peers: []syncv1.PeerStatus{{Source: "a", Target: "b"}, {Source: "a", Target: "c", PendingFiles: 3, LastError: "x"}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Group string           `json:"group"`
		Peers []map[string]any `json:"peers"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	want := []string{"source", "target", "pendingFiles", "pendingBytes", "lastSyncTime", "lagMilliseconds", "filesSynced", "bytesSynced", "conflicts", "lastError"}
	if raw.Group != "www" || len(raw.Peers) != 2 {
		t.Fatalf("report %s", b)
	}
	for _, p := range raw.Peers {
		for _, k := range want {
			if _, ok := p[k]; !ok {
				t.Errorf("peers entry %v has no %q", p, k)
			}
		}
		if len(p) != len(want) {
			t.Errorf("peers entry %v has other keys than %v", p, want)
		}
	}
	if raw.Peers[0]["pendingFiles"] != float64(0) {
		t.Errorf("pendingFiles of an idle peer = %v, want 0", raw.Peers[0]["pendingFiles"])
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Peers, r.Peers) {
		t.Errorf("read back %+v, want %+v", back.Peers, r.Peers)
	}
}

// TestStatus_report: what a run leaves in the peer's status. An error
// stands (with the first problems) until a run goes through, failing paths
// keep it or say how many wait, a clean run clears it, and lastSyncTime is
// set only when nothing is left pending; counts add up; the snapshot reads
// pending files, bytes and lag from the journal.
func TestStatus_report(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	j, err := journal.Open(idx, []string{"b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Record(rootfd, []string{"b", "c"}, []change.Change{{Path: "f", Op: change.Write, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	s := newStatus("www", "a", []string{"b", "c"}, j)
	sent := []journal.Entry{{Path: "f", Size: 5}}
	long := strings.Repeat("x", 2000)
	steps := []struct {
		name    string
		run     sender.Run
		lastErr string // a prefix of the wanted lastError; "" for none
		synced  bool   // lastSyncTime set
		files   int64
		bytes   int64
	}{
		{name: "a failed run", run: sender.Run{Peer: "b", Err: errors.New("rsync exit 10 (retry)"), Problems: []string{"p1: gone", "p2: gone", "p3: gone", "p4: gone"}},
			lastErr: "rsync exit 10 (retry); p1: gone; p2: gone; p3: gone"},
		{name: "failing paths keep the error", run: sender.Run{Peer: "b", Failing: 2}, lastErr: "rsync exit 10 (retry); p1: gone; p2: gone; p3: gone"},
		{name: "a run with some left clears it", run: sender.Run{Peer: "b", Sent: sent, Remaining: journal.PeerStats{Files: 1}}, files: 1, bytes: 5},
		{name: "failing paths say how many wait", run: sender.Run{Peer: "b", Failing: 2}, lastErr: "2 paths failed (on the peer, or could not be read here) and are retried with backoff", files: 1, bytes: 5},
		{name: "a run that leaves nothing", run: sender.Run{Peer: "b", Sent: sent}, synced: true, files: 2, bytes: 10},
		{name: "a long error is cut", run: sender.Run{Peer: "b", Err: errors.New(long)}, lastErr: long[:1024], synced: true, files: 2, bytes: 10},
		{name: "another group's peer is ignored", run: sender.Run{Peer: "z", Sent: sent}, lastErr: long[:1024], synced: true, files: 2, bytes: 10},
	}
	for _, st := range steps {
		s.report(st.run)
		p := s.Snapshot().Peers[0]
		if p.Target != "b" || p.Source != "a" {
			t.Fatalf("%s: peer %+v", st.name, p)
		}
		if !strings.HasPrefix(p.LastError, st.lastErr) || (st.lastErr == "") != (p.LastError == "") || len(p.LastError) > 1024 {
			t.Errorf("%s: lastError %q, want %q", st.name, p.LastError, st.lastErr)
		}
		if (p.LastSyncTime != nil) != st.synced {
			t.Errorf("%s: lastSyncTime %v, want set %v", st.name, p.LastSyncTime, st.synced)
		}
		if p.FilesSynced != st.files || p.BytesSynced != st.bytes {
			t.Errorf("%s: synced %d files, %d bytes; want %d, %d", st.name, p.FilesSynced, p.BytesSynced, st.files, st.bytes)
		}
	}
	time.Sleep(5 * time.Millisecond)
	for _, p := range s.Snapshot().Peers {
		if p.PendingFiles != 1 || p.PendingBytes != 5 || p.LagMilliseconds < 5 {
			t.Errorf("%s: pending %d files, %d bytes, lag %d ms; want 1, 5, at least 5 (from the journal)", p.Target, p.PendingFiles, p.PendingBytes, p.LagMilliseconds)
		}
	}
	if c := s.Snapshot().Peers[1]; c.FilesSynced != 0 || c.LastError != "" || c.LastSyncTime != nil {
		t.Errorf("c: %+v; want untouched by b's runs", c)
	}

	// What b's runs in flight have carried counts as sent, never below 0.
	var carried int64
	s.watch("b", func() int64 { return carried })
	for _, tc := range []struct{ carried, want int64 }{{0, 5}, {3, 2}, {5, 0}, {7, 0}} {
		carried = tc.carried
		if p := s.Snapshot().Peers[0]; p.PendingBytes != tc.want || p.PendingFiles != 1 {
			t.Errorf("%d bytes carried: pending %d files, %d bytes; want 1, %d", tc.carried, p.PendingFiles, p.PendingBytes, tc.want)
		}
	}
	if c := s.Snapshot().Peers[1]; c.PendingBytes != 5 {
		t.Errorf("c: pending %d bytes; b's runs count for b only", c.PendingBytes)
	}
}

// TestServeStatus_aStateDirTooLongForASocket: the operator is told what
// to change, not only "bind: invalid argument".
func TestServeStatus_aStateDirTooLongForASocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("s", 120))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &group{stateDir: dir}
	eg, ctx := errgroup.WithContext(context.Background())
	err := g.serveStatus(ctx, eg)
	if err == nil || !strings.Contains(err.Error(), "use a shorter --state-dir") {
		t.Fatalf("serveStatus = %v, want an error that names --state-dir", err)
	}
}
