//go:build linux

package fanotify

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

func TestClassify(t *testing.T) {
	// 0x30c: create|delete|close_write|attrib merged into one event, as
	// seen for a file created, written, chmodded and removed by one process.
	const merged = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB
	if merged != 0x30c {
		t.Fatalf("merged mask %#x, want 0x30c", merged)
	}
	var (
		gone     = pathState{}
		closed   = pathState{exists: true, kind: kindRegular, noWriter: true, nlink: 1}
		linked   = pathState{exists: true, kind: kindRegular, noWriter: true, nlink: 2}
		written  = pathState{exists: true, kind: kindRegular, noWriter: true, nlink: 1, size: 4096}
		writing  = pathState{exists: true, kind: kindRegular}
		dir      = pathState{exists: true, kind: kindDir}
		nonRegul = pathState{exists: true, kind: kindOther}
	)
	tests := []struct {
		name     string
		mask     uint64
		st       pathState
		op       change.Op
		finished bool
	}{
		{"removed file", unix.FAN_DELETE, gone, change.Remove, true},
		{"removed directory", unix.FAN_DELETE | unix.FAN_ONDIR, gone, change.Rmdir, true},
		{"merged 0x30c, gone at read", merged, gone, change.Remove, true},
		{"merged 0x30c, made again and closed", merged, closed, change.Create | change.Write | change.Attrib, true},
		{"write to a file gone since", unix.FAN_MODIFY, gone, change.Remove, true},
		{"created, writer still open", unix.FAN_CREATE, writing, change.Create, false},
		{"created, no writer yet: its open may follow (create-to-open window)", unix.FAN_CREATE, closed, change.Create, false},
		{"created and written, closed before read", unix.FAN_CREATE | unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE, closed, change.Create | change.Write, true},
		{"replaced by a new file, no writer yet", unix.FAN_DELETE | unix.FAN_CREATE, closed, change.Create, false},
		{"modify, writer open", unix.FAN_MODIFY, writing, change.Write, false},
		{"modify without a writer: truncate(2)", unix.FAN_MODIFY, closed, change.Write, true},
		{"close, another writer open", unix.FAN_CLOSE_WRITE, writing, change.Write, false},
		{"close of the last writer", unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE, closed, change.Write, true},
		{"chmod", unix.FAN_ATTRIB, closed, change.Attrib, true},
		{"hard link", unix.FAN_CREATE, linked, change.Create, true},
		{"hard link, the first name removed since", unix.FAN_CREATE, written, change.Create, true},
		{"mkdir", unix.FAN_CREATE | unix.FAN_ONDIR, dir, change.Mkdir, true},
		{"directory attributes", unix.FAN_ATTRIB | unix.FAN_ONDIR, dir, change.Attrib, true},
		{"symlink, fifo: no close to wait for", unix.FAN_CREATE, nonRegul, change.Create, true},
		{"directory removed, file made in its place", unix.FAN_DELETE | unix.FAN_ONDIR, closed, change.Create, true},
		{"directory removed and made again: a new tree", unix.FAN_DELETE | unix.FAN_ONDIR, dir, change.Mkdir | change.Subtree, true},
		{"file removed, directory made in its place", unix.FAN_DELETE, dir, change.Mkdir | change.Subtree, true},
		{"nothing to say about a directory", unix.FAN_MODIFY, dir, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, finished := classify(tc.mask, tc.st)
			if op != tc.op || finished != tc.finished {
				t.Errorf("classify(%#x, %+v) = %s, %t; want %s, %t", tc.mask, tc.st, op, finished, tc.op, tc.finished)
			}
		})
	}
}

// TestSource_overflow maps FAN_Q_OVERFLOW, which an unlimited queue does not
// produce in a test, and an event that names no directory: both are a
// Rescan of the whole root.
func TestSource_overflow(t *testing.T) {
	s := &Source{}
	now := time.Now()
	for _, ev := range []event{{mask: unix.FAN_Q_OVERFLOW, fd: -1}, {mask: unix.FAN_CLOSE_WRITE, fd: -1}} {
		got := s.eventChanges(nil, &ev, now)
		want := change.Change{Path: ".", Op: change.Rescan, Time: now}
		if len(got) != 1 || got[0] != want {
			t.Errorf("eventChanges(mask %#x) = %+v; want %+v", ev.mask, got, want)
		}
	}
}

