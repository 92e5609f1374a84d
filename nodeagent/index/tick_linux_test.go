package index

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTimestampTick_coarse: ramfs stamps files from the kernel's coarse
// clock (no multigrain timestamps), one jiffy a tick (1-10 ms): the probe
// finds that tick, which the racy rule's window is made of.
func TestTimestampTick_coarse(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("none", dir, "ramfs", 0, ""); err != nil {
		t.Fatalf("mount ramfs (the test needs root): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tick, err := TimestampTick(fd)
	if err != nil {
		t.Fatal(err)
	}
	if tick <= 0 || tick > 50*time.Millisecond {
		t.Errorf("ramfs tick %v, want a jiffy (1-10 ms)", tick)
	}
}
