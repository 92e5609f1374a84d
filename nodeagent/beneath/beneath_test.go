package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	long := strings.Repeat("x/", 600) // beyond readlink's first buffer
	must(t, os.Symlink(long, root+"/d/long"))
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
		target    string // Readlink's, with readErr nil
		readErr   error
	}{
		{"d/e/f", nil, nil, false, "", unix.EINVAL},
		{"d/e", nil, nil, false, "", unix.EINVAL},
		{".", nil, nil, false, "", unix.EINVAL},
		{"evil/secret", ErrOutside, ErrOutside, false, "", ErrOutside},
		{"evil", ErrOutside, nil, true, outside, nil},
		{"inner/e/f", ErrOutside, ErrOutside, false, "", ErrOutside},
		{"inner", ErrOutside, nil, true, "d", nil},
		{"link", ErrOutside, nil, true, "/etc/passwd", nil},
		{"d/long", ErrOutside, nil, true, long, nil},
		{"../outside/secret", ErrOutside, ErrOutside, false, "", ErrOutside},
		{"d/../../outside/secret", ErrOutside, ErrOutside, false, "", ErrOutside},
		{"/etc/passwd", ErrOutside, ErrOutside, false, "", ErrOutside},
		{"d//e", ErrOutside, ErrOutside, false, "", ErrOutside},
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
			target, err := Readlink(rootfd, tc.rel)
			if !errors.Is(err, tc.readErr) && !(tc.readErr == nil && err == nil) || target != tc.target {
				t.Errorf("Readlink(%q) = %.40q, %v; want %.40q, %v", tc.rel, target, err, tc.target, tc.readErr)
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
