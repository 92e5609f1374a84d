package detect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/scan"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/fanotify"
)

// TestDetector_MassDeletionAtStart: 180 of 300 indexed files vanished while
// the agent was down (a half-restored backup, a wrong mount). The start-up
// scan stops the detector with ErrMassDelete, and so the agent, before a
// single deletion is reported, unless the operator said so
// (AllowMassDelete), or the share allowed is above what vanished. (A scan
// may always report 100 deletions: the test deletes more.)
func TestDetector_MassDeletionAtStart(t *testing.T) {
	tests := []struct {
		name    string
		allow   bool
		share   float64
		stopped bool
	}{
		{name: "stops at the default share", stopped: true},
		{name: "the operator's word", allow: true},
		{name: "a share above what vanished", share: 0.7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := tmpfs.Mount(t, "size=64m")
			idx := openIndex(t, root)
			rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(rootfd)
			for i := range 300 {
				name := fmt.Sprintf("f%03d", i)
				if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := idx.Update(func(tx *index.Tx) error { return tx.Record(rootfd, name) }); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 180 {
				if err := os.Remove(filepath.Join(root, fmt.Sprintf("f%03d", i))); err != nil {
					t.Fatal(err)
				}
			}
			src, err := fanotify.New(source.Options{Root: root})
			if err != nil {
				t.Fatalf("fanotify is unavailable, the test needs it (root, Linux 5.17): %v", err)
			}
			d := &Detector{Root: root, Index: idx, Source: src, Settle: 100 * time.Millisecond, Incoming: &Incoming{}, Log: logr.Discard(),
				AllowMassDelete: tc.allow, MaxDeleteShare: tc.share}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan change.Change, 1024)
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx, out) }()
			removed := 0
			deadline := time.After(10 * time.Second)
			for {
				select {
				case c := <-out:
					if c.Op.Has(change.Remove) {
						removed++
					}
					if removed == 180 && !tc.stopped {
						cancel()
						<-done
						return
					}
					continue
				case err := <-done:
					if !tc.stopped || !errors.Is(err, scan.ErrMassDelete) {
						t.Fatalf("detector stopped with %v after %d deletions", err, removed)
					}
					if removed != 0 {
						t.Fatalf("%d deletions reported before the stop", removed)
					}
					return
				case <-deadline:
					t.Fatalf("after 10 s: %d deletions reported, detector running (stopped: want %v)", removed, tc.stopped)
				}
			}
		})
	}
}
