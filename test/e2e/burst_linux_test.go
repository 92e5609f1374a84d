package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
)

// TestStandalone_BurstGoesInFewRuns: a burst of 2,000 small files written
// on one member reaches every peer in a handful of rsync runs per peer
// (batched through --files-from), not one per file, and every file is
// sent once per peer: 2,000 paths synced, and the bytes synced are the
// files' bytes exactly (a file sent twice would add its size or a path).
// Once, under CPU load, both peers counted 2,001 paths with the right
// bytes, most likely a file announced by its creation before its writer
// had opened it, taken as finished, sent empty and sent again after its
// close (the fanotify source and the scanner now leave a new empty file
// unfinished: TestDetector_NewFileBeforeItsWriterOpens).
func TestStandalone_BurstGoesInFewRuns(t *testing.T) {
	c := start(t, 3, 18545)
	data := make([]byte, 4096)
	for i := range 2000 {
		must(t, os.WriteFile(filepath.Join(c.roots["n1"], fmt.Sprintf("f%04d", i)), data, 0o644))
	}
	c.converged("n1")
	var ss []sample
	// The runs' confirmations may follow the files' arrival by moments.
	poll.Until(t, 20*time.Second, func() error {
		var err error
		if ss, err = c.metrics("n1"); err != nil {
			return err
		}
		for _, peer := range []string{"n2", "n3"} {
			f := series(ss, "jailsync_files_synced_total", map[string]string{"peer": peer})
			b := series(ss, "jailsync_bytes_synced_total", map[string]string{"peer": peer})
			if len(f) != 1 || f[0].value != 2000 || len(b) != 1 || b[0].value != 2000*4096 {
				r, _ := c.status("n1") // for the failure message: pending counts, last errors
				return fmt.Errorf("n1 -> %s: jailsync_files_synced_total %v, jailsync_bytes_synced_total %v; want 2,000 files, 2,000 x 4,096 bytes (runs %v; n1's status %+v)", peer, f, b,
					series(ss, "jailsync_rsync_runs_total", map[string]string{"peer": peer}), r)
			}
		}
		return nil
	})
	for _, peer := range []string{"n2", "n3"} {
		var runs float64
		for _, s := range series(ss, "jailsync_rsync_runs_total", map[string]string{"peer": peer}) {
			runs += s.value
		}
		if runs < 1 || runs > 10 {
			t.Errorf("n1 -> %s: %v rsync runs for 2,000 files; want a handful (at most 10)", peer, runs)
		}
	}
}
