package receiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// BenchmarkReceiver_RenameTree: a peer's rename of a directory of 10,000
// files, applied and recorded here (the index moves the tree's entries,
// then compares it with the disk: recordRenames). Each op renames the tree
// back and forth once.
func BenchmarkReceiver_RenameTree(b *testing.B) {
	r, root := benchReceiver(b)
	const files = 10_000
	mustB(b, os.Mkdir(filepath.Join(root, "d"), 0o755))
	for i := range files {
		mustB(b, os.WriteFile(filepath.Join(root, "d", fmt.Sprintf("f%05d", i)), nil, 0o644))
	}
	mustB(b, r.Index.Update(func(tx *index.Tx) error {
		if err := tx.Record(r.RootFD, "d"); err != nil {
			return err
		}
		for i := range files {
			if err := tx.Record(r.RootFD, fmt.Sprintf("d/f%05d", i)); err != nil {
				return err
			}
		}
		return nil
	}))
	names := [2]string{"d", "e"}
	for b.Loop() {
		for k := range 2 {
			from, to := names[k], names[1-k]
			res := replayOnce(context.Background(), r, "peer", []peer.Rename{{Old: []byte(from), New: []byte(to), Dir: true}})
			if !res[0].Applied {
				b.Fatalf("%s -> %s refused: %s", from, to, res[0].Reason)
			}
		}
	}
}

func mustB(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// benchReceiver is newReceiver for a benchmark.
func benchReceiver(b *testing.B) (*Receiver, string) {
	root := b.TempDir()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	mustB(b, err)
	b.Cleanup(func() { unix.Close(fd) })
	idx, err := index.Open(filepath.Join(b.TempDir(), "index.db"))
	mustB(b, err)
	b.Cleanup(func() { idx.Close() })
	r := &Receiver{RootFD: fd, Index: idx, Held: &detect.Incoming{}, Log: logr.Discard()}
	return r, root
}
