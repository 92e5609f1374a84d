package sender

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// announcements records what a peer's endpoint was told.
type announcements struct {
	mu       sync.Mutex
	incoming map[string]int // by run id
	received []string       // run ids
}

func (a *announcements) Incoming(_ context.Context, _, run string, _ []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.incoming[run]++
	return nil
}

func (a *announcements) Received(_ context.Context, _, run string, _ []string, _ []peer.FileState, _ []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.received = append(a.received, run)
	return nil
}

func (a *announcements) Rename(context.Context, string, []peer.Rename) []peer.RenameResult {
	return nil
}

// TestSender_Start_aLongRunIsAnnouncedAgain: a run that lasts (2 MiB at
// 512 KiB/s, about 4 s) is announced to the peer again every
// ReannounceEvery while it runs, under its one run id, so that the peer
// keeps holding its paths; it is confirmed once.
func TestSender_Start_aLongRunIsAnnouncedAgain(t *testing.T) {
	r := newRig(t, 3)
	a := &announcements{incoming: map[string]int{}}
	srv := &peer.Server{}
	srv.SetGroup("g", &peer.Group{Key: []byte(testPassword), Members: map[string]netip.Addr{"self": selfAddr}, Handler: a})
	ln, err := net.Listen("tcp", netip.AddrPortFrom(peerAddr, basePort+53).String())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })
	r.sender.Endpoint = netip.MustParseAddrPort(ln.Addr().String())
	r.sender.Client = peer.NewClient("self", []byte(testPassword), selfAddr, 5*time.Second)
	r.sender.ReannounceEvery = 200 * time.Millisecond
	r.sender.Options.BandwidthLimit = 512 << 10

	data := make([]byte, 2<<20)
	_, _ = rand.Read(data)
	r.write("big", string(data))
	r.start()
	poll.Until(t, 30*time.Second, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.received) == 0 {
			return os.ErrNotExist
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(r.peerRoot, "big")); err != nil {
		t.Fatalf("big is not on the peer: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	run := a.received[0]
	t.Logf("run %s announced %d times, confirmed %d time(s)", run, a.incoming[run], len(a.received))
	if len(a.incoming) != 1 || a.incoming[run] < 5 {
		t.Errorf("announcements %v for a run of about 4 s; want one run id, announced again every 200 ms", a.incoming)
	}
	if len(a.received) != 1 {
		t.Errorf("confirmed %d times, want once", len(a.received))
	}
}
