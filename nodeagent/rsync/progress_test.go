package rsync

import (
	"context"
	"sync"
	"testing"
)

// TestPush_ProgressDuringALongRun: a run slowed to about 2 s (4 MiB at
// 2 MiB/s) tells Progress how far it got while it runs, in steps that
// never go back, and ends at the file's size; a run without Progress
// prints no progress lines and its items are read as before.
func TestPush_ProgressDuringALongRun(t *testing.T) {
	d := startDaemon(t, 32)
	root := t.TempDir()
	const size = 4 << 20
	write(t, root, "big", randomBytes(size))
	write(t, root, "small", []byte("x"))
	var (
		mu   sync.Mutex
		seen []int64
	)
	o := fastOptions()
	o.BandwidthLimit = 2 << 20
	o.Progress = func(n int64) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, n)
	}
	res, err := Push(context.Background(), root, []string{"big", "small"}, d.target(), o)
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"big": Sent, "small": Sent})
	mu.Lock()
	defer mu.Unlock()
	t.Logf("progress: %v", seen)
	var during int
	for i, n := range seen {
		if i > 0 && n < seen[i-1] {
			t.Errorf("progress went back: %v", seen)
		}
		if n > 0 && n < size {
			during++
		}
	}
	if during == 0 {
		t.Errorf("no progress reported while the file was in transfer: %v", seen)
	}
	if len(seen) == 0 || seen[len(seen)-1] != size+1 {
		t.Errorf("progress %v does not end at both files' %d bytes", seen, size+1)
	}

	write(t, root, "small", []byte("yy"))
	o.Progress = nil
	o.BandwidthLimit = 0
	res, err = Push(context.Background(), root, []string{"small"}, d.target(), o)
	if err != nil {
		t.Fatalf("push without progress: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"small": Sent})
}
