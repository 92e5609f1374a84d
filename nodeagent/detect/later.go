package detect

import (
	"sync"
	"time"
)

// Bounds of laterScans' wait.
const (
	minLaterScan = time.Second
	maxLaterScan = time.Minute
)

// laterScans are paths to scan again after a wait: what could not be
// looked at now (a descriptor limit, an I/O error) most often can be a
// moment later. The wait doubles, from minLaterScan up to maxLaterScan,
// while paths keep coming back within twice the last wait (a disk that
// keeps failing is not scanned in a loop), and starts again from
// minLaterScan after a quiet spell. At most maxQueuedScans paths wait;
// beyond, the root does (scanQueue).
type laterScans struct {
	queue scanQueue

	mu    sync.Mutex
	delay time.Duration // the last wait
	last  time.Time     // when the last round was taken
}

// wait returns how long paths queued now wait for their scan.
func (l *laterScans) wait(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.delay == 0 || now.Sub(l.last) > 2*l.delay {
		l.delay = minLaterScan
	} else {
		l.delay = min(2*l.delay, maxLaterScan)
	}
	return l.delay
}

// take returns the waiting paths, as scanQueue.take, and notes the round.
func (l *laterScans) take(now time.Time) []scanRequest {
	l.mu.Lock()
	l.last = now
	l.mu.Unlock()
	return l.queue.take()
}
