package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenAndLstat(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root + "/d/e", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{root + "/d/e/f", outside + "/secret"} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.Symlink(outside, root+"/evil"))
	must(t, os.Symlink("d", root+"/inner"))
	must(t, os.Symlink("/etc/passwd", root+"/link"))
	rootfd, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)

	tests := []struct {
		rel       string
		openErr   error // nil: opens
		lstatErr  error // nil: lstat works
		lstatLink bool
	}{
		{"d/e/f", nil, nil, false},
		{"d/e", nil, nil, false},
		{".", nil, nil, false},
		{"evil/secret", ErrOutside, ErrOutside, false},
		{"evil", ErrOutside, nil, true},
		{"inner/e/f", ErrOutside, ErrOutside, false},
		{"link", ErrOutside, nil, true},
		{"../outside/secret", ErrOutside, ErrOutside, false},
		{"d/../../outside/secret", ErrOutside, ErrOutside, false},
		{"/etc/passwd", ErrOutside, ErrOutside, false},
		{"d//e", ErrOutside, ErrOutside, false},
	}
	for _, tc := range tests {
		t.Run(tc.rel, func(t *testing.T) {
			fd, err := Open(rootfd, tc.rel, unix.O_RDONLY, 0)
			if err == nil {
				unix.Close(fd)
			}
			if !errors.Is(err, tc.openErr) && !(tc.openErr == nil && err == nil) {
				t.Errorf("Open(%q) = %v, want %v", tc.rel, err, tc.openErr)
			}
			var st unix.Stat_t
			err = Lstat(rootfd, tc.rel, &st)
			if !errors.Is(err, tc.lstatErr) && !(tc.lstatErr == nil && err == nil) {
				t.Errorf("Lstat(%q) = %v, want %v", tc.rel, err, tc.lstatErr)
			}
			if err == nil && (st.Mode&unix.S_IFMT == unix.S_IFLNK) != tc.lstatLink {
				t.Errorf("Lstat(%q) mode %o, symlink want %v", tc.rel, st.Mode, tc.lstatLink)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
