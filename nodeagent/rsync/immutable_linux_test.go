package rsync

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h (chattr +i).
const fsImmutableFL = 0x10

// TestDelete_FailureInsideADirectoryIsThatDirectorysFailure: an immutable
// file on the peer keeps its directory; rsync names the file, not the
// listed directory, and the directory is reported failed.
func TestDelete_FailureInsideADirectoryIsThatDirectorysFailure(t *testing.T) {
	d := startDaemon(t, 13)
	root := t.TempDir()
	write(t, d.dir, "locked/stuck", []byte("x"))
	write(t, d.dir, "free", []byte("y"))
	immutable(t, d.path("locked/stuck"))
	res, err := Delete(context.Background(), root, []string{"locked", "free"}, d.target(), fastOptions())
	if code := codeOf(t, err); code != 23 {
		t.Fatalf("exit %d (%v), want 23\n%s", code, err, res.Stderr)
	}
	if res.Class != FatalFile {
		t.Errorf("class %v, want fatal-file", res.Class)
	}
	wantOutcomes(t, res, map[string]Outcome{"locked": Failed, "free": Deleted})
	t.Logf("locked: %s", res.Paths[0].Reason)
}

// immutable sets the immutable flag on path (FS_IOC_SETFLAGS) and clears
// it at cleanup, before the temporary directory is removed.
func immutable(t *testing.T, path string) {
	t.Helper()
	set := func(on bool) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err != nil {
			return err
		}
		if on {
			flags |= fsImmutableFL
		} else {
			flags &^= fsImmutableFL
		}
		return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
	}
	if err := set(true); err != nil {
		t.Fatalf("set immutable flag on %s (the test needs a filesystem with chattr +i, such as ext4): %v", path, err)
	}
	t.Cleanup(func() {
		if err := set(false); err != nil {
			t.Errorf("clear immutable flag: %v", err)
		}
	})
}

// TestPush_ReceiverFailureIsPinnedOnThePath: the peer cannot replace an
// immutable file; rsync still itemizes it as sent, then names it in an
// error line, and only that path is Failed.
func TestPush_ReceiverFailureIsPinnedOnThePath(t *testing.T) {
	d := startDaemon(t, 14)
	root := t.TempDir()
	write(t, root, "ro/f", []byte("new content"))
	write(t, root, "ok", []byte("fine"))
	write(t, d.dir, "ro/f", []byte("old"))
	immutable(t, d.path("ro/f"))
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
