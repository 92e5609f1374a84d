package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/sender"
)

// StatusSocket is the name of the agent's status socket in its state
// directory (`nodeagent status --state-dir DIR` reads it).
const StatusSocket = "agent.sock"

// Report is what the status socket serves: the group's peers entries with
// the CRD's field names, as this agent sees them.
type Report struct {
	Group       string             `json:"group"`
	Node        string             `json:"node"`
	AuditSource syncv1.AuditSource `json:"auditSource"`
	// Suspended says that spec.suspend holds the senders: changes are
	// journaled (pending) and go out once the group is resumed.
	Suspended bool                `json:"suspended,omitempty"`
	Peers     []syncv1.PeerStatus `json:"peers"`
	Changes   int64               `json:"changesJournaled"`
	Time      metav1.Time         `json:"time"`
}

// MarshalJSON writes the report with every field of each peers entry,
// zeros included: the CRD's PeerStatus leaves zero counts out (omitempty),
// and a script reading `nodeagent status -o json` should find
// "pendingFiles": 0 rather than nothing. The field names are the CRD's.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report // without this method
	peers := make([]peerJSON, len(r.Peers))
	for i, p := range r.Peers {
		peers[i] = peerJSON(p)
	}
	return json.Marshal(struct {
		plain
		Peers []peerJSON `json:"peers"`
	}{plain(r), peers})
}

// peerJSON is syncv1.PeerStatus with no field left out when zero (a
// conversion: a field added there must be added here).
type peerJSON struct {
	Source          string       `json:"source"`
	Target          string       `json:"target"`
	PendingFiles    int64        `json:"pendingFiles"`
	PendingBytes    int64        `json:"pendingBytes"`
	LastSyncTime    *metav1.Time `json:"lastSyncTime"`
	LagMilliseconds int64        `json:"lagMilliseconds"`
	FilesSynced     int64        `json:"filesSynced"`
	BytesSynced     int64        `json:"bytesSynced"`
	Conflicts       int64        `json:"conflicts"`
	LastError       string       `json:"lastError"`
}

// Status tracks per-peer progress of one group.
type Status struct {
	group, node string
	journal     *journal.Journal
	suspended   bool

	mu      sync.Mutex
	source  syncv1.AuditSource
	peers   map[string]*syncv1.PeerStatus
	order   []string
	changes int64
	// transferring tells, per peer, what its runs in flight have carried
	// so far (sender.Sender.Transferring).
	transferring map[string]func() int64
}

func newStatus(group, node string, peers []string, j *journal.Journal) *Status {
	s := &Status{group: group, node: node, journal: j, peers: make(map[string]*syncv1.PeerStatus), order: peers}
	for _, p := range peers {
		s.peers[p] = &syncv1.PeerStatus{Source: node, Target: p}
	}
	return s
}

// watch has the pending bytes of peer count what its runs in flight have
// already carried (f) as sent: a large file's pendingBytes then fall while
// it is in transfer, not only when its run is confirmed.
func (s *Status) watch(peer string, f func() int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transferring == nil {
		s.transferring = make(map[string]func() int64)
	}
	s.transferring[peer] = f
}

func (s *Status) setSource(k syncv1.AuditSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.source = k
}

func (s *Status) changed(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes += int64(n)
}

// report records a finished run (sender.Sender.Report).
func (s *Status) report(r sender.Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[r.Peer]
	if p == nil {
		return
	}
	p.FilesSynced += int64(len(r.Sent))
	for _, e := range r.Sent {
		p.BytesSynced += e.Size
	}
	switch {
	case r.Err != nil:
		p.LastError = r.Err.Error()
		if n := min(len(r.Problems), 3); n > 0 {
			p.LastError += "; " + strings.Join(r.Problems[:n], "; ")
		}
		if len(p.LastError) > 1024 {
			p.LastError = p.LastError[:1024]
		}
	case r.Failing > 0:
		// Paths that failed on the peer (or could not be read here) wait
		// for their retry while other runs go through: the error that
		// named them stands.
		if p.LastError == "" {
			p.LastError = fmt.Sprintf("%d paths failed (on the peer, or could not be read here) and are retried with backoff", r.Failing)
		}
	default:
		p.LastError = ""
		if r.Remaining.Files == 0 {
			now := metav1.Now()
			p.LastSyncTime = &now
		}
	}
}

// Snapshot returns the current report, pending counts and lag read from
// the journal; pending bytes less what runs in flight have carried (watch).
func (s *Status) Snapshot() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{Group: s.group, Node: s.node, AuditSource: s.source, Suspended: s.suspended, Changes: s.changes, Time: metav1.Now()}
	for _, name := range s.order {
		p := *s.peers[name]
		st := s.journal.Stats(name)
		p.PendingFiles, p.PendingBytes = st.Files, st.Bytes
		if f := s.transferring[name]; f != nil {
			p.PendingBytes = max(0, p.PendingBytes-f())
		}
		p.LagMilliseconds = 0
		if oldest, ok := s.journal.Oldest(name); ok {
			p.LagMilliseconds = time.Since(oldest).Milliseconds()
		}
		r.Peers = append(r.Peers, p)
	}
	return r
}

// maxSocketPath is the size of sockaddr_un's sun_path on FreeBSD (104; 108
// on Linux), the smaller of the two: a socket path must be shorter.
const maxSocketPath = 104

// serveStatus serves the report as JSON on the state directory's unix
// socket (mode 0600: the report names files).
func (g *group) serveStatus(ctx context.Context, eg *errgroup.Group) error {
	path := filepath.Join(g.stateDir, StatusSocket)
	_ = os.Remove(path) // a stale socket from a killed agent
	ln, err := net.Listen("unix", path)
	if err != nil {
		if len(path) >= maxSocketPath {
			return fmt.Errorf("status socket %s: %w (the path is %d bytes, a unix socket's at most %d: use a shorter --state-dir)", path, err, len(path), maxSocketPath-1)
		}
		return fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("status socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g.status.Snapshot())
	})
	serve(ctx, eg, ln, mux)
	return nil
}

// serve serves h on ln until ctx ends. A request must be read whole
// within the agent-to-agent endpoint's replay window (its signature is
// checked then, and refused past it anyway): a caller that sends a body
// a byte a minute holds no room for bodies (peer.Server) longer than
// that, and an idle connection is closed after as long.
func serve(ctx context.Context, eg *errgroup.Group, ln net.Listener, h http.Handler) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: peer.ReplayWindow, IdleTimeout: peer.ReplayWindow}
	eg.Go(func() error {
		<-ctx.Done()
		return hs.Close()
	})
	eg.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}
