package rsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestWarm(t *testing.T) {
	tests := []struct {
		name string
		slot int
		// before runs between Prepare and Push (or Close).
		before func(t *testing.T, d *daemon, w *Warm)
		files  []string
		close  bool // Close instead of Push
		// want is the outcome of each file; nil expects an error from Push.
		want      map[string]Outcome
		wantClass Class
	}{
		{
			name:  "hostile names arrive byte-exact through a client that waited",
			slot:  40,
			files: hostileNames(),
			before: func(t *testing.T, d *daemon, w *Warm) {
				time.Sleep(300 * time.Millisecond) // connected and waiting by now
				if !w.Alive() {
					t.Fatal("the prepared client exited while waiting")
				}
			},
			want: func() map[string]Outcome {
				m := map[string]Outcome{}
				for _, n := range hostileNames() {
					m[n] = Sent
				}
				return m
			}(),
		},
		{
			name:  "a closed client transfers nothing",
			slot:  41,
			files: []string{"never"},
			close: true,
		},
		{
			name:  "a path that left the root is dropped before the list is given",
			slot:  42,
			files: []string{"ok", "../outside"},
			want:  map[string]Outcome{"ok": Sent, "../outside": Dropped},
		},
		{
			name:  "a client whose daemon went away is not alive and its push fails as retry",
			slot:  43,
			files: []string{"late"},
			before: func(t *testing.T, d *daemon, w *Warm) {
				d.stop()
				deadline := time.Now().Add(10 * time.Second)
				for w.Alive() && time.Now().Before(deadline) {
					// The daemon's child for this connection is in the
					// daemon's process group: stopping the daemon ends it.
					time.Sleep(10 * time.Millisecond)
				}
				if w.Alive() {
					t.Error("still alive 10 s after its daemon stopped")
				}
			},
			wantClass: Retry,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, tc.slot)
			root := t.TempDir()
			for _, n := range tc.files {
				if filepath.IsLocal(n) {
					write(t, root, n, []byte("content of "+n))
				}
			}
			w, err := Prepare(root, d.target(), fastOptions())
			if err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				tc.before(t, d, w)
			}
			if tc.close {
				w.Close()
				if w.Alive() {
					t.Error("alive after Close")
				}
				entries, _ := os.ReadDir(d.dir)
				for _, e := range entries {
					if e.Name() != ".jailsync" {
						t.Errorf("a closed client transferred %q", e.Name())
					}
				}
				return
			}
			res, err := w.Push(context.Background(), tc.files)
			if tc.want == nil {
				var ee *ExitError
				if err == nil || (!errors.As(err, &ee) && tc.wantClass != OK) {
					t.Fatalf("push = %v, want an rsync exit error", err)
				}
				if res.Class != tc.wantClass {
					t.Errorf("class %v, want %v (exit %d: %s)", res.Class, tc.wantClass, res.Code, res.Stderr)
				}
				for _, p := range res.Paths {
					if p.Outcome.Done() {
						t.Errorf("%q marked %v by a failed run", p.Path, p.Outcome)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("push: %v\n%s", err, res.Stderr)
			}
			wantOutcomes(t, res, tc.want)
			var sent []string
			for n, o := range tc.want {
				if o == Sent {
					sent = append(sent, n)
				}
			}
			checkSame(t, root, d.dir, sent)
			if w.Alive() {
				t.Error("alive after its push")
			}
		})
	}
}

// TestWarm_PushStopsWithContext: a warm client's run ends when its context
// does, and its process is gone.
func TestWarm_PushStopsWithContext(t *testing.T) {
	d := startDaemon(t, 44)
	root := t.TempDir()
	big := make([]byte, 64<<20)
	write(t, root, "big", big)
	o := fastOptions()
	o.BandwidthLimit = 1 << 20 // 64 s at this rate: still running when cancelled
	w, err := Prepare(root, d.target(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := w.Push(ctx, []string{"big"})
	if err == nil {
		t.Fatalf("push of 64 MiB at 1 MiB/s finished in %s", time.Since(start))
	}
	if res.Paths[0].Outcome.Done() {
		t.Errorf("big marked %v by a stopped run", res.Paths[0].Outcome)
	}
	if err := syscall.Kill(w.p.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the client process is still there after its run was stopped: %v", err)
	}
}
