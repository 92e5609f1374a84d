package antientropy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/jailsync/jailsync/nodeagent/peer"
)

// member is one side of a compare in these tests: a Comparer whose tree,
// activity and clock the test sets, and what it sent.
type member struct {
	c     *Comparer
	mu    sync.Mutex
	tree  []peer.TreeEntry
	gen   uint64
	busy  string
	sent  map[string][]Send
	clock *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newMember(t *testing.T, name string, clk *clock, peers []Peer, tree []peer.TreeEntry) *member {
	m := &member{tree: tree, sent: map[string][]Send{}, clock: clk}
	m.c = &Comparer{Group: "www", Self: name, Peers: peers, Settle: time.Second, Now: clk.Now, Log: testr.New(t),
		Read: func(context.Context) (Tree, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return Tree{Entries: m.tree, Digest: Digest(m.tree)}, nil
		},
		Busy: func() (uint64, string) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.gen, m.busy
		},
		Send: func(p string, s []Send) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.sent[p] = append(m.sent[p], s...)
			m.gen++ // journaled: a change of this member's
			return nil
		},
	}
	return m
}

func (m *member) set(tree []peer.TreeEntry, busy string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tree, m.busy = tree, busy
	m.gen++
}

func (m *member) takeSent() map[string][]Send {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sent
	m.sent = map[string][]Send{}
	return s
}

