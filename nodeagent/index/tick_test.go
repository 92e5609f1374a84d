package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTimestampTick: the probe answers for the filesystem of a temporary
// directory (0 where it has nanosecond or multigrain timestamps, else a
// tick of at most maxTick) and leaves no file behind. A coarse one:
// TestTimestampTick_coarse.
func TestTimestampTick(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tick, err := TimestampTick(fd)
	if err != nil {
		t.Fatal(err)
	}
	if tick < 0 || tick > maxTick {
		t.Errorf("tick %v, want 0 or up to %v", tick, maxTick)
	}
	t.Logf("timestamp tick of %s: %v", dir, tick)
	if _, err := os.Lstat(filepath.Join(dir, tickProbe)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the probe file is left: %v", err)
	}
}
