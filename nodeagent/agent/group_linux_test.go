package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckStateDir_ThroughABindMount: the root mounted a second time
// elsewhere (a bind mount; nullfs on FreeBSD) is the root: a state
// directory below that other path is refused, and nothing is made.
func TestCheckStateDir_ThroughABindMount(t *testing.T) {
	base := t.TempDir()
	root, bind := filepath.Join(base, "root"), filepath.Join(base, "bind")
	for _, d := range []string{root, bind} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(root, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount (the test runs as root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(bind, 0); err != nil {
			t.Errorf("unmount %s: %v", bind, err)
		}
	})
	got, err := checkStateDir(filepath.Join(bind, "state"), root)
	if err == nil || !strings.Contains(err.Error(), "inside the data root") {
		t.Fatalf("checkStateDir = %q, %v; want an error saying it is inside the data root", got, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "state")); err == nil {
		t.Error("state was made inside the root")
	}
}
