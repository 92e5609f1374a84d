package sender

import (
	"errors"
	"net"
	"slices"
)

// maxEnded bounds the runs a sender keeps to name as ended
// (peer.PathsRequest.Over) while its peer takes no announcement: the
// oldest go first. A run not named is held on the peer until its hold
// expires (detect.DefaultIncomingTTL), as before there was Over.
const maxEnded = 256

// endUnconfirmed records that run, announced to the peer (or maybe:
// its announcement failed after it was sent), ended without the peer
// taking its confirmation: the next announcement names it, and the peer
// settles it (receiver.Receiver.Incoming). Called once the run's rsync
// clients have exited.
func (s *Sender) endUnconfirmed(run string) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	s.ended = append(s.ended, run)
	if n := len(s.ended) - maxEnded; n > 0 {
		s.ended = slices.Delete(s.ended, 0, n)
	}
}

// endedRuns returns the runs to name in the next announcement.
func (s *Sender) endedRuns() []string {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	return slices.Clone(s.ended)
}

// toldEnded forgets the runs an announcement the peer took named.
func (s *Sender) toldEnded(runs []string) {
	if len(runs) == 0 {
		return
	}
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	s.ended = slices.DeleteFunc(s.ended, func(r string) bool { return slices.Contains(runs, r) })
}

// mayHaveArrived reports whether a request that failed with err may have
// reached the peer: any failure but one to connect.
func mayHaveArrived(err error) bool {
	var op *net.OpError
	return !(errors.As(err, &op) && op.Op == "dial")
}
