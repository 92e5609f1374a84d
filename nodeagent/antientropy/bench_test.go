package antientropy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkRead reads a root of 100 directories of 100 files each (10,100
// paths): the cost of a compare's walk, and of each answer to a peer's
// (docs/design.md, "Anti-entropy compare").
func BenchmarkRead(b *testing.B) {
	r := b.TempDir()
	for d := range 100 {
		dir := filepath.Join(r, fmt.Sprintf("d%03d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte{byte(f)}, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	fd, err := unix.Open(r, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	b.ResetTimer()
	for b.Loop() {
		t, err := Read(context.Background(), fd, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(t.Entries) != 10_100 {
			b.Fatalf("%d paths", len(t.Entries))
		}
	}
}
