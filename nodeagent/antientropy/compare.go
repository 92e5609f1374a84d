package antientropy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/nodeagent/peer"
)

// DefaultSettle is how long a member must have been quiet before it
// compares, or answers a compare: longer than the gaps within a burst of
// writes and their runs, short enough that members apart are found within
// seconds.
const DefaultSettle = 3 * time.Second

// maxAttempts is how many compares in a row may send a peer the same
// difference (the same path, held alike on each side) before it is left
// as it is and logged: a difference sending cannot mend (an attribute the
// peer's file system does not keep) would otherwise go back and forth
// for good.
const maxAttempts = 3

// walkShare bounds the time this member spends walking its tree to about
// 1/walkShare: a tree read is reused, while nothing here changed (the
// same activity generation), for walkShare times as long as reading it
// took, and a round waits as long after the last one. Reused for at
// least twice the settle time, so that a quiet period's own round and its
// answers to every peer cost one walk, not one each. On 10,000 paths
// (about 55 ms a walk) nothing waits longer than it did; on 1,000,000
// (about 5.5 s) the compare runs at most every 9 minutes, and a
// difference that no change touches is found that much later.
const walkShare = 100

// Peer is a member this one compares with.
type Peer struct {
	Name     string
	Endpoint netip.AddrPort
}

// Client asks a peer for its tree (peer.Client.Tree).
type Client interface {
	Tree(ctx context.Context, addr netip.AddrPort, group, digest string) (peer.TreeResponse, error)
}

// The results of a compare with one peer (Comparer.Compared).
const (
	// ResultSame: the peer holds the same tree.
	ResultSame = "same"
	// ResultSent: the trees differ, and this member journaled for the
	// peer what it wins.
	ResultSent = "sent"
	// ResultPeerSends: the trees differ, and the peer wins every
	// difference (or this member's sends were left as sending does not
	// mend them): the peer sends.
	ResultPeerSends = "peer-sends"
	// ResultOthersSend: the trees differ, and what this member wins a
	// member named lower holds alike and sends (Comparer.leave).
	ResultOthersSend = "others-send"
)

// Comparer compares this member's tree with every peer's once the whole
// group is quiet after a change (and every Interval), and journals for
// each peer what this member wins (Sends). It also answers the peers'
// compares (peer.TreeHandler).
//
// Quiet is group-wide: this member and every peer must each be quiet (for
// Settle: nothing pending for any member, no run or replay under way, no
// change, no scan) in one round, or nothing is sent. A member with
// anything pending for another (a removal for a member that was down)
// could otherwise see that removal undone: the member it has not reached
// yet would send the path back to a third one, whose compare with it
// found the path missing there.
type Comparer struct {
	Group string
	Self  string
	Peers []Peer
	// Client asks the peers.
	Client Client
	// Read reads this member's tree (Read, bound to the group's root and
	// excludes).
	Read func(ctx context.Context) (Tree, error)
	// Busy is this member's activity: gen counts what it did (changes
	// journaled, runs received), and busy, when not empty, says what it
	// is doing now (paths pending for a peer, a run held, a write or a
	// scan under way). Quiet is neither for Settle.
	Busy func() (gen uint64, busy string)
	// Send journals paths for one peer and wakes its sender.
	Send func(peer string, sends []Send) error
	// Compared, when set, is told of each compare with a peer and its
	// result: ResultSame, ResultSent or ResultPeerSends (metrics).
	Compared func(peer, result string)
	// KeepDeletes: the group keeps what a member removed (Sends).
	KeepDeletes bool
	// Settle is the quiet time (DefaultSettle when 0); Interval, when not
	// 0, compares with every peer that often even without a change
	// (spec.resyncInterval).
	Settle, Interval time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	Log logr.Logger

	mu sync.Mutex
	// gen, since and idle: the activity generation last seen, and since
	// when this member has been idle at it.
	gen   uint64
	since time.Time
	idle  bool
	// due are the peers to compare with: after a change here, a peer's
	// compare that found a difference, or the interval.
	due map[string]bool
	// tried counts, per peer, the compares in a row that sent it each
	// difference (path and both states).
	tried map[string]map[string]int
	// old: peers that do not answer compares, logged once.
	old map[string]bool
	// retry: when a round that could not be made (a peer not quiet or
	// unreachable) is tried again, and the wait before the next time.
	retry retry
	// next: no round before it (walkShare).
	next time.Time

	// readMu serializes the reads of this member's tree (read): answers
	// to peers asking at once share one walk.
	readMu sync.Mutex
	last   lastRead
}

