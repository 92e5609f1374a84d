package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// TestGroup_prepareReserved: at start the temp and partial directories are
// emptied of what a killed receiver left (rsync's temp files would
// otherwise pile up, and a stale partial file could become a later
// transfer's basis), the rest of the reserved directory (the root's
// marker) is kept, and a link planted in their place is removed, never
// followed out of the root.
func TestGroup_prepareReserved(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, root, outside string)
	}{
		{name: "a fresh root"},
		{name: "leftovers of a killed receiver", plant: func(t *testing.T, root, _ string) {
			write(t, filepath.Join(root, rsyncd.TempDir, ".f.AbC123"))
			write(t, filepath.Join(root, rsyncd.TempDir, "sub", ".g.XyZ789"))
			write(t, filepath.Join(root, rsyncd.PartialDir, "big.iso"))
		}},
		{name: "links to outside in their place", plant: func(t *testing.T, root, outside string) {
			if err := os.MkdirAll(filepath.Join(root, index.ReservedDir), 0o700); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{rsyncd.TempDir, rsyncd.PartialDir} {
				if err := os.Symlink(outside, filepath.Join(root, d)); err != nil {
					t.Fatal(err)
				}
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
			g := &group{root: root}
			if err := g.prepareReserved(); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{rsyncd.TempDir, rsyncd.PartialDir} {
				p := filepath.Join(root, d)
				st, err := os.Lstat(p)
				if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
					t.Fatalf("%s: %v, %v; want a 0700 directory", d, st, err)
				}
				if des, err := os.ReadDir(p); err != nil || len(des) != 0 {
					t.Errorf("%s holds %v (%v); want it empty", d, des, err)
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
