package rsync

import (
	"context"
	"os"
	"testing"

	"github.com/jailsync/jailsync/internal/chattr"
)

// TestPush_ReceiverFailureIsPinnedOnThePath: the peer cannot replace an
// immutable file; rsync still itemizes it as sent, then names it in an
// error line, and only that path is Failed.
func TestPush_ReceiverFailureIsPinnedOnThePath(t *testing.T) {
	d := startDaemon(t, 14)
	root := t.TempDir()
	write(t, root, "ro/f", []byte("new content"))
	write(t, root, "ok", []byte("fine"))
	write(t, d.dir, "ro/f", []byte("old"))
	chattr.Immutable(t, d.path("ro/f"))
	must(t, os.MkdirAll(d.path(".jailsync/tmp"), 0o700))
	o := fastOptions()
	o.TempDir = ".jailsync/tmp"
	res, err := Push(context.Background(), root, []string{"ro/f", "ok"}, d.target(), o)
	if code := codeOf(t, err); code != 23 {
		t.Fatalf("exit %d (%v), want 23\n%s", code, err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"ro/f": Failed, "ok": Sent})
	t.Logf("ro/f: %s", res.Paths[0].Reason)
}
