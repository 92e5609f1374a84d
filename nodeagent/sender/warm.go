package sender

import (
	"time"

	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// warmMaxAge is how long a prepared push client may wait for its paths
// before it is replaced: well under the daemon's I/O timeout (rsyncd's
// DefaultTimeout, 300 s), after which the daemon drops the connection.
const warmMaxAge = 60 * time.Second

// warmPool keeps one push client to the peer started ahead of the next
// run (rsync.Warm), so that a lone change goes out without waiting for a
// process start and a connection set-up. Only the Start loop uses it.
type warmPool struct {
	w      *rsync.Warm
	expiry *time.Timer
}

// prepare starts a client when there is none. A failure is not an error:
// the next run starts its own.
func (p *warmPool) prepare(s *Sender) {
	if p.w != nil {
		return
	}
	// For small runs; a large one starts its own.
	w, err := rsync.Prepare(s.rsyncRoot(), s.Target, s.runOptions(batch{}))
	if err != nil {
		s.Log.V(1).Info("no prepared push client; runs start their own", "error", err)
		return
	}
	p.w = w
	if p.expiry == nil {
		p.expiry = time.NewTimer(warmMaxAge)
	} else {
		p.expiry.Reset(warmMaxAge)
	}
}

// take hands the prepared client to a run, or nil when there is none that
// is still waiting (its daemon dropped it, the peer was down).
func (p *warmPool) take() *rsync.Warm {
	w := p.w
	p.w = nil
	if w != nil && !w.Alive() {
		w.Close()
		return nil
	}
	return w
}

// expired is the timer's channel, nil without a client.
func (p *warmPool) expired() <-chan time.Time {
	if p.w == nil || p.expiry == nil {
		return nil
	}
	return p.expiry.C
}

// close stops the unused client.
func (p *warmPool) close() {
	if p.w != nil {
		p.w.Close()
		p.w = nil
	}
	if p.expiry != nil {
		p.expiry.Stop()
	}
}
