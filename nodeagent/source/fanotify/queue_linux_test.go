//go:build linux

package fanotify

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// TestSource_backlogBeyondTheDefaultQueue: more events wait in the kernel
// than a default fanotify queue holds (fs.fanotify.max_queued_events,
// 16,384 by default), as when the agent is busy or starting while a burst
// is written. The queue is unlimited (FAN_UNLIMITED_QUEUE), so nothing
// overflows into a rescan and every file is reported finished. With a
// limited queue the kernel drops the events beyond it (FAN_Q_OVERFLOW).
func TestSource_backlogBeyondTheDefaultQueue(t *testing.T) {
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/fanotify/max_queued_events"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			limit = n
		}
	}
	files := limit + limit/4
	root := mountTmpfs(t)
	s, err := New(source.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	// Written before anything reads the group: all of it queues.
	for i := range files {
		writeFile(t, filepath.Join(root, fmt.Sprintf("f%06d", i)), "x")
	}
	writeFile(t, filepath.Join(root, "last"), "x")

	out := run(t, s).out
	finished := make(map[string]bool, files)
	deadline := time.After(60 * time.Second)
	for !finished["last"] {
		select {
		case c := <-out:
			if c.Op.Has(change.Rescan) {
				t.Fatalf("a rescan (%s) after %d of %d files: the queue overflowed", show(c), len(finished), files)
			}
			if c.Finished && c.Op.Has(change.Write) {
				finished[c.Path] = true
			}
		case <-deadline:
			t.Fatalf("only %d of %d files reported within 60 s", len(finished), files)
		}
	}
	for i := range files {
		if name := fmt.Sprintf("f%06d", i); !finished[name] {
			t.Fatalf("%s never reported finished (%d of %d were)", name, len(finished)-1, files)
		}
	}
}
