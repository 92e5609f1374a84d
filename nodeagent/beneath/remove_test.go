package beneath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRemoveAllAt: a tree goes whole, a file and a missing name are no
// error, and a symlink is removed, never followed: what it points to
// stays.
func TestRemoveAllAt(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, root, outside string)
	}{
		{"a tree", func(t *testing.T, root, _ string) {
			mustMkdir(t, filepath.Join(root, "x", "a", "b"))
			mustWrite(t, filepath.Join(root, "x", "a", "b", "f"))
			mustWrite(t, filepath.Join(root, "x", "g"))
		}},
		{"a file", func(t *testing.T, root, _ string) { mustWrite(t, filepath.Join(root, "x")) }},
		{"nothing", func(*testing.T, string, string) {}},
		{"a symlink to a directory", func(t *testing.T, root, outside string) {
			if err := os.Symlink(outside, filepath.Join(root, "x")); err != nil {
				t.Fatal(err)
			}
		}},
		{"a tree with a symlink to a directory in it", func(t *testing.T, root, outside string) {
			mustMkdir(t, filepath.Join(root, "x"))
			if err := os.Symlink(outside, filepath.Join(root, "x", "l")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			mustWrite(t, filepath.Join(outside, "kept"))
			tc.make(t, root, outside)
			fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if err := RemoveAllAt(fd, "x"); err != nil {
				t.Fatalf("RemoveAllAt: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(root, "x")); !os.IsNotExist(err) {
				t.Errorf("x after RemoveAllAt: %v, want gone", err)
			}
			if _, err := os.Stat(filepath.Join(outside, "kept")); err != nil {
				t.Errorf("what a symlink points to was touched: %v", err)
			}
		})
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveEmptyDirKeepingTimes: an empty directory goes, and the times
// of the directory above stay as they were; a directory with an entry,
// a file, a symlink to an empty directory and a directory reached through
// a symlink stay, each with an error.
func TestRemoveEmptyDirKeepingTimes(t *testing.T) {
	for _, tc := range []struct {
		name, rel string
		make      func(t *testing.T, root, outside string)
		removed   bool
	}{
		{"an empty directory", "a/e", func(t *testing.T, root, _ string) { mustMkdir(t, filepath.Join(root, "a", "e")) }, true},
		{"a directory with a file", "a", func(t *testing.T, root, _ string) {
			mustMkdir(t, filepath.Join(root, "a"))
			mustWrite(t, filepath.Join(root, "a", "f"))
		}, false},
		{"a file", "f", func(t *testing.T, root, _ string) { mustWrite(t, filepath.Join(root, "f")) }, false},
		{"a symlink to an empty directory", "l", func(t *testing.T, root, outside string) {
			mustMkdir(t, filepath.Join(outside, "e"))
			if err := os.Symlink(filepath.Join(outside, "e"), filepath.Join(root, "l")); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"an empty directory through a symlink", "l/e", func(t *testing.T, root, outside string) {
			mustMkdir(t, filepath.Join(outside, "e"))
			if err := os.Symlink(outside, filepath.Join(root, "l")); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		for _, remove := range []struct {
			name      string
			fn        func(rootfd int, rel string) error
			keepTimes bool
		}{
			{"RemoveEmptyDirKeepingTimes", RemoveEmptyDirKeepingTimes, true},
		} {
			t.Run(remove.name+"/"+tc.name, func(t *testing.T) {
				root, outside := t.TempDir(), t.TempDir()
				tc.make(t, root, outside)
				// The directory above, with times a run set.
				parent := filepath.Dir(filepath.Join(root, tc.rel))
				set := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
				if err := os.Chtimes(parent, set, set); err != nil {
					t.Fatal(err)
				}
				rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(rootfd)
				err = remove.fn(rootfd, tc.rel)
				_, lerr := os.Lstat(filepath.Join(root, tc.rel))
				gone := os.IsNotExist(lerr)
				if gone != tc.removed || (err == nil) != tc.removed {
					t.Errorf("%s(%q): err %v, gone %v; want removed %v", remove.name, tc.rel, err, gone, tc.removed)
				}
				if _, err := os.Lstat(filepath.Join(outside, "e")); strings.HasPrefix(tc.rel, "l") && err != nil {
					t.Errorf("%s: the directory the symlink leads to went: %v", tc.rel, err)
				}
				if st, err := os.Lstat(parent); err == nil && remove.keepTimes && tc.removed && !st.ModTime().Equal(set) {
					t.Errorf("%s(%q): the directory above has mtime %v, want %v as before", remove.name, tc.rel, st.ModTime(), set)
				}
			})
		}
	}
}
