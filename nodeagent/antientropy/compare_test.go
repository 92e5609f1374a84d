package antientropy

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
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
	return serveAll(t, m, addr, map[string]netip.Addr{from: fromAddr})
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

// TestComparer_leave: what this member (n3) would send n2 it leaves to a
// member named lower that answered the round, compares with n2, keeps
// deletes as n3 does, and holds the path alike; everything else it sends.
func TestComparer_leave(t *testing.T) {
	mine := []peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o644, 3), file("g", 5, 0o644, 1), file("x", 9, 0o644, 1)}
	sends := []Send{{Path: "d", Dir: true}, {Path: "d/f"}, {Path: "g"}, {Path: "x"}}
	tree := Tree{Entries: mine, Digest: Digest(mine)}
	// n1 holds d, d/f and g alike, x older.
	n1Tree := []peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o644, 3), file("g", 5, 0o644, 1), file("x", 8, 0o644, 1)}
	answer := func(entries []peer.TreeEntry, peers ...string) peer.TreeResponse {
		return peer.TreeResponse{Quiet: true, Digest: Digest(entries), Entries: entries, Peers: peers}
	}
	all := []Send{{Path: "d", Dir: true}, {Path: "d/f"}, {Path: "g"}, {Path: "x"}}
	for _, tc := range []struct {
		name        string
		self        string
		peers       []string
		trees       map[string]peer.TreeResponse
		keepDeletes bool
		want        []Send
	}{
		{name: "a lower member holds three alike: only x is sent", self: "n3", peers: []string{"n1", "n2"},
			trees: map[string]peer.TreeResponse{"n1": answer(n1Tree, "n2", "n3"), "n2": answer(nil, "n1", "n3")},
			want:  []Send{{Path: "x"}}},
		{name: "the same digest as this member's, sent alone: it holds every path alike", self: "n3", peers: []string{"n1", "n2"},
			trees: map[string]peer.TreeResponse{"n1": {Quiet: true, Digest: tree.Digest, Peers: []string{"n2", "n3"}}, "n2": answer(nil, "n1", "n3")},
			want:  []Send{}},
		{name: "the holder alike is named higher: it leaves them to this member", self: "n1", peers: []string{"n3", "n2"},
			trees: map[string]peer.TreeResponse{"n3": answer(mine, "n1", "n2"), "n2": answer(nil, "n1", "n3")},
			want:  all},
		{name: "the lower member does not compare with n2 (its configuration lacks n2)", self: "n3", peers: []string{"n1", "n2"},
			trees: map[string]peer.TreeResponse{"n1": answer(n1Tree, "n3"), "n2": answer(nil, "n1", "n3")},
			want:  all},
		{name: "the lower member does not compare at all (an older agent: no peers named)", self: "n3", peers: []string{"n1", "n2"},
			trees: map[string]peer.TreeResponse{"n1": {Quiet: true, Digest: tree.Digest}, "n2": answer(nil, "n1", "n3")},
			want:  all},
		{name: "the lower member keeps deletes and this one does not", self: "n3", peers: []string{"n1", "n2"},
			trees: map[string]peer.TreeResponse{"n1": {Quiet: true, Digest: tree.Digest, Peers: []string{"n2", "n3"}, KeepDeletes: true}, "n2": answer(nil, "n1", "n3")},
			want:  all},
		{name: "both keep deletes: left as without", self: "n3", peers: []string{"n1", "n2"}, keepDeletes: true,
			trees: map[string]peer.TreeResponse{"n1": {Quiet: true, Digest: tree.Digest, Peers: []string{"n2", "n3"}, KeepDeletes: true}, "n2": answer(nil, "n1", "n3")},
			want:  []Send{}},
		{name: "a lower member that holds a path with another mode is no holder of it", self: "n3", peers: []string{"n1", "n2"},
			trees: map[string]peer.TreeResponse{"n1": answer([]peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o600, 3), file("g", 5, 0o644, 1), file("x", 9, 0o644, 1)}, "n2", "n3"), "n2": answer(nil, "n1", "n3")},
			want:  []Send{{Path: "d/f"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Comparer{Self: tc.self, KeepDeletes: tc.keepDeletes, Log: testr.New(t)}
			for _, p := range tc.peers {
				c.Peers = append(c.Peers, Peer{Name: p})
			}
			got, left := c.leave("n2", tree, tc.trees, slices.Clone(sends))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sent %v, want %v", got, tc.want)
			}
			if left != len(sends)-len(tc.want) {
				t.Errorf("left %d, want %d", left, len(sends)-len(tc.want))
			}
		})
	}
}

