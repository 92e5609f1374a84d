package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// TestSender_Start_aFileThePeerCannotHoldWaitsAlone: a file larger than
// the peer's filesystem can take (a 1 MiB tmpfs here) makes rsync end its
// run with a file I/O error (exit 11); the file waits with its own backoff
// (an hour here) and a file written after it reaches the peer at once.
// Before, exit 11 backed off the whole peer, for an hour here.
func TestSender_Start_aFileThePeerCannotHoldWaitsAlone(t *testing.T) {
	r := newRig(t, 52)
	if err := unix.Mount("jailsync-test", r.peerRoot, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(r.peerRoot, unix.MNT_DETACH) })
	if err := os.MkdirAll(filepath.Join(r.peerRoot, rsyncd.TempDir), 0o700); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.write("big", string(make([]byte, 2<<20)))
	poll.Until(t, 20*time.Second, func() error {
		for _, run := range r.reported() {
			if run.Exited && run.Code == 11 {
				return nil
			}
		}
		return errNotYet("big's run, ended with exit 11")
	})
	r.write("small", "fits")
	poll.Until(t, 20*time.Second, func() error {
		if data, err := os.ReadFile(filepath.Join(r.peerRoot, "small")); err != nil || string(data) != "fits" {
			return errNotYet("small on the peer")
		}
		return nil
	})
	if _, err := os.Lstat(filepath.Join(r.peerRoot, "big")); err == nil {
		t.Error("big is on the peer: the test's premise (a file the peer cannot hold) does not hold")
	}
	// small is on the peer before its run is done with it (rsync exits,
	// the run confirms and then marks it done): polled, not read once.
	poll.Until(t, 10*time.Second, func() error {
		if st := r.journal.Stats("peer"); st.Files != 1 {
			return errNotYet(fmt.Sprintf("%d paths pending, want big's alone", st.Files))
		}
		if _, pending, err := r.journal.Entry("peer", "big"); err != nil || !pending {
			return errNotYet(fmt.Sprintf("big not pending (%v)", err))
		}
		return nil
	})
}
