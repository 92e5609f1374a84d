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

// TestPush_DiscardedFileIsNotConfirmed: the peer cannot make its temp
// file (its temp directory is immutable here; a full disk or quota does
// the same), so it discards what it received and says so naming only the
// temp file, while the client has logged the file as sent. The file is
// not confirmed (a peer told it arrived would record it, and its absence
// later reads as a deletion); a file the peer found unchanged is.
func TestPush_DiscardedFileIsNotConfirmed(t *testing.T) {
	d := startDaemon(t, 33)
	root := t.TempDir()
	write(t, root, "new", []byte("new content"))
	write(t, root, "same", []byte("same"))
	o := fastOptions()
	o.TempDir = ".jailsync/tmp"
	must(t, os.MkdirAll(d.path(".jailsync/tmp"), 0o700))
	if res, err := Push(context.Background(), root, []string{"same"}, d.target(), o); err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	chattr.Immutable(t, d.path(".jailsync/tmp"))
	res, err := Push(context.Background(), root, []string{"new", "same"}, d.target(), o)
	if code := codeOf(t, err); code != 23 {
		t.Fatalf("exit %d (%v), want 23\n%s", code, err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"new": Unconfirmed, "same": Unchanged})
	if _, err := os.Stat(d.path("new")); err == nil {
		t.Errorf("new is on the peer: the test's premise (a discarded file) does not hold")
	}
	t.Logf("new: %s (%q)", res.Paths[0].Reason, res.Paths[0].Change)
}
