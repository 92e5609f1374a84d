package sender

import "sync"

// Pushing counts the short runs (not long ones: see Sender.Lanes) of a
// group's senders that are still in their rsync runs, across peers. A
// sender prepares its next push client (warmPool) only once none is: a
// lone change goes to every peer at once, and the client that one peer's
// sender started as soon as its own push ended took the CPU that the other
// peers' pushes of the same change still waited for, on a busy host (the
// prepared clients' floor in docs/benchmarks.md starts the next clients
// once all the pushes are over). Share one among a group's senders; a
// Sender without one counts its own runs only.
type Pushing struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0
}

// NewPushing returns a counter with nothing pushing.
func NewPushing() *Pushing { return &Pushing{} }

func (p *Pushing) begin() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		p.idle = make(chan struct{})
	}
	p.n++
}

func (p *Pushing) end() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	if p.n == 0 {
		close(p.idle)
	}
}

// busy returns nil when no short run is pushing, or a channel closed once
// none is.
func (p *Pushing) busy() <-chan struct{} {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return nil
	}
	return p.idle
}
