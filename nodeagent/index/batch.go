package index

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// batcher is a group commit: the write transactions that goroutines ask
// for while another one commits are run together in the next
// transaction, so that a burst of small commits (a change journaled while
// three runs confirm theirs, the receiver recording what a run brought)
// costs one page write-out and one pair of fsyncs instead of one each,
// and no caller waits behind a queue of others' commits.
//
// It is written here rather than taken from bbolt's DB.Batch, which holds
// every call for MaxBatchDelay (10 ms by default) to gather the next
// ones: a lone change's commit is on the path from a close to the peers,
// and must not wait for calls that may never come. This one adds no
// delay: the first caller commits at once, and whoever queued meanwhile
// goes in the next commit, led by the first of them.
type batcher struct {
	mu    sync.Mutex
	queue []*batchCall
	busy  bool // a leader is committing
}

type batchCall struct {
	fn  func(*bolt.Tx) error
	out chan batchResult // buffered: one result, or the lead, then one result
}

type batchResult struct {
	err  error
	lead bool // the caller commits the queue
}

// errBatchPanic is the error of a call whose function panicked.
var errBatchPanic = errors.New("panic in a batched transaction")

// do runs fn in a write transaction of db, possibly shared with other
// calls, and returns fn's error or the commit's. fn may be called more
// than once (when another function of the same transaction fails, each
// is run again alone), so it must set its results afresh on each call.
func (b *batcher) do(db *bolt.DB, fn func(*bolt.Tx) error) error {
	c := &batchCall{fn: fn, out: make(chan batchResult, 2)}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := !b.busy
	b.busy = true
	b.mu.Unlock()
	if !lead {
		r := <-c.out
		if !r.lead {
			return r.err
		}
	}
	b.mu.Lock()
	calls := b.queue
	b.queue = nil
	b.mu.Unlock()
	commitAnswering(db, calls)
	b.mu.Lock()
	if len(b.queue) > 0 {
		b.queue[0].out <- batchResult{lead: true} // the next commit is theirs
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	return (<-c.out).err
}

// commitAnswering is commit, with a panic outside the calls' functions
// (in bbolt's commit, or a transaction's OnCommit) turned into every
// call's error: panicking on, it would leave the batcher busy for good,
// and every later commit waiting behind it.
func commitAnswering(db *bolt.DB, calls []*batchCall) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("%w: %v", errBatchPanic, p)
			for _, c := range calls {
				select {
				case c.out <- batchResult{err: err}: // one answered before reads that one
				default:
				}
			}
		}
	}()
	commit(db, calls)
}

// commit runs calls in one transaction; when one of them fails, the
// transaction is rolled back and each runs again in its own, so that
// every call gets its own outcome.
func commit(db *bolt.DB, calls []*batchCall) {
	if len(calls) > 1 {
		err := db.Update(func(tx *bolt.Tx) error {
			for _, c := range calls {
				if err := safely(c.fn, tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for _, c := range calls {
				c.out <- batchResult{}
			}
			return
		}
	}
	for _, c := range calls {
		c.out <- batchResult{err: db.Update(func(tx *bolt.Tx) error { return safely(c.fn, tx) })}
	}
}

// safely runs fn, turning a panic into an error: the leader commits for
// other goroutines, which must not be left waiting.
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errBatchPanic, p)
		}
	}()
	return fn(tx)
}
