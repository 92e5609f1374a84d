package rsync

import (
	"context"
	"os"
	"testing"

	"github.com/jailsync/jailsync/internal/chattr"
)

// TestPush_ReceiverFailureIsPinnedOnThePath: the peer cannot replace an
// immutable file; rsync still itemizes it as sent, then names it in an
// error line, and only that path is Failed. The line names the file's temp
// file too, which a crafted name can make read as another listed path
// (TestPush_aDiscardedFileNamedLikeAnother): the file sent beside it is
// not confirmed in this run, and is in the next, found unchanged.
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
	wantOutcomes(t, res, map[string]Outcome{"ro/f": Failed, "ok": Unconfirmed})
	t.Logf("ro/f: %s", res.Paths[0].Reason)
	res, err = Push(context.Background(), root, []string{"ok"}, d.target(), o)
	if err != nil {
		t.Fatalf("the next run: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"ok": Unchanged})
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

// TestPush_aDiscardedFileNamedLikeAnother: the peer cannot make the temp
// file of a file whose name holds quotes and another listed name
// (x" "same" "y); rsync's error names only the temp file, and can be read
// to name "same". Neither is confirmed: before, "same" took the failure
// and the discarded file passed for sent (found by a review).
func TestPush_aDiscardedFileNamedLikeAnother(t *testing.T) {
	d := startDaemon(t, 34)
	root := t.TempDir()
	crafted := `x" "same" "y`
	write(t, root, crafted, []byte("new content"))
	write(t, root, "same", []byte("same"))
	o := fastOptions()
	o.TempDir = "/.jailsync/tmp"
	must(t, os.MkdirAll(d.path(".jailsync/tmp"), 0o700))
	if res, err := Push(context.Background(), root, []string{"same"}, d.target(), o); err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	chattr.Immutable(t, d.path(".jailsync/tmp"))
	res, err := Push(context.Background(), root, []string{crafted, "same"}, d.target(), o)
	if code := codeOf(t, err); code != 23 {
		t.Fatalf("exit %d (%v), want 23\n%s", code, err, res.Stderr)
	}
	if _, err := os.Lstat(d.path(crafted)); err == nil {
		t.Fatalf("%q is on the peer: the test's premise (a discarded file) does not hold", crafted)
	}
	if o := res.Paths[0].Outcome; o.Done() {
		t.Errorf("%q, discarded by the peer, is %v\n%s", crafted, o, res.Stderr)
	}
}

// TestPush_aFailureBelowAListedDirectory: without a temp directory the
// temp file is made beside the file, and the peer's error names only it
// (d/.f.XXXXXX), read as the listed directory d's failure: d/f, which the
// peer discarded, is not confirmed either.
func TestPush_aFailureBelowAListedDirectory(t *testing.T) {
	d := startDaemon(t, 35)
	root := t.TempDir()
	write(t, root, "d/f", []byte("new content"))
	o := fastOptions()
	if res, err := Push(context.Background(), root, []string{"d"}, d.target(), o); err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	chattr.Immutable(t, d.path("d"))
	res, err := Push(context.Background(), root, []string{"d", "d/f"}, d.target(), o)
	if code := codeOf(t, err); code != 23 {
		t.Fatalf("exit %d (%v), want 23\n%s", code, err, res.Stderr)
	}
	if _, err := os.Lstat(d.path("d/f")); err == nil {
		t.Fatal("d/f is on the peer: the test's premise (a discarded file) does not hold")
	}
	if o := res.Paths[1].Outcome; o.Done() {
		t.Errorf("d/f, discarded by the peer, is %v\n%s", o, res.Stderr)
	}
}
