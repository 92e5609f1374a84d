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

// TestGroup_prepareReserved: at start the reserved directory, where the
// daemon puts its temp files (rsyncd.TempDir), is emptied of what a killed
// receiver left (rsync's temp files would otherwise pile up) and of the
// temp directory of older agents, and made 0700; the root's marker and
// directories of other names are kept. Partial files younger than the
// limit are kept for the next attempt to resume from, older ones and
// anything that is not a regular file are removed. A link planted in the
// reserved directory, or in place of the partial directory, is removed,
// never followed out of the root; one in place of the reserved directory
// is refused.
func TestGroup_prepareReserved(t *testing.T) {
	res := func(root string, names ...string) string {
		return filepath.Join(append([]string{root, index.ReservedDir}, names...)...)
	}
	tests := []struct {
		name   string
		maxAge time.Duration
		plant  func(t *testing.T, root, outside string)
		kept   []string // left in the partial directory
		// reserved is what the reserved directory holds after, when not
		// only the partial directory and the marker.
		reserved []string
		// refused: prepareReserved fails, and touches nothing outside.
		refused bool
	}{
		{name: "a fresh root", maxAge: partialMaxAge},
		{name: "leftovers of a killed receiver", maxAge: partialMaxAge, plant: func(t *testing.T, root, outside string) {
			write(t, res(root, "f.AbC123"))
			write(t, res(root, ".g.XyZ789"))
			if err := os.Symlink(outside, res(root, "out")); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(root, rsyncd.PartialDir, "big.iso"))
			write(t, filepath.Join(root, rsyncd.PartialDir, "sub", "x"))
			if err := os.Symlink(outside, filepath.Join(root, rsyncd.PartialDir, "link")); err != nil {
				t.Fatal(err)
			}
		}, kept: []string{"big.iso"}},
		{name: "an older agent's temp directory", maxAge: partialMaxAge, plant: func(t *testing.T, root, outside string) {
			write(t, res(root, legacyTempDir, ".f.AbC123"))
			if err := os.MkdirAll(res(root, legacyTempDir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, res(root, legacyTempDir, "sub", "out")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a directory of another name", maxAge: partialMaxAge, plant: func(t *testing.T, root, _ string) {
			write(t, res(root, "other", "x"))
		}, reserved: []string{"other", "partial", index.MarkerFile}},
		{name: "partial files past the limit", maxAge: time.Nanosecond, plant: func(t *testing.T, root, _ string) {
			write(t, filepath.Join(root, rsyncd.PartialDir, "big.iso"))
			time.Sleep(time.Millisecond)
		}},
		{name: "links to outside in place of the partial and the old temp directory", maxAge: partialMaxAge, plant: func(t *testing.T, root, outside string) {
			for _, d := range []string{res(root, legacyTempDir), filepath.Join(root, rsyncd.PartialDir)} {
				if err := os.Symlink(outside, d); err != nil {
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
			write(t, filepath.Join(outside, "keep"))
			marker := res(root, index.MarkerFile)
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
			reserved := tc.reserved
			if reserved == nil {
				reserved = []string{"partial", index.MarkerFile}
			}
			for _, d := range []struct {
				dir  string
				want []string
			}{{dir: rsyncd.TempDir, want: reserved}, {dir: rsyncd.PartialDir, want: tc.kept}} {
				p := filepath.Join(root, d.dir)
				st, err := os.Lstat(p)
				if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
					t.Fatalf("%s: %v, %v; want a 0700 directory", d.dir, st, err)
				}
				des, err := os.ReadDir(p)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, de := range des {
					names = append(names, de.Name())
				}
				if !slices.Equal(names, d.want) {
					t.Errorf("%s holds %q; want %q", d.dir, names, d.want)
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
