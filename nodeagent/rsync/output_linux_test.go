package rsync

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestStartProc_output: a client's standard output is an anonymous memory
// file, read once rsync exited, unless its progress is read live (a pipe);
// either way every listed path's line is read, well past a pipe's 64 KiB.
func TestStartProc_output(t *testing.T) {
	tests := []struct {
		name       string
		slot       int
		live       bool
		wantPrefix string // of /proc/PID/fd/1's link
	}{
		{name: "an anonymous file, read after the exit", slot: 50, wantPrefix: "/memfd:rsync-output"},
		{name: "a pipe, read live", slot: 51, live: true, wantPrefix: "pipe:"},
	}
	const files = 3000 // about 90 KiB of itemized lines
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, tc.slot)
			root := t.TempDir()
			names := make([]string, files)
			for i := range names {
				names[i] = fmt.Sprintf("a-file-with-a-long-name-%05d", i)
				write(t, root, names[i], []byte(strconv.Itoa(i)))
			}
			args, err := buildArgs(d.target(), fastOptions(), modePush)
			if err != nil {
				t.Fatal(err)
			}
			p, err := startProc(root, args, d.target().Password, "", tc.live)
			if err != nil {
				t.Fatal(err)
			}
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", p.cmd.Process.Pid))
			if err != nil {
				p.kill()
				t.Fatal(err)
			}
			if !strings.HasPrefix(link, tc.wantPrefix) {
				t.Errorf("rsync's standard output is %q, want %s...", link, tc.wantPrefix)
			}
			l, err := buildListing(root, names, modePush, false)
			if err != nil {
				p.kill()
				t.Fatal(err)
			}
			out, err := p.finish(context.Background(), root, l, nil, nil)
			if err != nil || out.code != 0 {
				t.Fatalf("run: exit %d, %v: %s", out.code, err, out.stderr)
			}
			if len(out.items) != files {
				t.Errorf("%d itemized paths read, want %d", len(out.items), files)
			}
			checkSame(t, root, d.dir, names)
		})
	}
}
