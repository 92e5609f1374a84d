package detect

import "sync"

// Incoming is the set of paths this agent's receiver is writing now. A peer
// announces the paths of a run before it starts and confirms them after;
// in between, changes on those paths are held, and once the receiver has
// recorded what it wrote in the index they are checked again (and dropped
// as echoes if they match). Without it, the events of a received file can
// outrun the record of it, and the file would be sent back.
//
// The zero value is empty and ready to use; it is safe for concurrent use.
type Incoming struct {
	mu      sync.Mutex
	paths   map[string]int
	changed chan struct{}
}

// Add marks paths as being received (counted: two runs may name one path).
func (in *Incoming) Add(paths ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.paths == nil {
		in.paths = make(map[string]int)
	}
	for _, p := range paths {
		in.paths[p]++
	}
}

// Done ends what Add started, after the receiver recorded the paths.
func (in *Incoming) Done(paths ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, p := range paths {
		if in.paths[p] <= 1 {
			delete(in.paths, p)
		} else {
			in.paths[p]--
		}
	}
	if in.changed != nil {
		close(in.changed)
		in.changed = nil
	}
}

// Has reports whether path is being received.
func (in *Incoming) Has(path string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.paths[path] > 0
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