// TestSource_renameFromRemovedDirectory reads a directory's rename after
// its old parent was removed. Where the cache held the parent, the rename
// is read as it was; where it did not, the old path is unknown: the new
// name reads as a tree made, and the moved directory resolves to it.
func TestSource_renameFromRemovedDirectory(t *testing.T) {
	tests := []struct {
		name   string
		cached bool // b resolved before, and a with it (resolver.asCached)
		want   change.Change
	}{
		{"old parent cached", true, change.Change{Path: "c/b", OldPath: "a/b", Op: change.Rename | change.Subtree, Finished: true}},
		{"old parent not cached", false, change.Change{Path: "c/b", Op: change.Subtree, Finished: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := mountTmpfs(t)
			must(t, os.MkdirAll(filepath.Join(root, "a/b"), 0o755))
			must(t, os.Mkdir(filepath.Join(root, "c"), 0o755))
			s := &Source{opts: source.Options{Root: root}, root: root, res: newTestResolver(t, root)}
			a, b, c := handleOf(t, filepath.Join(root, "a")), handleOf(t, filepath.Join(root, "a/b")), handleOf(t, filepath.Join(root, "c"))
			if tt.cached {
				if p, _ := s.res.dirPath(b); p != filepath.Join(root, "a/b") {
					t.Fatalf("before: %q", p)
				}
			}
			must(t, os.Rename(filepath.Join(root, "a/b"), filepath.Join(root, "c/b")))
			must(t, os.Remove(filepath.Join(root, "a")))

			ev := event{
				mask: unix.FAN_RENAME | unix.FAN_ONDIR, fd: -1,
				dir: a, name: "b", hasDir: true,
				newDir: c, newName: "b", hasNew: true,
			}
			now := time.Now()
			got := s.eventChanges(nil, &ev, now)
			want := tt.want
			want.Time = now
			if len(got) != 1 || got[0] != want {
				t.Errorf("eventChanges = \n%s; want %s", list(got), show(want))
			}
			if p, res := s.res.dirPath(b); res != resolved || p != filepath.Join(root, "c/b") {
				t.Errorf("moved directory resolves to %q (%d), want its new path", p, res)
			}
		})
	}
}

// TestSource_rmdirLeavesTheDirectoryCache reads a directory's removal
// (rmdir, which removes only an empty one): its entry leaves the cache, by
// its handle where the event carries it, else by its path. Left there, a
// removed directory's entry took one of the bounded cache's places until
// the cache was cleared whole (dirCache.put).
func TestSource_rmdirLeavesTheDirectoryCache(t *testing.T) {
	for _, withObj := range []bool{true, false} {
		t.Run(fmt.Sprintf("handle in the event: %v", withObj), func(t *testing.T) {
			root := mountTmpfs(t)
			must(t, os.MkdirAll(filepath.Join(root, "p/d"), 0o755))
			s := &Source{opts: source.Options{Root: root}, root: root, res: newTestResolver(t, root)}
			p, d := handleOf(t, filepath.Join(root, "p")), handleOf(t, filepath.Join(root, "p/d"))
			if path, _ := s.res.dirPath(d); path != filepath.Join(root, "p/d") {
				t.Fatalf("before: %q", path)
			}
			if _, ok := s.res.cache.get(d.key); !ok {
				t.Fatal("before: p/d is not cached")
			}
			must(t, os.Remove(filepath.Join(root, "p/d")))
			ev := event{mask: unix.FAN_DELETE | unix.FAN_ONDIR, fd: -1, dir: p, name: "d", hasDir: true, obj: d, hasObj: withObj}
			now := time.Now()
			got := s.eventChanges(nil, &ev, now)
			if len(got) != 1 || got[0].Path != "p/d" || !got[0].Op.Has(change.Rmdir) {
				t.Errorf("eventChanges = \n%s; want p/d removed", list(got))
			}
			if path, ok := s.res.cache.get(d.key); ok {
				t.Errorf("the removed directory is still cached, at %q", path)
			}
			if path, ok := s.res.cache.get(p.key); !ok || path != filepath.Join(root, "p") {
				t.Errorf("its parent is cached at %q (%v), want it kept", path, ok)
			}
		})
	}
}
