package detect

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// TestLaterScans_wait: the wait doubles while paths keep coming back
// within twice the last wait, up to its bound, and starts again from the
// bottom after a quiet spell.
func TestLaterScans_wait(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	type step struct {
		queued time.Duration // when paths are queued, from t0
		want   time.Duration // their wait
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first", []step{{0, minLaterScan}}},
		{"failing again at once doubles", []step{{0, time.Second}, {time.Second, 2 * time.Second}, {3 * time.Second, 4 * time.Second}}},
		{"doubling stops at the bound", []step{
			{0, time.Second}, {1 * time.Second, 2 * time.Second}, {3 * time.Second, 4 * time.Second},
			{7 * time.Second, 8 * time.Second}, {15 * time.Second, 16 * time.Second}, {31 * time.Second, 32 * time.Second},
			{63 * time.Second, maxLaterScan}, {123 * time.Second, maxLaterScan},
		}},
		{"a quiet spell starts again", []step{{0, time.Second}, {time.Second, 2 * time.Second}, {time.Minute, time.Second}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l laterScans
			for i, s := range tc.steps {
				now := t0.Add(s.queued)
				if got := l.wait(now); got != s.want {
					t.Fatalf("step %d: wait %v, want %v", i, got, s.want)
				}
				l.take(now.Add(s.want)) // the round is scanned once its wait is over
			}
		})
	}
}

// TestVanished: a scan that could not read directories gone meanwhile
// (renamed or removed while it walked: their events report them) is not
// scanned again; any other error is.
func TestVanished(t *testing.T) {
	gone := fmt.Errorf("scan %q: %w", "d/x", unix.ENOENT)
	notDir := fmt.Errorf("scan %q: %w", "d/y", &os.PathError{Op: "open", Path: "d/y", Err: unix.ENOTDIR})
	denied := fmt.Errorf("scan %q: %w", "d/z", unix.EACCES)
	symlink := fmt.Errorf("scan %q: open %q: %w (%v)", "d/s", "d/s", beneath.ErrOutside, unix.ELOOP)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"a directory gone", gone, true},
		{"a directory that is a file now", notDir, true},
		{"a directory that is a symlink now", symlink, true},
		{"both, joined", errors.Join(gone, notDir), true},
		{"all three, joined", errors.Join(gone, notDir, symlink), true},
		{"joined and wrapped again", fmt.Errorf("walk: %w", errors.Join(gone, notDir)), true},
		{"a directory that cannot be read", denied, false},
		{"one gone, one that cannot be read", errors.Join(gone, denied), false},
		{"wrapped, one that cannot be read among gone ones", fmt.Errorf("walk: %w", errors.Join(gone, denied)), false},
		{"an empty join", errors.Join(), false},
		{"an I/O error", unix.EIO, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := vanished(tc.err); got != tc.want {
				t.Errorf("vanished(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
