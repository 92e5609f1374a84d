//go:build linux

package fanotify

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/source"
)

func TestNew_errors(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	must(t, os.Symlink(dir, link))
	tests := []struct {
		name        string
		root        string
		unavailable bool
		says        string
	}{
		{"relative root", "data", false, "absolute"},
		{"unclean root", dir + "/../" + filepath.Base(dir), false, "clean"},
		{"symlinked root", link, false, "symlinks"},
		{"missing root", filepath.Join(dir, "missing"), false, "no such file"},
		{"filesystem without file handles", "/proc", true, "file handles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(source.Options{Root: tc.root})
			if err == nil {
				s.Close()
				t.Fatalf("New(%q) succeeded", tc.root)
			}
			if errors.Is(err, ErrUnavailable) != tc.unavailable || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("New(%q) = %v; want ErrUnavailable %t, saying %q", tc.root, err, tc.unavailable, tc.says)
			}
		})
	}
}

// TestNew_unprivileged calls New on a thread that dropped root (and with it
// CAP_SYS_ADMIN); the thread is never given back to the runtime.
func TestNew_unprivileged(t *testing.T) {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		const nobody = 65534
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, nobody, nobody, nobody); e != 0 {
			errc <- e
			return
		}
		_, err := New(source.Options{Root: "/"})
		errc <- err
	}()
	err := <-errc
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New as nobody = %v, want ErrUnavailable", err)
	}
	for _, says := range []string{"CAP_SYS_ADMIN", "root", "scanner"} {
		if !strings.Contains(err.Error(), says) {
			t.Errorf("error %q does not say %q", err, says)
		}
	}
	t.Logf("as nobody: %v", err)
}
