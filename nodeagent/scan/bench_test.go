package scan

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// benchFiles is the tree size of BenchmarkScan: JAILSYNC_BENCH_FILES, or
// one million files in 1,000 directories.
func benchFiles() int {
	if n, err := strconv.Atoi(os.Getenv("JAILSYNC_BENCH_FILES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkScan measures the scanner on a tree of benchFiles() files on a
// tmpfs against find(1) on the same tree, in the same run: the first scan
// (empty index, everything new, index then filled) and a steady-state scan
// (nothing changed). It reports seconds per scan and the process's peak RSS.
func BenchmarkScan(b *testing.B) {
	n := benchFiles()
	base := b.TempDir()
	root := tmpfs.Mount(b, "size=4g,nr_inodes=0")
	const perDir = 1000
	for i := 0; i < n; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%04d", i/perDir))
		if i%perDir == 0 {
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%07d.dat", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}

	findStart := time.Now()
	find := exec.Command("find", root)
	find.Stdout = nil
	if err := find.Run(); err != nil {
		b.Fatalf("find: %v", err)
	}
	findSecs := time.Since(findStart).Seconds()

	idx, err := index.Open(filepath.Join(base, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Close()
	if err := idx.CheckRoot(root); err != nil {
		b.Fatal(err)
	}
	sc := &Scanner{Root: root, Index: idx, Workers: 4}

	// First scan: everything is new; the index is filled from its output
	// in batches, as the engine records what it journaled.
	firstStart := time.Now()
	firstChanges := scanAndRecord(b, sc, root, idx)
	firstSecs := time.Since(firstStart).Seconds()
	if firstChanges < int64(n) {
		b.Fatalf("first scan reported %d changes for %d files", firstChanges, n)
	}

	b.ResetTimer()
	var st Stats
	for b.Loop() {
		out := make(chan change.Change, 1024)
		done := make(chan int)
		go func() {
			c := 0
			for range out {
				c++
			}
			done <- c
		}()
		st, err = sc.Scan(context.Background(), ".", out)
		close(out)
		if changes := <-done; err != nil || changes != 0 {
			b.Fatalf("steady-state scan: %d changes, %v", changes, err)
		}
	}
	b.StopTimer()
	steady := b.Elapsed().Seconds() / float64(b.N)
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(st.Files), "files")
	b.ReportMetric(steady, "s/scan")
	b.ReportMetric(firstSecs, "s/first-scan")
	b.ReportMetric(findSecs, "s/find")
	b.ReportMetric(steady/findSecs, "x-find")
	b.ReportMetric(float64(ru.Maxrss)/1024, "MiB-peak-rss")
}

func scanAndRecord(b *testing.B, sc *Scanner, root string, idx *index.Index) int64 {
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(rootfd)
	out := make(chan change.Change, 4096)
	errc := make(chan error, 1)
	go func() {
		_, err := sc.Scan(context.Background(), ".", out)
		close(out)
		errc <- err
	}()
	var total int64
	batch := make([]string, 0, 10_000)
	flush := func() {
		err := idx.Update(func(tx *index.Tx) error {
			for _, p := range batch {
				if err := tx.Record(rootfd, p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for c := range out {
		total++
		batch = append(batch, c.Path)
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return total
}