// lastRead is the last tree read (read), at the activity generation gen,
// started at at and taking took.
type lastRead struct {
	tree Tree
	gen  uint64
	at   time.Time
	took time.Duration
}

type retry struct {
	at   time.Time
	wait time.Duration
}

// maxRetryWait bounds the wait before a round that could not be made is
// tried again.
const maxRetryWait = 30 * time.Second

// init makes the maps, with every peer due (a compare at start finds
// what differs since the last life); the caller holds c.mu.
func (c *Comparer) init() {
	if c.due != nil {
		return
	}
	c.due = make(map[string]bool)
	c.allDue()
	c.tried = make(map[string]map[string]int)
	c.old = make(map[string]bool)
}

// allDue marks every peer due; the caller holds c.mu, c.due made.
func (c *Comparer) allDue() {
	for _, p := range c.Peers {
		c.due[p.Name] = true
	}
}

func (c *Comparer) settle() time.Duration {
	if c.Settle > 0 {
		return c.Settle
	}
	return DefaultSettle
}

func (c *Comparer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// quiet reports why this member is not quiet now, or "" when it is, and
// the activity generation it looked at. A change of generation marks
// every peer due.
func (c *Comparer) quiet() (uint64, string) {
	gen, busy := c.Busy()
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if gen != c.gen || busy != "" || !c.idle {
		if gen != c.gen {
			c.allDue()
		}
		c.gen, c.since, c.idle = gen, now, busy == ""
		if busy == "" {
			busy = "changes within the settle time"
		}
		return gen, busy
	}
	if d := now.Sub(c.since); d < c.settle() {
		return gen, "changes within the settle time"
	}
	return gen, ""
}

// Tree answers a peer's compare (peer.TreeHandler): this member's tree,
// or its digest alone when the peer's is the same, or not quiet. A peer
// whose tree differs is due for this member's own compare: the peer sends
// what it wins, and this member what it does.
func (c *Comparer) Tree(ctx context.Context, from string, req peer.TreeRequest) (peer.TreeResponse, error) {
	gen, busy := c.quiet()
	if busy != "" {
		return peer.TreeResponse{Reason: busy}, nil
	}
	t, _, err := c.read(ctx, gen)
	if err != nil {
		// Changed while read, or unreadable: not a tree to compare.
		return peer.TreeResponse{Reason: err.Error()}, nil
	}
	resp := peer.TreeResponse{Quiet: true, Digest: t.Digest, KeepDeletes: c.KeepDeletes}
	for _, p := range c.Peers {
		resp.Peers = append(resp.Peers, p.Name)
	}
	if t.Digest != req.Digest {
		resp.Entries = t.Entries
		c.mu.Lock()
		c.init()
		c.due[from] = true
		c.mu.Unlock()
	}
	return resp, nil
}

// Run compares until ctx ends, looking whether this member is quiet
// every tick (a quarter of Settle).
func (c *Comparer) Run(ctx context.Context) error {
	tick := time.NewTicker(c.settle() / 4)
	defer tick.Stop()
	var interval <-chan time.Time
	if c.Interval > 0 {
		t := time.NewTicker(c.Interval)
		defer t.Stop()
		interval = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-interval:
			c.mu.Lock()
			c.init()
			c.allDue()
			c.mu.Unlock()
		case <-tick.C:
		}
		c.dropStale()
		gen, busy := c.quiet()
		if busy != "" {
			continue
		}
		c.round(ctx, gen)
	}
}

// dueNow returns the peers due for a compare, none while a round that
// could not be made waits to be tried again.
func (c *Comparer) dueNow() []Peer {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if now.Before(c.retry.at) || now.Before(c.next) {
		return nil
	}
	var out []Peer
	for _, p := range c.Peers {
		if c.due[p.Name] {
			out = append(out, p)
		}
	}
	return out
}

// done marks p compared at gen, unless this member's generation moved
// since (then it is due again).
func (c *Comparer) done(p string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.due[p] = false
	}
}

// later has the next round wait: Settle after a peer that was not quiet
// (it will be soon), from Settle doubling up to maxRetryWait while a
// peer cannot be reached or a tree cannot be read.
func (c *Comparer) later(why outcome) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch why {
	case made:
		c.retry = retry{}
		return
	case notQuiet:
		c.retry.wait = c.settle()
	default:
		c.retry.wait = min(max(2*c.retry.wait, c.settle()), maxRetryWait)
	}
	c.retry.at = now.Add(c.retry.wait)
}

// outcome is what a round came to, for later.
type outcome int

const (
	made outcome = iota
	notQuiet
	failed
)

