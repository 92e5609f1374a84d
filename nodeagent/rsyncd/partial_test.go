package rsyncd

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// TestDaemon_Run_keepsAPartialFile: a push cut off mid-file (its client
// stopped) leaves what arrived in the partial directory, as the agent's
// pushes of large files ask (--partial-dir), so that the next push resumes
// from it. The module's filter must let the daemon name a file there:
// rsync drops the partial file when the filter excludes its name
// (util.c, partial_dir_fname).
func TestDaemon_Run_keepsAPartialFile(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 19
	cfg := testConfig(t, n)
	root := cfg.Modules[0].Path
	for _, d := range []string{TempDir, PartialDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	startDaemon(t, &Daemon{Config: cfg})
	src := t.TempDir()
	data := make([]byte, 16<<20) // random: no block repeats
	_, _ = rand.NewChaCha8([32]byte{7}).Read(data)
	if err := os.WriteFile(filepath.Join(src, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", "--address="+peerAddr(n).String(), fmt.Sprintf("--port=%d", daemonAddr(n).Port()),
		"-a", "--temp-dir=/"+TempDir, "--partial-dir=/"+PartialDir, "--bwlimit=4096",
		src+"/big", fmt.Sprintf("%s@%s::data/", DefaultUser, daemonAddr(n).Addr()))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "RSYNC_PASSWORD=" + testPassword}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, func() error {
		es, _ := os.ReadDir(filepath.Join(root, TempDir))
		for _, e := range es {
			if fi, err := e.Info(); err == nil && fi.Size() >= 4<<20 {
				return nil
			}
		}
		return fmt.Errorf("less than 4 MiB of big has arrived")
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	partial := filepath.Join(root, PartialDir, "big")
	poll.Until(t, 10*time.Second, func() error {
		fi, err := os.Stat(partial)
		if err != nil {
			return fmt.Errorf("no partial file after the push was cut off: %w", err)
		}
		if fi.Size() < 4<<20 || fi.Size() >= int64(len(data)) {
			return fmt.Errorf("partial file holds %d bytes, want at least 4 MiB and less than the file", fi.Size())
		}
		return nil
	})
	if exists(filepath.Join(root, "big")) {
		t.Errorf("big is in place although its push was cut off")
	}

	// The next push resumes: what it sends is about what was missing;
	// where this rsync cannot resume from an absolute partial directory
	// (before 3.4.4), it fails as ResumesFromPartialDir predicts, and
	// the agent then passes no --partial-dir.
	resumes, err := rsync.ResumesFromPartialDir(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, out := client(t, peerAddr(n).String(), daemonAddr(n).Port(), testPassword,
		"-a", "--stats", "--no-human-readable", "--temp-dir=/"+TempDir, "--partial-dir=/"+PartialDir,
		src+"/big", fmt.Sprintf("%s@%s::data/", DefaultUser, daemonAddr(n).Addr()))
	if !resumes {
		if code != 23 || !strings.Contains(out, "failed verification") {
			t.Fatalf("this rsync resumes through the daemon (exit %d), though ResumesFromPartialDir says it cannot:\n%s", code, out)
		}
		t.Logf("this rsync cannot resume from an absolute partial directory, as ResumesFromPartialDir found: %s", out)
		return
	}
	if code != 0 {
		t.Fatalf("resuming push: exit %d: %s", code, out)
	}
	t.Logf("resumed in %v: %s", time.Since(start), out)
	got, err := os.ReadFile(filepath.Join(root, "big"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("big after the resumed push: %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	// rsync --stats: "Literal data: N bytes", what went as data rather
	// than as matches of the partial file's blocks.
	m := regexp.MustCompile(`Literal data: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no literal data in the stats:\n%s", out)
	}
	literal, _ := strconv.Atoi(m[1])
	if literal > len(data)-(4<<20) {
		t.Errorf("the resumed push sent %d bytes of literal data, over the %d missing: the partial file was not used", literal, len(data)-(4<<20))
	}
}
