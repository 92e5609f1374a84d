package detect

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/change"
)

// deafSource is a change source that missed everything (a kernel that
// dropped events without saying so): it reports nothing until ctx ends.
type deafSource struct{}

func (deafSource) Run(ctx context.Context, _ chan<- change.Change) error {
	<-ctx.Done()
	return nil
}

func (deafSource) SeesClose() bool { return true }

// TestDetector_ResyncFindsWhatTheSourceMissed: with a change source, the
// full compare against the index every ResyncInterval (spec.resyncInterval)
// is the safety net for events the source never reported; without it such
// a file would wait for the next restart.
func TestDetector_ResyncFindsWhatTheSourceMissed(t *testing.T) {
	root := tmpfs.Mount(t, "size=16m")
	idx := openIndex(t, root)
	var mu sync.Mutex
	var reasons []string
	d := &Detector{Root: root, Index: idx, Source: deafSource{}, Settle: 50 * time.Millisecond, ResyncInterval: 300 * time.Millisecond,
		Incoming: &Incoming{}, Log: logr.Discard(),
		Scanned: func(reason string) { mu.Lock(); reasons = append(reasons, reason); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan change.Change, 64)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, out) }()
	defer func() { cancel(); <-done }()
	// Written once the first resync has begun: the start-up scan is over
	// (scans run one after another), so only a resync can find it.
	resyncs := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range reasons {
			if r == "resync" {
				n++
			}
		}
		return n
	}
	for start := time.Now(); resyncs() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("no resync within 10 s")
		}
	}
	if err := os.WriteFile(filepath.Join(root, "missed"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-out:
			if c.Path == "missed" && c.Finished && c.Op.Has(change.Write) {
				mu.Lock()
				defer mu.Unlock()
				// The first resync may find it: Scanned reports a scan
				// as it begins, and under load the file is written
				// before that scan reads the root.
				if len(reasons) < 2 || reasons[0] != "start" || reasons[len(reasons)-1] != "resync" {
					t.Errorf("scans %v; want the start-up scan, then resyncs, the last of which found it", reasons)
				}
				return
			}
		case err := <-done:
			t.Fatalf("detector stopped: %v", err)
		case <-deadline:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the missed file was not found within 10 s; scans %v", reasons)
		}
	}
}
