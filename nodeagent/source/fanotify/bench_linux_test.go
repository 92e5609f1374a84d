//go:build linux

package fanotify

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// benchFiles is the least number of files a latency distribution is
// measured over.
const benchFiles = 200

// BenchmarkCloseToChange measures the latency from a file's close to the
// receipt of its finished Write change: one 4 KiB file per iteration, on
// a tmpfs of its own, at least 200 files. It reports the p50 and p99 in
// µs, and the same for a reference measured in the same run over as many
// files: inotify's IN_CLOSE_WRITE on the directory, the kernel's
// notification without path resolution, lstat and the lease check. The
// reference's p50 is near zero: its event is usually read before the
// writer takes the time after close.
func BenchmarkCloseToChange(b *testing.B) {
	root := mountTmpfs(b)
	n := max(b.N, benchFiles)
	ref := inotifyLatencies(b, root, n)

	s, err := New(source.Options{Root: root})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan change.Change, 1024)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	}()

	data := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	lost := 0
	b.ResetTimer()
	for i := range n {
		name := fmt.Sprintf("f%07d", i)
		closed := writeAndClose(b, filepath.Join(root, name), data)
		if waitFinished(out, name, 2*time.Second) {
			lat = append(lat, time.Since(closed))
		} else {
			// No finished change from the source alone: its close was
			// merged or lost. The agent's coalescer probes such files
			// after the settle interval (change.Coalescer.Probe).
			lost++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(lost), "unfinished-by-source")
	p50, p99 := percentiles(lat)
	r50, r99 := percentiles(ref)
	b.ReportMetric(p50, "p50-µs")
	b.ReportMetric(p99, "p99-µs")
	b.ReportMetric(r50, "inotify-p50-µs")
	b.ReportMetric(r99, "inotify-p99-µs")
	b.ReportMetric(p99/r99, "p99/inotify")
}

// waitFinished waits up to timeout for the finished Write change of name.
func waitFinished(out <-chan change.Change, name string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case c := <-out:
			if c.Path == name && c.Op.Has(change.Write) && c.Finished {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// writeAndClose writes data to a new file and returns the time right after
// its close.
func writeAndClose(b *testing.B, name string, data []byte) time.Time {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return time.Now()
}

// inotifyLatencies measures close-to-event latency with inotify for n
// files in a directory of root, read by another goroutine as Run does.
func inotifyLatencies(b *testing.B, root string, n int) []time.Duration {
	dir := filepath.Join(root, "inotify-reference")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		b.Fatalf("inotify_init1: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE); err != nil {
		b.Fatalf("inotify_add_watch: %v", err)
	}
	events := make(chan struct{}, n)
	go func() {
		buf := make([]byte, 64<<10)
		for got := 0; got < n; {
			m, err := unix.Read(fd, buf)
			if err != nil {
				close(events)
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= m; got++ {
				// struct inotify_event: wd, mask, cookie, len, name.
				off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
				events <- struct{}{}
			}
		}
	}()
	data := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for i := range n {
		closed := writeAndClose(b, filepath.Join(dir, fmt.Sprintf("f%07d", i)), data)
		if _, ok := <-events; !ok {
			b.Fatal("inotify read failed")
		}
		lat = append(lat, time.Since(closed))
	}
	return lat
}

// percentiles returns the p50 and p99 of lat in µs.
func percentiles(lat []time.Duration) (p50, p99 float64) {
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(q float64) float64 {
		return float64(s[int(q*float64(len(s)-1))]) / float64(time.Microsecond)
	}
	return at(0.50), at(0.99)
}