// round compares with every peer due, at activity generation gen, once
// every peer answered quiet.
func (c *Comparer) round(ctx context.Context, gen uint64) {
	due := c.dueNow()
	if len(due) == 0 {
		return
	}
	t, took, err := c.read(ctx, gen)
	c.mu.Lock()
	c.next = c.now().Add(walkShare * took)
	c.mu.Unlock()
	if err != nil {
		c.Log.Info("cannot read this member's tree; the compare is tried again later", "err", err.Error())
		c.later(failed)
		return
	}
	trees, why := c.ask(ctx, t.Digest)
	c.later(why)
	if why != made {
		return
	}
	// This member may have changed while the peers read their trees:
	// what goes out must be what was compared.
	if g, busy := c.quiet(); busy != "" || g != gen {
		return
	}
	for _, p := range due {
		if c.compare(p, t, trees) {
			c.done(p.Name, gen)
		}
	}
}

// read reads this member's tree at activity generation gen, or returns
// the last one read at gen within its reuse time (walkShare); and how
// long the last walk of it took (that one, or the one before a failed
// read).
func (c *Comparer) read(ctx context.Context, gen uint64) (Tree, time.Duration, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	start := c.now()
	if l := c.last; l.fresh(start, c.settle()) && l.gen == gen {
		return l.tree, l.took, nil
	}
	t, err := c.Read(ctx)
	if err != nil {
		return Tree{}, c.last.took, err
	}
	c.last = lastRead{tree: t, gen: gen, at: start, took: c.now().Sub(start)}
	return t, c.last.took, nil
}

// fresh reports whether l may be reused at now.
func (l lastRead) fresh(now time.Time, settle time.Duration) bool {
	return l.at != (time.Time{}) && now.Sub(l.at) < max(2*settle, walkShare*l.took)
}

// dropStale lets go of the last tree read once it may no longer be
// reused (a tree of 1,000,000 paths holds over 100 MB); how long it took
// stays, for the next round's wait. It does not wait for a read under way.
func (c *Comparer) dropStale() {
	if !c.readMu.TryLock() {
		return
	}
	defer c.readMu.Unlock()
	if !c.last.fresh(c.now(), c.settle()) {
		c.last = lastRead{took: c.last.took}
	}
}

// ask asks every peer for its tree; made only when every one answered
// quiet (or does not compare: an older agent, left out and logged once).
func (c *Comparer) ask(ctx context.Context, digest string) (map[string]peer.TreeResponse, outcome) {
	trees := make(map[string]peer.TreeResponse, len(c.Peers))
	for _, p := range c.Peers {
		log := c.Log.WithValues("peer", p.Name)
		resp, err := c.Client.Tree(ctx, p.Endpoint, c.Group, digest)
		switch {
		case errors.Is(err, peer.ErrNoTree):
			c.mu.Lock()
			first := !c.old[p.Name]
			c.old[p.Name] = true
			c.mu.Unlock()
			if first {
				log.Info("the peer does not compare trees (an older agent, or one without this group): what change detection misses between this member and it is not found", "err", err.Error())
			}
			resp = peer.TreeResponse{Quiet: true, Digest: digest}
		case err != nil:
			log.V(1).Info("cannot compare with the peer now; the round is tried again later", "err", err.Error())
			return nil, failed
		case !resp.Quiet:
			log.V(1).Info("the peer is not quiet; the round is tried again later", "reason", resp.Reason)
			return nil, notQuiet
		}
		trees[p.Name] = resp
	}
	return trees, made
}

// compare compares t with p's tree (in trees, every peer's answer of
// this round) and sends p what this member wins and leaves to no other
// member; it reports whether p is done with until the next change: the
// same tree, or nothing to send.
func (c *Comparer) compare(p Peer, t Tree, trees map[string]peer.TreeResponse) bool {
	log := c.Log.WithValues("peer", p.Name)
	resp := trees[p.Name]
	if resp.Digest == t.Digest {
		c.forget(p.Name)
		c.compared(p.Name, ResultSame)
		log.V(1).Info("same tree as the peer", "paths", len(t.Entries))
		return true
	}
	sends, left := c.leave(p.Name, t, trees, Sends(c.Self, p.Name, t.Entries, resp.Entries, c.KeepDeletes))
	sends = c.fresh(p.Name, t.Entries, resp.Entries, sends)
	if len(sends) == 0 && left > 0 {
		c.compared(p.Name, ResultOthersSend)
		log.V(1).Info("the trees differ; what this member wins, members named lower hold alike and send", "left", left, "paths", len(t.Entries), "peerPaths", len(resp.Entries))
		return true
	}
	if len(sends) == 0 {
		c.compared(p.Name, ResultPeerSends)
		log.V(1).Info("the trees differ; the peer sends what it wins", "paths", len(t.Entries), "peerPaths", len(resp.Entries))
		return true
	}
	c.compared(p.Name, ResultSent)
	first := make([]string, 0, 3)
	for _, s := range sends[:min(3, len(sends))] {
		first = append(first, s.Path)
	}
	log.Info("the peer's tree differs; sending what this member wins", "sends", len(sends), "first", first, "left", left, "paths", len(t.Entries), "peerPaths", len(resp.Entries))
	if err := c.Send(p.Name, sends); err != nil {
		log.Error(err, "cannot journal what the compare found; compared again later")
	}
	return false
}

