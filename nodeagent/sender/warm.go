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

// take hands the prepared client to a run, or nil when there is none fit
// to push through (takeFit): the run then starts its own before its
// announcement (runState.startClient).
func (p *warmPool) take() *rsync.Warm { return takeFit(&p.w) }

// takeFit takes the prepared client held at *held, leaving nil there: nil
// when there is none, or when it is no longer fit to be handed a run's
// list (it is then closed): it exited (its daemon dropped it, the peer
// was down), or has waited warmMaxAge or more, which stays well inside the
// daemon's I/O timeout. The client's own --timeout does not end its wait
// for the list: one with --timeout=3, given its list after 8 s, pushed it
// (measured with rsync 3.5.0, the seventy-seventh session).
func takeFit(held **rsync.Warm) *rsync.Warm {
	w := *held
	*held = nil
	if w != nil && (!w.Alive() || w.Age() >= warmMaxAge) {
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
