package tmpfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs with the given mount options (such as "size=64m")
// on a new directory and returns it. The test fails (never skips) when it
// cannot: the tests need root.
func Mount(t testing.TB, options string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("jailsync-test", dir, "tmpfs", 0, options); err != nil {
		t.Fatalf("mount tmpfs on %s (the tests need root): %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}
