package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/tmpfs"
)

func TestIndex_CheckRoot(t *testing.T) {
	t.Run("adopts a new root, then accepts it again", func(t *testing.T) {
		x, root := openTemp(t), t.TempDir()
		if err := x.CheckRoot(root); err != nil {
			t.Fatalf("first CheckRoot: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, ReservedDir, MarkerFile)); err != nil {
			t.Fatalf("no marker written: %v", err)
		}
		if err := x.CheckRoot(root); err != nil {
			t.Fatalf("second CheckRoot: %v", err)
		}
	})
	t.Run("an unmounted root is refused", func(t *testing.T) {
		x, root := openTemp(t), tmpfs.Mount(t, "size=16m")
		if err := os.WriteFile(filepath.Join(root, "data"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := x.CheckRoot(root); err != nil {
			t.Fatalf("CheckRoot on the mounted root: %v", err)
		}
		if err := unix.Unmount(root, 0); err != nil {
			t.Fatal(err)
		}
		err := x.CheckRoot(root)
		if !errors.Is(err, ErrRootChanged) {
			t.Fatalf("CheckRoot on the bare mount point = %v, want ErrRootChanged", err)
		}
		t.Log(err)
	})
	t.Run("the same filesystem mounted again is accepted", func(t *testing.T) {
		x, root := openTemp(t), t.TempDir()
		if err := x.CheckRoot(root); err != nil {
			t.Fatal(err)
		}
		// A bind mount of the same directory: another mount, same marker.
		other := filepath.Join(t.TempDir(), "again")
		if err := os.Mkdir(other, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(root, other, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount: %v", err)
		}
		t.Cleanup(func() { _ = unix.Unmount(other, unix.MNT_DETACH) })
		if err := x.CheckRoot(other); err != nil {
			t.Fatalf("CheckRoot through a bind mount: %v", err)
		}
	})
	t.Run("a replaced root with another marker is refused", func(t *testing.T) {
		x, root := openTemp(t), t.TempDir()
		if err := x.CheckRoot(root); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, ReservedDir, MarkerFile), []byte("0123\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := x.CheckRoot(root); !errors.Is(err, ErrRootChanged) {
			t.Fatalf("CheckRoot = %v, want ErrRootChanged", err)
		}
	})
	t.Run("a missing root is refused", func(t *testing.T) {
		x := openTemp(t)
		if err := x.CheckRoot(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, ErrRootMissing) {
			t.Fatalf("CheckRoot = %v, want ErrRootMissing", err)
		}
	})
	t.Run("a second agent on the same database is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "index.db")
		x, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		if _, err := Open(path); !errors.Is(err, ErrLocked) {
			t.Fatalf("second Open = %v, want ErrLocked", err)
		}
	})
}

// TestIndex_CheckRoot_newIndexKeepsTheRootsMarker: a second, empty index
// (a start with a wrong --state-dir) adopts the root without replacing its
// marker, so the first index still accepts the root.
func TestIndex_CheckRoot_newIndexKeepsTheRootsMarker(t *testing.T) {
	first, second, root := openTemp(t), openTemp(t), t.TempDir()
	if err := first.CheckRoot(root); err != nil {
		t.Fatal(err)
	}
	marker, err := os.ReadFile(filepath.Join(root, ReservedDir, MarkerFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := second.CheckRoot(root); err != nil {
		t.Fatalf("an empty index adopting a marked root: %v", err)
	}
	after, err := os.ReadFile(filepath.Join(root, ReservedDir, MarkerFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(marker) {
		t.Errorf("marker rewritten: %q, was %q", after, marker)
	}
	if err := first.CheckRoot(root); err != nil {
		t.Errorf("the first index refuses its root after a second adopted it: %v", err)
	}
}
