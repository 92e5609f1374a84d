package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
)

// TestStandalone_HundredThousandDeletions: 100,000 files, replicated, then
// deleted on one member, half one by one (their 50 directories stay), half
// with their 50 directories: every peer ends with the 50 empty
// directories and nothing else (lsyncd hangs on 100k deletions, its issue
// #695: shared/docs/peers.md). The deletions are not a scan's, so the
// mass-deletion stop does not apply.
func TestStandalone_HundredThousandDeletions(t *testing.T) {
	c := start(t, 3, 18565)
	const dirs, perDir = 100, 1000
	for d := range dirs {
		dir := filepath.Join(c.roots["n1"], fmt.Sprintf("d%03d", d))
		must(t, os.Mkdir(dir, 0o755))
		for f := range perDir {
			must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", f)), []byte{byte(f)}, 0o644))
		}
	}
	began := time.Now()
	c.convergedWithin("n1", 3*time.Minute)
	t.Logf("100,000 files on every peer %v after the last write", time.Since(began).Round(time.Millisecond))

	for d := range dirs {
		dir := filepath.Join(c.roots["n1"], fmt.Sprintf("d%03d", d))
		if d%2 == 0 {
			must(t, os.RemoveAll(dir))
			continue
		}
		for f := range perDir {
			must(t, os.Remove(filepath.Join(dir, fmt.Sprintf("f%04d", f))))
		}
	}
	began = time.Now()
	c.convergedWithin("n1", 3*time.Minute)
	t.Logf("100,000 deletions on every peer %v after the last one", time.Since(began).Round(time.Millisecond))
	for _, node := range c.nodes {
		got, err := snapshot(c.roots[node])
		must(t, err)
		if len(got) != dirs/2 {
			t.Errorf("%s holds %d paths, want the %d directories kept", node, len(got), dirs/2)
		}
	}
	if ss, err := c.metrics("n1"); err == nil {
		for _, peer := range []string{"n2", "n3"} {
			var runs float64
			for _, s := range series(ss, "jailsync_rsync_runs_total", map[string]string{"peer": peer}) {
				runs += s.value
			}
			t.Logf("n1 -> %s: %v rsync runs in all", peer, runs)
		}
	}
	poll.Until(t, 30*time.Second, func() error {
		r, err := c.status("n1")
		if err != nil {
			return err
		}
		for _, p := range r.Peers {
			if p.PendingFiles != 0 || p.LastError != "" {
				return fmt.Errorf("%s: %d paths pending, last error %q", p.Target, p.PendingFiles, p.LastError)
			}
		}
		return nil
	})
}
