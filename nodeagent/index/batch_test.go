package index

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketTest = []byte("batch-test")

// put returns a Batch function that writes key=key and reports the
// transaction it ran in.
func put(key string, ids chan<- int) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketTest)
		if err != nil {
			return err
		}
		if ids != nil {
			ids <- tx.ID()
		}
		return b.Put([]byte(key), []byte(key))
	}
}

func stored(t *testing.T, x *Index, key string) bool {
	t.Helper()
	var ok bool
	if err := x.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTest)
		ok = b != nil && b.Get([]byte(key)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

// queued waits until n calls wait behind the leader.
func queued(t *testing.T, x *Index, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		x.batch.mu.Lock()
		got := len(x.batch.queue)
		x.batch.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIndex_Batch holds a first commit open while others arrive, and
// checks what the others' commit did: they share one transaction when all
// succeed, and each gets its own outcome when one fails or panics.
func TestIndex_Batch(t *testing.T) {
	tests := []struct {
		name string
		// bad is the function of the third waiting call; nil: a good one.
		bad     func(*bolt.Tx) error
		wantErr error
		// shared: the waiting good calls ran in one transaction.
		shared bool
	}{
		{name: "all succeed: one transaction", shared: true},
		{name: "one fails: the others commit alone",
			bad: func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists(bucketTest)
				if err != nil {
					return err
				}
				if err := b.Put([]byte("bad"), []byte("x")); err != nil {
					return err
				}
				return errBad
			},
			wantErr: errBad},
		{name: "one panics: the others commit alone",
			bad:     func(*bolt.Tx) error { panic("boom") },
			wantErr: errBatchPanic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := openTemp(t)
			release := make(chan struct{})
			var once sync.Once
			open := func() { once.Do(func() { close(release) }) }
			t.Cleanup(open) // before the index closes: a failed wait must not hang Close
			leaderIn := make(chan struct{})
			var wg sync.WaitGroup
			errs := make([]error, 4)
			wg.Go(func() {
				errs[0] = x.Batch(func(tx *bolt.Tx) error {
					close(leaderIn)
					<-release
					return put("lead", nil)(tx)
				})
			})
			<-leaderIn
			ids := make(chan int, 100)
			for i := 1; i <= 3; i++ {
				fn := put(fmt.Sprintf("k%d", i), ids)
				if i == 3 && tt.bad != nil {
					fn = tt.bad
				}
				wg.Go(func() { errs[i] = x.Batch(fn) })
				queued(t, x, i) // in order, so that the bad one is last
			}
			open()
			wg.Wait()
			close(ids)

			for i, err := range errs {
				if i == 3 && tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("the bad call returned %v, want %v", err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Errorf("call %d returned %v", i, err)
				}
			}
			for _, k := range []string{"lead", "k1", "k2"} {
				if !stored(t, x, k) {
					t.Errorf("%s was not committed", k)
				}
			}
			if stored(t, x, "bad") {
				t.Error("the failed call's write was committed")
			}
			seen := map[int]int{}
			for id := range ids {
				seen[id]++
			}
			// The good waiting calls run together; after a failure they
			// run again, each alone (a rolled-back transaction's id is
			// used again, so alone they add at least one more).
			if tt.shared && len(seen) != 1 {
				t.Errorf("the waiting calls ran in %d transactions (%v), want 1", len(seen), seen)
			}
			if !tt.shared && len(seen) < 2 {
				t.Errorf("after a failure the calls ran in %d transactions (%v), want each its own", len(seen), seen)
			}
			// The queue is drained and the next call leads at once.
			if err := x.Batch(put("after", nil)); err != nil || !stored(t, x, "after") {
				t.Errorf("a later call: %v", err)
			}
		})
	}
}

var errBad = errors.New("bad call")

// TestIndex_Batch_concurrent commits many calls from many goroutines; each
// returns only once its write is durable, and none is lost.
func TestIndex_Batch_concurrent(t *testing.T) {
	x := openTemp(t)
	var wg sync.WaitGroup
	const n = 200
	for i := range n {
		wg.Go(func() {
			k := fmt.Sprintf("c%03d", i)
			if err := x.Batch(put(k, nil)); err != nil {
				t.Errorf("%s: %v", k, err)
				return
			}
			if !stored(t, x, k) {
				t.Errorf("%s not visible after Batch returned", k)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if k := fmt.Sprintf("c%03d", i); !stored(t, x, k) {
			t.Errorf("%s lost", k)
		}
	}
}

// TestIndex_Batch_panicInCommit: a panic outside the calls' functions (in
// bbolt's commit, here a transaction's OnCommit) is every call's error,
// and the next commit goes through: before, the batcher stayed busy, and
// every later call waited for good.
func TestIndex_Batch_panicInCommit(t *testing.T) {
	x := openTemp(t)
	err := x.Batch(func(tx *bolt.Tx) error {
		tx.OnCommit(func() { panic("in the commit") })
		return put("k", nil)(tx)
	})
	if !errors.Is(err, errBatchPanic) {
		t.Fatalf("Batch = %v, want errBatchPanic", err)
	}
	done := make(chan error, 1)
	go func() { done <- x.Batch(put("after", nil)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the next Batch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next Batch still waits 10 s after a commit panicked")
	}
}