// serve serves m's compares at addr for the member from, over a real
// endpoint.
func serve(t *testing.T, m *member, addr netip.Addr, from string, fromAddr netip.Addr) netip.AddrPort {
	t.Helper()
	s := &peer.Server{}
	s.SetGroup("www", &peer.Group{Key: []byte("k"), Tree: m.c, Members: map[string]netip.Addr{from: fromAddr}})
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestComparer_TwoMembers: two members compare over a real endpoint only
// once both are quiet for the settle time; each then sends the other what
// it wins, and once their trees are the same they are done.
func TestComparer_TwoMembers(t *testing.T) {
	a1, a2 := netip.MustParseAddr("127.0.8.1"), netip.MustParseAddr("127.0.8.2")
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	n1Tree := []peer.TreeEntry{file("a", 5, 0o644, 1), file("only-n1", 1, 0o644, 1)}
	n2Tree := []peer.TreeEntry{file("a", 4, 0o644, 1), file("only-n2", 1, 0o644, 1)}
	n1 := newMember(t, "n1", clk, nil, n1Tree)
	n2 := newMember(t, "n2", clk, nil, n2Tree)
	ep2 := serve(t, n2, a2, "n1", a1)
	ep1 := serve(t, n1, a1, "n2", a2)
	n1.c.Peers, n1.c.Client = []Peer{{Name: "n2", Endpoint: ep2}}, peer.NewClient("n1", []byte("k"), a1, 5*time.Second)
	n2.c.Peers, n2.c.Client = []Peer{{Name: "n1", Endpoint: ep1}}, peer.NewClient("n2", []byte("k"), a2, 5*time.Second)
	ctx := context.Background()

	// step has m look (as its Run does every tick) and compare if quiet.
	step := func(m *member) {
		if gen, busy := m.c.quiet(); busy == "" {
			m.c.round(ctx, gen)
		}
	}
	n2.set(n2Tree, "a peer's run is being received")
	step(n1)
	step(n1)
	clk.add(2 * time.Second)
	step(n1) // n1 quiet; n2 is not
	if s := n1.takeSent(); len(s) != 0 {
		t.Fatalf("sent %v to a peer that is not quiet", s)
	}
	n2.set(n2Tree, "")
	clk.add(2 * time.Second) // past n1's wait to ask again (Settle); n2 settles from its first look
	step(n1)
	if s := n1.takeSent(); len(s) != 0 {
		t.Fatalf("sent %v to a peer within its settle time", s)
	}
	clk.add(2 * time.Second)
	step(n1)
	want := map[string][]Send{"n2": {{Path: "a"}, {Path: "only-n1"}}}
	if s := n1.takeSent(); !reflect.DeepEqual(s, want) {
		t.Fatalf("n1 sent %v, want %v", s, want)
	}
	// n1's run lands on n2. n2 answered a differing tree: it is due to
	// compare too, once both are quiet again, and sends what it wins.
	n2.set([]peer.TreeEntry{file("a", 5, 0o644, 1), file("only-n1", 1, 0o644, 1), file("only-n2", 1, 0o644, 1)}, "")
	step(n1)
	step(n2)
	if s := n2.takeSent(); len(s) != 0 {
		t.Fatalf("n2 sent %v within its settle time", s)
	}
	clk.add(2 * time.Second)
	step(n2)
	want = map[string][]Send{"n1": {{Path: "only-n2"}}}
	if s := n2.takeSent(); !reflect.DeepEqual(s, want) {
		t.Fatalf("n2 sent %v, want %v", s, want)
	}
	// The runs done, both hold one tree: the next compares find it the
	// same and send nothing; neither is due after.
	same := []peer.TreeEntry{file("a", 5, 0o644, 1), file("only-n1", 1, 0o644, 1), file("only-n2", 1, 0o644, 1)}
	n1.set(same, "")
	n2.set(same, "")
	for range 3 {
		step(n1)
		step(n2)
		clk.add(maxRetryWait)
	}
	if s1, s2 := n1.takeSent(), n2.takeSent(); len(s1)+len(s2) != 0 {
		t.Errorf("sent %v and %v between members holding one tree", s1, s2)
	}
	if len(n1.c.dueNow())+len(n2.c.dueNow()) != 0 {
		t.Error("a member is still due to compare after the trees were found the same")
	}
}

// TestComparer_FreshLeavesADifferenceSendingDoesNotMend: the same
// difference (path and both sides' states) is sent maxAttempts times in
// a row, then left as it is; another state of it is sent again.
func TestComparer_FreshLeavesADifferenceSendingDoesNotMend(t *testing.T) {
	c := &Comparer{Log: testr.New(t), Peers: []Peer{{Name: "n2"}}}
	c.mu.Lock()
	c.init()
	c.mu.Unlock()
	mine, theirs := []peer.TreeEntry{file("f", 5, 0o600, 1)}, []peer.TreeEntry{file("f", 5, 0o644, 1)}
	sends := func() []Send { return []Send{{Path: "f"}} }
	for i := range maxAttempts {
		if got := c.fresh("n2", mine, theirs, sends()); len(got) != 1 {
			t.Fatalf("attempt %d: %v, want f sent", i+1, got)
		}
	}
	if got := c.fresh("n2", mine, theirs, sends()); len(got) != 0 {
		t.Errorf("attempt %d: %v, want nothing", maxAttempts+1, got)
	}
	mine[0].MtimeNs = 6
	if got := c.fresh("n2", mine, theirs, sends()); len(got) != 1 {
		t.Errorf("a new state: %v, want f sent", got)
	}
}

// TestComparer_QuietIsGroupWide: a member sends nothing to a quiet peer
// whose tree differs while another peer is not quiet (it may have a
// removal pending for that one, which the send would undo), and sends once
// every peer is quiet.
func TestComparer_QuietIsGroupWide(t *testing.T) {
	a1, a2, a3 := netip.MustParseAddr("127.0.8.11"), netip.MustParseAddr("127.0.8.12"), netip.MustParseAddr("127.0.8.13")
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tree := []peer.TreeEntry{file("f", 5, 0o644, 1)}
	n1 := newMember(t, "n1", clk, nil, tree)
	n2 := newMember(t, "n2", clk, nil, nil)
	n3 := newMember(t, "n3", clk, nil, tree)
	n3.set(tree, "1 paths are pending for n2")
	n1.c.Peers = []Peer{{Name: "n2", Endpoint: serve(t, n2, a2, "n1", a1)}, {Name: "n3", Endpoint: serve(t, n3, a3, "n1", a1)}}
	n1.c.Client = peer.NewClient("n1", []byte("k"), a1, 5*time.Second)
	ctx := context.Background()
	step := func() {
		for _, m := range []*member{n2, n3} {
			m.c.quiet() // each member looks at itself every tick
		}
		if gen, busy := n1.c.quiet(); busy == "" {
			n1.c.round(ctx, gen)
		}
	}
	for range 3 {
		step()
		clk.add(maxRetryWait)
	}
	if s := n1.takeSent(); len(s) != 0 {
		t.Fatalf("sent %v while n3 was not quiet", s)
	}
	n3.set(tree, "")
	for range 3 {
		step()
		clk.add(maxRetryWait)
	}
	if s, want := n1.takeSent(), map[string][]Send{"n2": {{Path: "f"}}}; !reflect.DeepEqual(s, want) {
		t.Errorf("sent %v once every peer was quiet, want %v", s, want)
	}
}
