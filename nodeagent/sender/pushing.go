package sender

import (
	"sync"
	"time"
)

// Pushing tracks the short runs (not long ones: see Sender.Lanes) of a
// group's senders that are still in their rsync runs, across peers. A
// sender prepares its next push client (warmPool) only once none is, or
// once each has pushed for longer than its LaneAfter: a lone change goes
// to every peer at once, and the client that one peer's sender started as
// soon as its own push ended took the CPU that the other peers' pushes of
// the same change still waited for, on a busy host (the prepared clients'
// floor in docs/benchmarks.md starts the next clients once all the pushes
// are over). A run that lasts (a stuck peer, its daemon stopped) holds
// no one back for longer than that. Share one among a group's senders; a
// Sender without one counts its own runs only.
type Pushing struct {
	mu     sync.Mutex
	starts map[int]time.Time // by id, the short runs pushing
	nextID int
	idle   chan struct{} // closed when the last one has pushed
}

// NewPushing returns a Pushing with nothing pushing.
func NewPushing() *Pushing { return &Pushing{starts: map[int]time.Time{}} }

// begin counts a short run that starts pushing at now; end(id) uncounts it.
func (p *Pushing) begin(now time.Time) int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.starts) == 0 {
		p.idle = make(chan struct{})
	}
	p.nextID++
	p.starts[p.nextID] = now
	return p.nextID
}

func (p *Pushing) end(id int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.starts[id]; !ok {
		return
	}
	delete(p.starts, id)
	if len(p.starts) == 0 {
		close(p.idle)
	}
}

// busy reports whether a short run that started less than after before
// now is still pushing; if so, it returns a channel closed once none is
// pushing and the time from which those pushing no longer count.
func (p *Pushing) busy(now time.Time, after time.Duration) (idle <-chan struct{}, until time.Time, ok bool) {
	if p == nil {
		return nil, time.Time{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, start := range p.starts {
		if t := start.Add(after); t.After(until) {
			until = t
		}
	}
	if !until.After(now) {
		return nil, time.Time{}, false
	}
	return p.idle, until, true
}
