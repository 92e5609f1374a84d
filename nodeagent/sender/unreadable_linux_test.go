//go:build linux

package sender

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

// noFreeDescriptor takes every descriptor below a low RLIMIT_NOFILE (a
// little above fd), so that the next open fails with EMFILE, and returns
// what gives them back. Calls that need no new descriptor (fstatat on an
// open directory) still work.
func noFreeDescriptor(t *testing.T, fd int) (restore func()) {
	t.Helper()
	var was unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &was); err != nil {
		t.Fatal(err)
	}
	low := was
	low.Cur = uint64(fd) + 64
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var taken []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		taken = append(taken, fd)
	}
	return func() {
		for _, fd := range taken {
			unix.Close(fd)
		}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &was); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPlan_pathsThatCannotBeLookedAtNow: a path whose lstat fails (here
// out of descriptors: opening its directory gets EMFILE) is held as a
// failure and planned again after a backoff; confirmed, its change would
// be lost, since the index holds its new state already. A name no call
// takes (a component over 255 bytes) is skipped.
func TestPlan_pathsThatCannotBeLookedAtNow(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dir", "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	tooLong := strings.Repeat("n", 300)
	entries := []journal.Entry{{Path: "dir/file", Op: change.Write}, {Path: tooLong, Op: change.Write}}

	restore := noFreeDescriptor(t, rootfd)
	b := plan(rootfd, entries)
	restore()
	var unreadable []string
	for _, f := range b.unreadable {
		unreadable = append(unreadable, f.Entry.Path)
	}
	if !slices.Equal(unreadable, []string{"dir/file"}) {
		t.Errorf("unreadable %q, want dir/file (unlisted: %q)", unreadable, b.unlisted)
	}
	if got := pathsOf(b.skipped); !slices.Equal(got, []string{tooLong}) {
		t.Errorf("skipped %.40q, want the name too long", got)
	}
	if len(b.sends) != 0 {
		t.Errorf("sends %q", pathsOf(b.sends))
	}
}

// TestSender_next_movesPastUnreadablePaths: the oldest pending path cannot
// be looked at (opening its directory fails: no descriptor is free); it is
// held as a failure and next takes the entries behind it at once, instead
// of stopping the peer's queue at it.
func TestSender_next_movesPastUnreadablePaths(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dir/a", "b"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rootfd, j := openJournal(t, root)
	ch := []change.Change{{Path: "dir/a", Op: change.Create | change.Write, Finished: true}, {Path: "b", Op: change.Create | change.Write, Finished: true}}
	if err := j.Record(rootfd, []string{"peer"}, ch); err != nil {
		t.Fatal(err)
	}
	s := &Sender{Peer: "peer", Journal: j, BatchFiles: 1, Log: logr.Discard()}
	s.defaults()

	// No descriptor free: "dir" cannot be opened; "b", in the root, is
	// looked at through the root's descriptor.
	restore := noFreeDescriptor(t, rootfd)
	b, ok := s.next(rootfd)
	restore()
	if got := pathsOf(b.sends); !ok || !slices.Equal(got, []string{"b"}) {
		t.Errorf("next = %q, %v; want b, the entry behind the unreadable one", got, ok)
	}
	if _, held := s.held["dir/a"]; !held {
		t.Error("dir/a is not held as failing")
	}
}