// TestComparer_AMemberJoiningEmptyGetsEachPathOnce: n1 and n3 hold the
// same tree and n2 nothing (a member joining empty). Over real endpoints,
// n1 sends n2 every path, n3 none; what only n3 holds, n3 sends.
func TestComparer_AMemberJoiningEmptyGetsEachPathOnce(t *testing.T) {
	a1, a2, a3 := netip.MustParseAddr("127.0.8.21"), netip.MustParseAddr("127.0.8.22"), netip.MustParseAddr("127.0.8.23")
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tree := []peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o644, 3), file("g", 5, 0o644, 1)}
	n1 := newMember(t, "n1", clk, nil, tree)
	n2 := newMember(t, "n2", clk, nil, nil)
	n3 := newMember(t, "n3", clk, nil, append(slices.Clone(tree), file("only-n3", 5, 0o644, 1)))
	addrs := map[string]netip.Addr{"n1": a1, "n2": a2, "n3": a3}
	ep := map[string]netip.AddrPort{}
	for name, m := range map[string]*member{"n1": n1, "n2": n2, "n3": n3} {
		ep[name] = serveAll(t, m, addrs[name], addrs)
	}
	for name, m := range map[string]*member{"n1": n1, "n3": n3} {
		for _, p := range []string{"n1", "n2", "n3"} {
			if p != name {
				m.c.Peers = append(m.c.Peers, Peer{Name: p, Endpoint: ep[p]})
			}
		}
		m.c.Client = peer.NewClient(name, []byte("k"), addrs[name], 5*time.Second)
	}
	n2.c.Peers = []Peer{{Name: "n1", Endpoint: ep["n1"]}, {Name: "n3", Endpoint: ep["n3"]}}
	n2.c.Client = peer.NewClient("n2", []byte("k"), a2, 5*time.Second)
	ctx := context.Background()
	// roundOf has m compare once every member has been quiet for the
	// settle time (each looks at itself every tick, as Run does). What
	// m sends does not land here: n2 stays empty.
	roundOf := func(m *member) {
		for range 3 {
			for _, o := range []*member{n1, n2, n3} {
				o.c.quiet()
			}
			clk.add(maxRetryWait)
		}
		gen, busy := m.c.quiet()
		if busy != "" {
			t.Fatalf("%s is not quiet: %s", m.c.Self, busy)
		}
		m.c.round(ctx, gen)
	}
	roundOf(n3)
	roundOf(n1)
	if got, want := n1.takeSent()["n2"], []Send{{Path: "d", Dir: true}, {Path: "d/f"}, {Path: "g"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("n1 sent n2 %v, want %v", got, want)
	}
	if got, want := n3.takeSent(), map[string][]Send{"n1": {{Path: "only-n3"}}, "n2": {{Path: "only-n3"}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("n3 sent %v, want %v (what n1 holds alike, n1 sends)", got, want)
	}
}

// serveAll serves m's compares at addr for every member of members.
func serveAll(t *testing.T, m *member, addr netip.Addr, members map[string]netip.Addr) netip.AddrPort {
	t.Helper()
	s := &peer.Server{}
	s.SetGroup("www", &peer.Group{Key: []byte("k"), Tree: m.c, Members: members})
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestComparer_OneWalkAQuietPeriod: three members holding one tree each
// compare with both others in one quiet period; each walks its tree once
// (its own round and its two answers), not three times. After a change
// here, the next period walks again.
func TestComparer_OneWalkAQuietPeriod(t *testing.T) {
	addrs := map[string]netip.Addr{"n1": netip.MustParseAddr("127.0.8.31"), "n2": netip.MustParseAddr("127.0.8.32"), "n3": netip.MustParseAddr("127.0.8.33")}
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tree := []peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o644, 3)}
	ms := map[string]*member{}
	walks := map[string]int{}
	var mu sync.Mutex
	for _, name := range []string{"n1", "n2", "n3"} {
		m := newMember(t, name, clk, nil, tree)
		read := m.c.Read
		m.c.Read = func(ctx context.Context) (Tree, error) {
			mu.Lock()
			walks[name]++
			mu.Unlock()
			return read(ctx)
		}
		ms[name] = m
	}
	ep := map[string]netip.AddrPort{}
	for name, m := range ms {
		ep[name] = serveAll(t, m, addrs[name], addrs)
	}
	for name, m := range ms {
		for _, p := range []string{"n1", "n2", "n3"} {
			if p != name {
				m.c.Peers = append(m.c.Peers, Peer{Name: p, Endpoint: ep[p]})
			}
		}
		m.c.Client = peer.NewClient(name, []byte("k"), addrs[name], 5*time.Second)
	}
	ctx := context.Background()
	period := func() map[string]int {
		mu.Lock()
		clear(walks)
		mu.Unlock()
		for range 3 {
			for _, m := range ms {
				m.c.quiet()
			}
			clk.add(maxRetryWait)
		}
		for _, name := range []string{"n1", "n2", "n3"} {
			gen, busy := ms[name].c.quiet()
			if busy != "" {
				t.Fatalf("%s is not quiet: %s", name, busy)
			}
			ms[name].c.round(ctx, gen)
		}
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(walks)
	}
	if got, want := period(), map[string]int{"n1": 1, "n2": 1, "n3": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("walks in the first quiet period: %v, want %v", got, want)
	}
	ms["n1"].set(tree, "") // a change on n1: every member compares again
	if got, want := period(), map[string]int{"n1": 1, "n2": 1, "n3": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("walks in the period after a change: %v, want %v", got, want)
	}
}

