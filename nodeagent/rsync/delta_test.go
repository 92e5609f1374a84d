package rsync

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestPush_ChangedFileSendsOnlyTheDelta: a large file that the peer holds
// an older version of goes as rsync's delta against that version (no
// --whole-file, and --temp-dir keeps the peer's file as the basis), not
// whole again: an append or an overwrite of 4 KiB of a 16 MiB file puts
// well under 1 MiB on the wire (VolSync #1028 resent a whole 50 GB file
// after an append).
func TestPush_ChangedFileSendsOnlyTheDelta(t *testing.T) {
	const size = 16 << 20
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{name: "append", change: func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.Write(bytes.Repeat([]byte("appended "), 4096/9))
			must(t, err)
			must(t, f.Close())
		}},
		{name: "overwrite in the middle", change: func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteAt(bytes.Repeat([]byte("x"), 4096), size/2+123)
			must(t, err)
			must(t, f.Close())
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, 30+i)
			must(t, os.MkdirAll(d.path(".jailsync/tmp"), 0o700))
			opts := fastOptions()
			opts.TempDir = "/.jailsync/tmp" // as the agent runs it
			root := t.TempDir()
			data := make([]byte, size)
			rng := rand.New(rand.NewPCG(1, uint64(i)))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			write(t, root, "big", data)
			res, err := Push(context.Background(), root, []string{"big"}, d.target(), opts)
			if err != nil || res.BytesSent < size {
				t.Fatalf("first push: %v, %d bytes sent; want the whole file\n%s", err, res.BytesSent, res.Stderr)
			}
			tc.change(t, filepath.Join(root, "big"))
			res, err = Push(context.Background(), root, []string{"big"}, d.target(), opts)
			if err != nil {
				t.Fatalf("second push: %v\n%s", err, res.Stderr)
			}
			if res.BytesSent >= 1<<20 {
				t.Errorf("second push sent %d bytes; want the delta, under 1 MiB", res.BytesSent)
			}
			want, err := os.ReadFile(filepath.Join(root, "big"))
			must(t, err)
			got, err := os.ReadFile(d.path("big"))
			must(t, err)
			if !bytes.Equal(got, want) {
				t.Errorf("the peer's copy differs from the source after the delta")
			}
		})
	}
}
