package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/receiver"
)

// serveReceiver serves a real receiver on the peer's root as the peer's
// endpoint, so that renames are applied there as the agent applies them.
func serveReceiver(t *testing.T, r *rig, port uint16) {
	t.Helper()
	fd, err := unix.Open(r.peerRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	idx, err := index.Open(filepath.Join(t.TempDir(), "peer-index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	serveHandler(t, r, &receiver.Receiver{RootFD: fd, Index: idx, Held: &detect.Incoming{}, Log: testr.New(t)}, port)
}

// inodeOf returns the inode of path, 0 when it does not exist.
func inodeOf(path string) uint64 {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestSender_Start_aRenameIntoADirectoryMadeInTheSameRun: mkdir n; mv d
// n/d, both in one run. The peer applies the rename (its files keep their
// inodes: nothing is sent again) into the directory made there first.
// Before, it refused the rename (no directory n yet), and every file of d
// went again as content.
func TestSender_Start_aRenameIntoADirectoryMadeInTheSameRun(t *testing.T) {
	const files = 10
	r := newRig(t, 27)
	serveReceiver(t, r, basePort+58)
	mtime := time.Unix(1_700_000_000, 0)
	paths := []string{"d"}
	for _, root := range []string{r.root, r.peerRoot} {
		if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range files {
		p := fmt.Sprintf("d/f%d", i)
		for _, root := range []string{r.root, r.peerRoot} {
			if err := os.WriteFile(filepath.Join(root, p), []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(root, p), mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		paths = append(paths, p)
	}
	r.settle(paths...)
	before := make([]uint64, files)
	for i := range files {
		before[i] = inodeOf(filepath.Join(r.peerRoot, fmt.Sprintf("d/f%d", i)))
	}
	if err := os.Mkdir(filepath.Join(r.root, "n"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(r.root, "d"), filepath.Join(r.root, "n/d")); err != nil {
		t.Fatal(err)
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{
		{Path: "n", Op: change.Mkdir, Finished: true},
		{Path: "n/d", OldPath: "d", Op: change.Rename, Finished: true},
	}); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.untilNothingPending()
	if _, err := os.Lstat(filepath.Join(r.peerRoot, "d")); err == nil {
		t.Error("d is still on the peer")
	}
	if st, err := os.Stat(filepath.Join(r.peerRoot, "n")); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("n on the peer: %v, %v; want a directory of mode 0750", st, err)
	}
	resent := 0
	for i := range files {
		if got := inodeOf(filepath.Join(r.peerRoot, fmt.Sprintf("n/d/f%d", i))); got != before[i] {
			resent++
		}
	}
	if resent != 0 {
		t.Errorf("%d of %d files of d sent again (or missing) on the peer, instead of renamed into n", resent, files)
	}
}