// TestComparer_WalksAtMostAShareOfTheTime: a walk that takes 1 s is
// reused for walkShare seconds while nothing changes here, and the next
// round, after a change, waits that long after the last.
func TestComparer_WalksAtMostAShareOfTheTime(t *testing.T) {
	a1, a2 := netip.MustParseAddr("127.0.8.41"), netip.MustParseAddr("127.0.8.42")
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tree := []peer.TreeEntry{file("f", 5, 0o644, 3)}
	n1 := newMember(t, "n1", clk, nil, tree)
	n2 := newMember(t, "n2", clk, nil, tree)
	walks := 0
	read := n1.c.Read
	n1.c.Read = func(ctx context.Context) (Tree, error) {
		walks++
		clk.add(time.Second)
		return read(ctx)
	}
	n1.c.Peers, n1.c.Client = []Peer{{Name: "n2", Endpoint: serve(t, n2, a2, "n1", a1)}}, peer.NewClient("n1", []byte("k"), a1, 5*time.Second)
	ctx := context.Background()
	// step: both look at themselves; n1 compares if quiet and due.
	step := func(d time.Duration) {
		n2.c.quiet()
		if gen, busy := n1.c.quiet(); busy == "" {
			n1.c.round(ctx, gen)
		}
		clk.add(d)
	}
	for range 3 {
		step(maxRetryWait)
	}
	if walks != 1 {
		t.Fatalf("%d walks in the first quiet period, want 1", walks)
	}
	if _, _, err := n1.c.read(ctx, n1.c.gen); err != nil || walks != 1 {
		t.Errorf("a read at the same generation within the reuse time walked again (%d walks, %v)", walks, err)
	}
	n1.set(tree, "") // a change on n1: its tree is read again, its round waits
	for range 2 {    // 60 s of the 100 s the last walk bought
		step(maxRetryWait)
	}
	if walks != 1 {
		t.Fatalf("%d walks within %d times the last walk's time, want 1", walks, walkShare)
	}
	for range 2 {
		step(maxRetryWait)
	}
	if walks != 2 {
		t.Errorf("%d walks once %d times the last walk's time passed, want 2", walks, walkShare)
	}
	// Past its reuse time, the tree is let go; how long it took stays.
	n1.c.dropStale()
	if n1.c.last.tree.Entries == nil {
		t.Error("the tree was let go within its reuse time")
	}
	clk.add(walkShare * time.Second)
	n1.c.dropStale()
	if n1.c.last.tree.Entries != nil || n1.c.last.took != time.Second {
		t.Errorf("past its reuse time: tree of %d paths, took %v; want none, 1s", len(n1.c.last.tree.Entries), n1.c.last.took)
	}
}
