package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
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
	// Dirs answers as Lstat does, the second time from its kept
	// directories.
	dirs := NewDirs(rootfd)
	defer dirs.Close()
	for _, tc := range append(tests, tests...) {
		t.Run(tc.rel, func(t *testing.T) {
			var dst unix.Stat_t
			err := dirs.Lstat(tc.rel, &dst)
			if !errors.Is(err, tc.lstatErr) && !(tc.lstatErr == nil && err == nil) {
				t.Errorf("Dirs.Lstat(%q) = %v, want %v", tc.rel, err, tc.lstatErr)
			}
			if err == nil && (dst.Mode&unix.S_IFMT == unix.S_IFLNK) != tc.lstatLink {
				t.Errorf("Dirs.Lstat(%q) mode %o, symlink want %v", tc.rel, dst.Mode, tc.lstatLink)
			}
		})
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

func TestDirs_manyDirectories(t *testing.T) {
	root := t.TempDir()
	rootfd, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	const n = 3 * maxDirs // more than it keeps: it starts over twice
	for i := range n {
		dir := filepath.Join(root, "d", strconv.Itoa(i))
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "f"), make([]byte, i), 0o644))
	}
	dirs := NewDirs(rootfd)
	defer dirs.Close()
	for i := range n {
		var st unix.Stat_t
		if err := dirs.Lstat("d/"+strconv.Itoa(i)+"/f", &st); err != nil || st.Size != int64(i) {
			t.Fatalf("d/%d/f: size %d, %v; want %d", i, st.Size, err, i)
		}
		if len(dirs.fds) > maxDirs {
			t.Fatalf("%d directories kept open, bound %d", len(dirs.fds), maxDirs)
		}
	}
	// A directory replaced by a symlink after it was kept is refused when
	// resolved again (after Close), never followed.
	dirs.Close()
	must(t, os.Rename(filepath.Join(root, "d", "0"), filepath.Join(root, "d", "old")))
	must(t, os.Symlink("/etc", filepath.Join(root, "d", "0")))
	var st unix.Stat_t
	if err := dirs.Lstat("d/0/passwd", &st); !errors.Is(err, ErrOutside) {
		t.Errorf("through a symlinked directory: %v, want ErrOutside", err)
	}
}
