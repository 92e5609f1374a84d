package peer

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Handler that remembers what it was asked.
type recorder struct {
	mu       sync.Mutex
	incoming []string
	received []string
	deleted  []string
	from     []string
}

func (r *recorder) Incoming(_ context.Context, from, run string, paths []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from = append(r.from, from)
	r.incoming = append(r.incoming, paths...)
	return nil
}

func (r *recorder) Received(_ context.Context, from, run string, sent, deleted []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received = append(r.received, sent...)
	r.deleted = append(r.deleted, deleted...)
	return nil
}

func (r *recorder) Rename(_ context.Context, _ string, rs []Rename) []RenameResult {
	out := make([]RenameResult, len(rs))
	for i, x := range rs {
		out[i] = RenameResult{Applied: string(x.Old) != "missing", Reason: "no such file"}
	}
	return out
}

// Loopback addresses of this package's tests.
var (
	serverAddr = netip.MustParseAddr("127.0.7.1")
	memberAddr = netip.MustParseAddr("127.0.7.2")
	otherAddr  = netip.MustParseAddr("127.0.7.3")
)

func startServer(t *testing.T, s *Server) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(serverAddr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

func TestEndpoint_Authentication(t *testing.T) {
	rec := &recorder{}
	s := &Server{}
	s.SetGroup("www", &Group{Key: []byte("s3cret"), Handler: rec,
		Members: map[string]netip.Addr{"web-1": memberAddr, "web-2": serverAddr}})
	addr := startServer(t, s)
	ctx := context.Background()
	hostile := []string{"new\nline", "-n", "#x", "$(touch pwned)", "\xff\xfe not utf-8", strings.Repeat("n", 255)}

	tests := []struct {
		name    string
		client  *Client
		group   string
		wantErr string
	}{
		{"the member, from its address, with the password", NewClient("web-1", []byte("s3cret"), memberAddr, 5*time.Second), "www", ""},
		{"a wrong password", NewClient("web-1", []byte("guess"), memberAddr, 5*time.Second), "www", "401"},
		{"a member from another address", NewClient("web-1", []byte("s3cret"), otherAddr, 5*time.Second), "www", "403"},
		{"a node that is not a member", NewClient("intruder", []byte("s3cret"), otherAddr, 5*time.Second), "www", "403"},
		{"an unknown group", NewClient("web-1", []byte("s3cret"), memberAddr, 5*time.Second), "db", "404"},
		{"a clock too far off", func() *Client {
			c := NewClient("web-1", []byte("s3cret"), memberAddr, 5*time.Second)
			c.now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
			return c
		}(), "www", "401"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.incoming = nil
			rec.mu.Unlock()
			err := tc.client.Incoming(ctx, addr, tc.group, "run-1", hostile)
			rec.mu.Lock()
			got := slices.Clone(rec.incoming)
			rec.mu.Unlock()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !slices.Equal(got, hostile) {
					t.Fatalf("paths arrived as %q, want %q byte for byte", got, hostile)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error with %s", err, tc.wantErr)
			}
			if len(got) != 0 {
				t.Fatalf("the handler ran for a refused request: %q", got)
			}
		})
	}
}

func TestEndpoint_RefusesReplay(t *testing.T) {
	rec := &recorder{}
	s := &Server{}
	s.SetGroup("www", &Group{Key: []byte("k"), Handler: rec, Members: map[string]netip.Addr{"web-1": memberAddr}})
	addr := startServer(t, s)

	// Capture one signed request and send it twice.
	body := []byte(`{"run":"r","paths":["YQ=="]}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr.String()+"/v1/groups/www/incoming", nil)
	if err := signRequest(req, []byte("k"), "web-1", body, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := NewClient("web-1", []byte("k"), memberAddr, 5*time.Second)
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		r, _ := http.NewRequest(http.MethodPost, req.URL.String(), strings.NewReader(string(body)))
		r.Header = req.Header.Clone()
		res, err := c.http.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("send %d: status %d, want %d", i+1, res.StatusCode, want)
		}
	}
}

func TestEndpoint_RenameAndReceived(t *testing.T) {
	rec := &recorder{}
	s := &Server{}
	s.SetGroup("www", &Group{Key: []byte("k"), Handler: rec, Members: map[string]netip.Addr{"web-1": memberAddr}})
	addr := startServer(t, s)
	c := NewClient("web-1", []byte("k"), memberAddr, 5*time.Second)
	res, err := c.Rename(context.Background(), addr, "www", []Rename{{Old: []byte("a"), New: []byte("b")}, {Old: []byte("missing"), New: []byte("c")}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Applied || res[1].Applied || res[1].Reason == "" {
		t.Fatalf("results %+v", res)
	}
	if err := c.Received(context.Background(), addr, "www", "run-2", []string{"x", "y"}, []string{"gone\n"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.received, []string{"x", "y"}) || !slices.Equal(rec.deleted, []string{"gone\n"}) {
		t.Fatalf("received %q, deleted %q", rec.received, rec.deleted)
	}
}