// leave drops from sends, what this member would send peer p, each path
// that a member named lower than this one holds alike and sends p itself:
// a member that answered this round quiet, compares with p, and keeps
// deletes as this one does. It decides as this member does (Wins: the
// same entry against p's, and a lower name breaks a tie no worse), so the
// lowest-named holder of a path sends it and no one else: a member
// joining empty gets each path once, not once from every member. It
// returns the paths kept and how many were left.
//
// That member sends p each such path once it compares with p: p is due
// there, as here, since whatever made the trees differ moved the activity
// generation of p or of that member (a change, a run received, a start),
// which marks p due on both. Where the two saw p's tree differ (changed
// behind p's agent between the two reads), the path waits for the next
// compare after a change, or the interval.
func (c *Comparer) leave(p string, t Tree, trees map[string]peer.TreeResponse, sends []Send) ([]Send, int) {
	if len(sends) == 0 {
		return sends, 0
	}
	var lower []peer.TreeResponse
	for _, q := range c.Peers {
		r, ok := trees[q.Name]
		if ok && q.Name != p && q.Name < c.Self && r.Quiet && r.KeepDeletes == c.KeepDeletes && slices.Contains(r.Peers, p) {
			lower = append(lower, r)
		}
	}
	if len(lower) == 0 {
		return sends, 0
	}
	want := pathsOf(sends)
	mine := byPath(t.Entries, want)
	holds := make([]map[string]peer.TreeEntry, len(lower))
	for i, r := range lower {
		if r.Digest != t.Digest { // the same digest: it holds every path alike
			holds[i] = byPath(r.Entries, want)
		}
	}
	out := make([]Send, 0, len(sends))
	for _, s := range sends {
		if !slices.ContainsFunc(holds, func(h map[string]peer.TreeEntry) bool {
			if h == nil {
				return true
			}
			e, ok := h[s.Path]
			return ok && Same(e, mine[s.Path])
		}) {
			out = append(out, s)
		}
	}
	return out, len(sends) - len(out)
}

func (c *Comparer) compared(p, result string) {
	if c.Compared != nil {
		c.Compared(p, result)
	}
}

// fresh drops from sends the differences that the last maxAttempts
// compares with peer each sent already (the same path, held alike on
// both sides), and logs them; it keeps count of the rest.
func (c *Comparer) fresh(peerName string, mine, theirs []peer.TreeEntry, sends []Send) []Send {
	if len(sends) == 0 {
		c.forget(peerName)
		return nil
	}
	want := pathsOf(sends)
	m, t := byPath(mine, want), byPath(theirs, want)
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.tried[peerName]
	next := make(map[string]int, len(sends))
	out := sends[:0]
	var stuck []string
	for _, s := range sends {
		mt, tt := m[s.Path], t[s.Path]
		key := string(appendEntry(appendEntry(nil, mt), tt))
		n := last[key] + 1
		next[key] = n
		if n > maxAttempts {
			stuck = append(stuck, s.Path)
			continue
		}
		out = append(out, s)
	}
	c.tried[peerName] = next
	if len(stuck) > 0 {
		c.Log.Info("differences that sending did not mend are left as they are (an attribute the peer does not keep?)", "peer", peerName, "paths", len(stuck), "first", stuck[0])
	}
	return out
}

// pathsOf is the set of the paths of sends.
func pathsOf(sends []Send) map[string]bool {
	m := make(map[string]bool, len(sends))
	for _, s := range sends {
		m[s.Path] = true
	}
	return m
}

// byPath maps the entries of es whose paths are in want by path.
func byPath(es []peer.TreeEntry, want map[string]bool) map[string]peer.TreeEntry {
	m := make(map[string]peer.TreeEntry, len(want))
	for _, e := range es {
		if want[string(e.Path)] {
			m[string(e.Path)] = e
		}
	}
	return m
}

// forget drops the counts of peer's differences: its tree is the same.
func (c *Comparer) forget(peerName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tried, peerName)
}
