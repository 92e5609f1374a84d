package detect

import (
	"strings"
	"sync"
	"time"
)

// Incoming is the set of paths this agent's receiver is writing now. A peer
// announces the paths of a run before it starts and confirms them after;
// in between, changes on those paths are held, and once the receiver has
// recorded what it wrote in the index they are checked again (and dropped
// as echoes if they match). Without it, the events of a received file can
// outrun the record of it, and the file would be sent back.
//
// A path announced by a sender that then died is released after TTL, so
// that no local change is held forever.
//
// The zero value is empty and ready to use; it is safe for concurrent use.
type Incoming struct {
	// TTL bounds how long an announced path is held; DefaultIncomingTTL
	// when 0.
	TTL time.Duration

	mu      sync.Mutex
	paths   map[string]incoming
	changed chan struct{}
}

// DefaultIncomingTTL is how long an announced path is held without news
// from its sender: a run that lasts longer is announced again meanwhile
// (sender.ReannounceEvery), and rsync's I/O timeout bounds a stalled one.
const DefaultIncomingTTL = 10 * time.Minute

type incoming struct {
	runs    int
	expires time.Time
}

// Add marks paths as being received (counted: two runs may name one path).
func (in *Incoming) Add(paths ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.paths == nil {
		in.paths = make(map[string]incoming)
	}
	expires := time.Now().Add(in.ttl())
	for _, p := range paths {
		e := in.paths[p]
		e.runs++
		e.expires = expires
		in.paths[p] = e
	}
}

// Extend holds paths already added for another TTL from now, without
// counting another run: a sender re-announces a run that lasts (a large
// file at a bandwidth limit), so that its paths are not released while
// they are still being received. A path not held is not added.
func (in *Incoming) Extend(paths ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	expires := time.Now().Add(in.ttl())
	for _, p := range paths {
		if e, ok := in.paths[p]; ok {
			e.expires = expires
			in.paths[p] = e
		}
	}
}

// ttl is TTL, or its default.
func (in *Incoming) ttl() time.Duration {
	if in.TTL > 0 {
		return in.TTL
	}
	return DefaultIncomingTTL
}

// Done ends what Add started, after the receiver recorded the paths.
func (in *Incoming) Done(paths ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, p := range paths {
		if e := in.paths[p]; e.runs <= 1 {
			delete(in.paths, p)
		} else {
			e.runs--
			in.paths[p] = e
		}
	}
	if in.changed != nil {
		close(in.changed)
		in.changed = nil
	}
}

// Has reports whether path, or a directory above it, is being received
// (announced, not yet done, not expired): a received directory's delete or
// rename touches everything below it.
func (in *Incoming) Has(path string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.paths) == 0 {
		return false
	}
	now := time.Now()
	for p := path; ; {
		if e, ok := in.paths[p]; ok {
			if now.Before(e.expires) {
				return true
			}
			delete(in.paths, p)
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// Carries reports whether path itself (not a directory above it) is being
// received. A received directory's own change (its times, as a file made
// in it changes them) carries nothing of the files below it, which Has
// would count.
func (in *Incoming) Carries(path string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	e, ok := in.paths[path]
	return ok && time.Now().Before(e.expires)
}

// Changed returns a channel closed at the next Done.
func (in *Incoming) Changed() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.changed == nil {
		in.changed = make(chan struct{})
	}
	return in.changed
}
