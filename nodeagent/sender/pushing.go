package sender

import (
	"context"
	"sync"
	"time"
)

// Pushing tracks the runs of a group's senders that are still in their
// rsync runs, across peers. Two rules read it:
//
//   - A sender prepares its next push client (warmPool) only once no
//     short run (not a long one: see Sender.Lanes) is pushing, or once
//     each has pushed for longer than its LaneAfter: a lone change goes to
//     every peer at once, and the client that one peer's sender started
//     as soon as its own push ended took the CPU that the other peers'
//     pushes of the same change still waited for, on a busy host (the
//     prepared clients' floor in docs/benchmarks.md starts the next
//     clients once all the pushes are over). A run that lasts (a stuck
//     peer, its daemon stopped) holds no one back for longer than that.
//   - A run of a burst confirms once the group's other runs have pushed
//     (othersPushed): its confirmation (an lstat and an index record of
//     every path on both hosts, two commits) took the CPU that the other
//     peers' pushes of the same burst waited for.
//
// Share one among a group's senders; a Sender without one counts its own
// runs only.
type Pushing struct {
	mu     sync.Mutex
	runs   map[int]pushingRun // by id, the runs pushing
	shorts int                // how many of them are short
	nextID int
	idle   chan struct{} // closed when the last short one has pushed
	ended  chan struct{} // closed, and replaced, whenever a run has pushed
}

type pushingRun struct {
	start time.Time
	short bool
}

// NewPushing returns a Pushing with nothing pushing.
func NewPushing() *Pushing {
	return &Pushing{runs: map[int]pushingRun{}, ended: make(chan struct{})}
}

// begin counts a run that starts pushing at now; end(id) uncounts it.
func (p *Pushing) begin(now time.Time, short bool) int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if short {
		if p.shorts == 0 {
			p.idle = make(chan struct{})
		}
		p.shorts++
	}
	p.nextID++
	p.runs[p.nextID] = pushingRun{start: now, short: short}
	return p.nextID
}

func (p *Pushing) end(id int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.runs[id]
	if !ok {
		return
	}
	delete(p.runs, id)
	if r.short {
		p.shorts--
		if p.shorts == 0 {
			close(p.idle)
		}
	}
	close(p.ended)
	p.ended = make(chan struct{})
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
	for _, r := range p.runs {
		if !r.short {
			continue
		}
		if t := r.start.Add(after); t.After(until) {
			until = t
		}
	}
	if !until.After(now) {
		return nil, time.Time{}, false
	}
	return p.idle, until, true
}

// othersPushed waits until no run but id is pushing, for at most bound,
// or until ctx ends. A peer slower than bound (stuck, its daemon stopped)
// holds no one back for longer.
func (p *Pushing) othersPushed(ctx context.Context, id int, bound time.Duration) {
	if p == nil || bound <= 0 {
		return
	}
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		p.mu.Lock()
		_, self := p.runs[id]
		others := len(p.runs)
		if self {
			others--
		}
		ended := p.ended
		p.mu.Unlock()
		if others == 0 {
			return
		}
		select {
		case <-ended:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
