//go:build linux

package fanotify

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// handleOf returns the file identifier of path as fanotify reports it
// (with a zero fsid: one filesystem per test).
func handleOf(t *testing.T, path string) fid {
	t.Helper()
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
	if err != nil {
		t.Fatalf("name_to_handle_at %s: %v", path, err)
	}
	return fid{key: appendKey(nil, make([]byte, fsidLen), h), typ: h.Type(), handle: h.Bytes()}
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

// TestDirCache_move: a directory's rename moves its entry and those below
// it, and drops what was at or below the new name; nothing else changes.
func TestDirCache_move(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     []string // the paths of /a, /a/b, /a/b/c, /ab, /x, /x/y
	}{
		{name: "to a free name", old: "/a", new: "/n", want: []string{"/n", "/n/b", "/n/b/c", "/ab", "/x", "/x/y"}},
		{name: "below", old: "/a/b", new: "/ab/b", want: []string{"/a", "/ab/b", "/ab/b/c", "/ab", "/x", "/x/y"}},
		{name: "over a directory held", old: "/a", new: "/x", want: []string{"/x", "/x/b", "/x/b/c", "/ab", "", ""}},
		{name: "one not held", old: "/q", new: "/x", want: []string{"/a", "/a/b", "/a/b/c", "/ab", "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newDirCache()
			for i, p := range []string{"/a", "/a/b", "/a/b/c", "/ab", "/x", "/x/y"} {
				c.put([]byte{byte(i)}, p)
			}
			c.move(tc.old, tc.new)
			var got []string
			for i := range 6 {
				p, _ := c.get([]byte{byte(i)})
				got = append(got, p)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("after move(%s, %s): %q, want %q", tc.old, tc.new, got, tc.want)
			}
		})
	}
}

// TestResolver_asCached: a directory the cache does not hold is resolved
// as it is when its event is read, and then rebased on the nearest cached
// directory above it, whose path is the one the events read so far knew.
func TestResolver_asCached(t *testing.T) {
	tests := []struct {
		name    string
		dirs    []string // made under the root
		cached  []string // resolved (and cached) before the renames
		renames [][2]string
		forget  []string // the renames' events, read so far
		of      string   // the directory resolved, by its path before the renames
		want    string
		// between are the directories between of and the nearest
		// cached one, by their paths before the renames, and the
		// paths the cache holds them at after of's resolution.
		between map[string]string
	}{{
		name:    "a directory above renamed since, its event not read yet",
		dirs:    []string{"s/d"},
		cached:  []string{"s"},
		renames: [][2]string{{"s", "v"}},
		of:      "s/d", want: "s/d",
	}, {
		name:    "two levels below the cached directory",
		dirs:    []string{"s/m/d"},
		cached:  []string{"s"},
		renames: [][2]string{{"s", "v"}},
		of:      "s/m/d", want: "s/m/d",
		between: map[string]string{"s/m": "s/m"},
	}, {
		name:    "the rename's event read: as it is now",
		dirs:    []string{"s/d"},
		cached:  []string{"s"},
		renames: [][2]string{{"s", "v"}},
		forget:  []string{"s", "v"},
		of:      "s/d", want: "v/d",
	}, {
		name:    "nothing above cached: as it is now",
		dirs:    []string{"s/d"},
		renames: [][2]string{{"s", "v"}},
		of:      "s/d", want: "v/d",
		between: map[string]string{"s": "v"},
	}, {
		name:    "nothing above cached, three levels down",
		dirs:    []string{"s/m/n/d"},
		renames: [][2]string{{"s/m", "s/k"}},
		of:      "s/m/n/d", want: "s/k/n/d",
		between: map[string]string{"s": "s", "s/m": "s/k", "s/m/n": "s/k/n"},
	}, {
		name:   "nothing renamed",
		dirs:   []string{"s/d"},
		cached: []string{"s"},
		of:     "s/d", want: "s/d",
	}, {
		// The swap of the stress test's seed 372: d moved into s, whose
		// swap with u was not read yet.
		name:    "moved into a directory that was swapped since",
		dirs:    []string{"t/d", "s", "u"},
		cached:  []string{"s", "t", "u"},
		renames: [][2]string{{"t/d", "s/d"}, {"s", "tmp"}, {"u", "s"}, {"tmp", "u"}},
		forget:  []string{"t/d", "s/d"},
		of:      "t/d", want: "s/d",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(mountTmpfs(t), "root")
			for _, d := range tt.dirs {
				must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
			}
			r := newTestResolver(t, root)
			for _, d := range tt.cached {
				if p, res := r.dirPath(handleOf(t, filepath.Join(root, d))); res != resolved || p != filepath.Join(root, d) {
					t.Fatalf("resolving %s: %q %d", d, p, res)
				}
			}
			of := handleOf(t, filepath.Join(root, tt.of))
			between := make(map[string]fid)
			for d := range tt.between {
				between[d] = handleOf(t, filepath.Join(root, d))
			}
			for _, rn := range tt.renames {
				must(t, os.Rename(filepath.Join(root, rn[0]), filepath.Join(root, rn[1])))
			}
			for _, p := range tt.forget {
				r.cache.forget(filepath.Join(root, p))
			}
			if p, res := r.dirPath(of); res != resolved || p != filepath.Join(root, tt.want) {
				t.Errorf("dirPath(%s) = %q %d, want %q", tt.of, p, res, filepath.Join(root, tt.want))
			}
			for d, want := range tt.between {
				if p, ok := r.cache.get(between[d].key); !ok || p != filepath.Join(root, want) {
					t.Errorf("cached %s after dirPath(%s): %q %t, want %q", d, tt.of, p, ok, filepath.Join(root, want))
				}
			}
		})
	}
}
