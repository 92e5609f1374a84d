//go:build linux

package fanotify

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// handleOf returns the file identifier of path as fanotify reports it
// (the fsid is left out of the key: one filesystem per test).
func handleOf(t *testing.T, path string) fid {
	t.Helper()
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
	if err != nil {
		t.Fatalf("name_to_handle_at %s: %v", path, err)
	}
	key := binary.NativeEndian.AppendUint32(nil, uint32(h.Type()))
	return fid{key: append(key, h.Bytes()...), typ: h.Type(), handle: h.Bytes()}
}

func newTestResolver(t *testing.T, root string) *resolver {
	t.Helper()
	mount, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(mount) })
	return &resolver{mount: mount, root: root, cache: newDirCache(), link: make([]byte, unix.PathMax+1)}
}

func TestResolver_dirPath(t *testing.T) {
	fs := mountTmpfs(t)
	root := filepath.Join(fs, "root")
	must(t, os.MkdirAll(filepath.Join(root, "a/b"), 0o755))
	r := newTestResolver(t, root)

	b := handleOf(t, filepath.Join(root, "a/b"))
	if p, res := r.dirPath(b); res != resolved || p != filepath.Join(root, "a/b") {
		t.Fatalf("live directory: %q %d", p, res)
	}

	// Renamed: the cache keeps the path the events read so far knew,
	// until the rename's own event makes it forget.
	must(t, os.Rename(filepath.Join(root, "a"), filepath.Join(root, "c")))
	if p, _ := r.dirPath(b); p != filepath.Join(root, "a/b") {
		t.Errorf("cached path after rename %q, want the old one", p)
	}
	r.cache.forget(filepath.Join(root, "a"))
	if p, res := r.dirPath(b); res != resolved || p != filepath.Join(root, "c/b") {
		t.Errorf("after forget: %q %d, want the new path", p, res)
	}

	// Removed: its handle is stale.
	must(t, os.Mkdir(filepath.Join(root, "gone"), 0o755))
	g := handleOf(t, filepath.Join(root, "gone"))
	must(t, os.Remove(filepath.Join(root, "gone")))
	if p, res := r.dirPath(g); res != gone {
		t.Errorf("removed directory: %q %d, want gone", p, res)
	}

	// Removed but still open: the handle opens, the path is not its own.
	must(t, os.Mkdir(filepath.Join(root, "held"), 0o755))
	held, err := os.Open(filepath.Join(root, "held"))
	must(t, err)
	defer held.Close()
	h := handleOf(t, filepath.Join(root, "held"))
	must(t, os.Remove(filepath.Join(root, "held")))
	if p, res := r.dirPath(h); res != gone {
		t.Errorf("removed directory held open: %q %d, want gone", p, res)
	}
}

// TestResolver_bindMount resolves through a bind mount of a subdirectory:
// a directory of the same filesystem outside it is outside the root.
func TestResolver_bindMount(t *testing.T) {
	fs := mountTmpfs(t)
	must(t, os.MkdirAll(filepath.Join(fs, "data/in"), 0o755))
	must(t, os.MkdirAll(filepath.Join(fs, "other/data/in"), 0o755))
	root := t.TempDir()
	if err := unix.Mount(filepath.Join(fs, "data"), root, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	r := newTestResolver(t, root)

	if p, res := r.dirPath(handleOf(t, filepath.Join(fs, "data/in"))); res != resolved || p != filepath.Join(root, "in") {
		t.Errorf("directory inside the bind mount: %q %d, want %q", p, res, filepath.Join(root, "in"))
	}
	if p, res := r.dirPath(handleOf(t, filepath.Join(fs, "other/data/in"))); res != gone {
		t.Errorf("directory outside the bind mount: %q %d, want gone", p, res)
	}
}

func TestDirCache_forget(t *testing.T) {
	c := newDirCache()
	for i, p := range []string{"/a", "/a/b", "/a/b/c", "/ab", "/b"} {
		c.put([]byte{byte(i)}, p)
	}
	c.forget("/a")
	var left []string
	for i := range 5 {
		if p, ok := c.get([]byte{byte(i)}); ok {
			left = append(left, p)
		}
	}
	if len(left) != 2 || left[0] != "/ab" || left[1] != "/b" {
		t.Errorf("after forget(/a): %q, want [/ab /b]", left)
	}
	c.forget("/")
	if len(c.paths) != 0 {
		t.Errorf("after forget(/): %d entries left", len(c.paths))
	}
}
