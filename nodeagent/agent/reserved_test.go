package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// TestGroup_prepareReserved: at start the temp directory is emptied of
// what a killed receiver left (rsync's temp files would otherwise pile
// up); partial files younger than the limit are kept for the next attempt
// to resume from, older ones and anything that is not a regular file are
// removed; the rest of the reserved directory (the root's marker) is kept,
// and a link planted in place of either directory is removed, never
// followed out of the root.
func TestGroup_prepareReserved(t *testing.T) {
	tests := []struct {
		name   string
		maxAge time.Duration
		plant  func(t *testing.T, root, outside string)
		kept   []string // left in the partial directory
		// refused: prepareReserved fails, and touches nothing outside.
		refused bool
	}{
		{name: "a fresh root", maxAge: partialMaxAge},
		{name: "leftovers of a killed receiver", maxAge: partialMaxAge, plant: func(t *testing.T, root, outside string) {
			write(t, filepath.Join(root, rsyncd.TempDir, ".f.AbC123"))
			write(t, filepath.Join(root, rsyncd.TempDir, "sub", ".g.XyZ789"))
			write(t, filepath.Join(root, rsyncd.PartialDir, "big.iso"))
			write(t, filepath.Join(root, rsyncd.PartialDir, "sub", "x"))
			if err := os.Symlink(outside, filepath.Join(root, rsyncd.PartialDir, "link")); err != nil {
				t.Fatal(err)
			}
		}, kept: []string{"big.iso"}},
		{name: "partial files past the limit", maxAge: time.Nanosecond, plant: func(t *testing.T, root, _ string) {
			write(t, filepath.Join(root, rsyncd.PartialDir, "big.iso"))
			time.Sleep(time.Millisecond)
		}},
		{name: "links to outside in their place", maxAge: partialMaxAge, plant: func(t *testing.T, root, outside string) {
			if err := os.MkdirAll(filepath.Join(root, index.ReservedDir), 0o700); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{rsyncd.TempDir, rsyncd.PartialDir} {
				if err := os.Symlink(outside, filepath.Join(root, d)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "the reserved directory swapped for a link to outside", maxAge: partialMaxAge, refused: true, plant: func(t *testing.T, root, outside string) {
			write(t, filepath.Join(outside, "tmp", "keep"))
			if err := os.Rename(filepath.Join(root, index.ReservedDir), filepath.Join(root, "moved")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(root, index.ReservedDir)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a link to outside inside the temp directory", maxAge: partialMaxAge, plant: func(t *testing.T, root, outside string) {
			if err := os.MkdirAll(filepath.Join(root, rsyncd.TempDir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(root, rsyncd.TempDir, "sub", "out")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
			write(t, filepath.Join(outside, "keep"))
			marker := filepath.Join(root, index.ReservedDir, "marker")
			write(t, marker)
			if tc.plant != nil {
				tc.plant(t, root, outside)
			}
			rootfd, err := beneath.OpenRoot(root)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(rootfd)
			g := &group{root: root, rootfd: rootfd}
			err = g.prepareReserved(tc.maxAge)
			if tc.refused {
				if err == nil {
					t.Error("prepareReserved went through a link in place of the reserved directory")
				}
				for _, p := range []string{filepath.Join(outside, "keep"), filepath.Join(outside, "tmp", "keep")} {
					if _, err := os.Stat(p); err != nil {
						t.Errorf("%s is gone: %v", p, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{rsyncd.TempDir, rsyncd.PartialDir} {
				p := filepath.Join(root, d)
				st, err := os.Lstat(p)
				if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
					t.Fatalf("%s: %v, %v; want a 0700 directory", d, st, err)
				}
				des, err := os.ReadDir(p)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, de := range des {
					names = append(names, de.Name())
				}
				want := tc.kept
				if d == rsyncd.TempDir {
					want = nil
				}
				if !slices.Equal(names, want) {
					t.Errorf("%s holds %q; want %q", d, names, want)
				}
			}
			for _, p := range []string{marker, filepath.Join(outside, "keep")} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s is gone: %v", p, err)
				}
			}
		})
	}
}

func write(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}
