package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTimestampTick: the probe finds the tick of a filesystem that stamps
// files from the kernel's coarse clock (ramfs: no multigrain timestamps,
// one jiffy a tick), answers 0 or a tick of at most maxTick for a
// temporary directory (0 on ext4 and tmpfs with Linux 6.13 or later), and
// leaves no file behind.
func TestTimestampTick(t *testing.T) {
	tests := []struct {
		name     string
		fs       string // mounted on the directory, or "" for none
		min, max time.Duration
	}{
		{name: "a temporary directory", max: maxTick},
		{name: "ramfs, a jiffy a tick", fs: "ramfs", min: time.Nanosecond, max: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.fs != "" {
				if err := unix.Mount("none", dir, tt.fs, 0, ""); err != nil {
					t.Fatalf("mount %s (the test needs root): %v", tt.fs, err)
				}
				t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
			}
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			tick, err := TimestampTick(fd)
			if err != nil {
				t.Fatal(err)
			}
			if tick < tt.min || tick > tt.max {
				t.Errorf("tick %v, want %v to %v", tick, tt.min, tt.max)
			}
			t.Logf("timestamp tick: %v", tick)
			if _, err := os.Lstat(filepath.Join(dir, tickProbe)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the probe file is left: %v", err)
			}
		})
	}
}
