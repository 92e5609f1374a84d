//go:build linux

package fanotify

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// TestSource_slowWriter writes a file every 300 ms for 3 seconds: every
// write is reported unfinished while the file is open, and the finished
// change comes only after the close.
func TestSource_slowWriter(t *testing.T) {
	root := mountTmpfs(t)
	w := start(t, source.Options{Root: root})
	f, err := os.Create(filepath.Join(root, "slow"))
	must(t, err)
	defer f.Close()
	block := make([]byte, 4096)
	for i := range 10 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // pacing of the writer, not an assertion
		}
		_, err := f.Write(block)
		must(t, err)
		w.waitFor("unfinished write of slow", is("slow", change.Write, false))
	}
	beforeClose := len(w.seen)
	must(t, f.Close())
	w.waitFor("finished write of slow after close", is("slow", change.Write, true))

	writes := 0
	for _, c := range w.seen[:beforeClose] {
		if c.Path == "slow" && c.Finished {
			t.Errorf("finished before the close: %s", show(c))
		}
		if c.Path == "slow" && c.Op.Has(change.Write) {
			writes++
		}
	}
	if writes < 10 {
		t.Errorf("%d unfinished writes before the close, want 10:\n%s", writes, list(w.seen))
	}
}

// TestSource_twoWriters closes the first of two writers: the file is not
// finished until the second closes too.
func TestSource_twoWriters(t *testing.T) {
	root := mountTmpfs(t)
	w := start(t, source.Options{Root: root})
	name := filepath.Join(root, "shared")
	a, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY, 0o644)
	must(t, err)
	defer a.Close()
	b, err := os.OpenFile(name, os.O_WRONLY, 0)
	must(t, err)
	defer b.Close()
	_, err = a.WriteString("first")
	must(t, err)
	_, err = b.WriteAt([]byte("second"), 100)
	must(t, err)
	must(t, a.Close())

	got := w.sync(root)
	expect(t, got, want{path: "shared", op: change.Write, fin: no})
	closed := false
	for _, c := range got {
		if c.Path == "shared" && c.Finished {
			t.Errorf("finished while a writer has it open: %s", show(c))
		}
		closed = closed || c.Path == "shared" && c.Closed
	}
	// The first writer's close was seen while a writer held it: marked
	// so, for the coalescer to probe again soon (a close is reported
	// before the closing writer's access is dropped).
	if !closed {
		t.Errorf("the close while another writer held it is not marked Closed: %v", got)
	}
	must(t, b.Close())
	w.waitFor("finished write of shared after the second close", is("shared", change.Write, true))
}

// TestSource_hardLinkWriter writes a file through one name while another
// name of it changes: the close, reported under the writer's name only,
// finishes the other name too.
func TestSource_hardLinkWriter(t *testing.T) {
	root := mountTmpfs(t)
	w := start(t, source.Options{Root: root})
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	writeFile(t, a, "x")
	must(t, os.Link(a, b))
	w.sync(root)

	f, err := os.OpenFile(a, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteString("more")
	must(t, err)
	must(t, os.Chmod(b, 0o600))
	expect(t, w.sync(root), want{path: "b", op: change.Attrib, fin: no})

	must(t, f.Close())
	expect(t, w.sync(root),
		want{path: "a", op: change.Write, fin: yes},
		want{path: "b", op: change.Write, fin: yes})
}

// TestSource_createdBeforeItsWriterOpens widens the moment between a new
// file's FAN_CREATE and its creator's open for writing (open(2) with
// O_CREAT queues the event before it takes write access): the file is made
// without write access, then opened and written. Its creation is not
// reported finished, since nothing tells a file that stays empty from one
// whose writer is on its way; only the close is.
func TestSource_createdBeforeItsWriterOpens(t *testing.T) {
	root := mountTmpfs(t)
	w := start(t, source.Options{Root: root})
	name := filepath.Join(root, "late")
	must(t, unix.Mknod(name, unix.S_IFREG|0o644, 0))
	w.waitFor("the creation of late", func(c change.Change) bool { return c.Path == "late" && c.Op.Has(change.Create) })

	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteString("half")
	must(t, err)
	w.waitFor("unfinished write of late", is("late", change.Write, false))
	beforeClose := len(w.seen)
	must(t, f.Close())
	w.waitFor("finished write of late after the close", is("late", change.Write, true))
	for _, c := range w.seen[:beforeClose] {
		if c.Path == "late" && c.Finished {
			t.Errorf("finished before its writer closed it: %s", show(c))
		}
	}
}

// TestSource_hardLinkWriterNameGone reads the close of a multiply linked
// file after its writer's name was removed or given to another file: the
// close's object still finishes the file's other name, reported
// unfinished while the writer had it open. The events are made by hand
// from real files, so that the close is read after the name changed.
func TestSource_hardLinkWriterNameGone(t *testing.T) {
	tests := []struct {
		name  string
		after func(t *testing.T, root string) // between the close and its read
		a     change.Op                       // what the close reports for a
	}{
		{"name kept", func(*testing.T, string) {}, change.Write},
		{"name removed", func(t *testing.T, root string) { must(t, os.Remove(filepath.Join(root, "a"))) }, change.Remove},
		{"another file renamed over the name", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "c"), "other")
			must(t, os.Rename(filepath.Join(root, "c"), filepath.Join(root, "a")))
		}, change.Write},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := mountTmpfs(t)
			a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
			writeFile(t, a, "x")
			must(t, os.Link(a, b))
			s := &Source{opts: source.Options{Root: root}, root: root, res: newTestResolver(t, root)}
			dir, obj := handleOf(t, root), handleOf(t, a)

			f, err := os.OpenFile(a, os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			defer f.Close()
			_, err = f.WriteString("more")
			must(t, err)
			must(t, os.Chmod(b, 0o600))
			attrib := event{mask: unix.FAN_ATTRIB, fd: -1, dir: dir, name: "b", hasDir: true, obj: obj, hasObj: true}
			got := s.eventChanges(nil, &attrib, time.Now())
			if len(got) != 1 || !is("b", change.Attrib, false)(got[0]) {
				t.Fatalf("chmod while a writer has it open: got\n%s", list(got))
			}

			must(t, f.Close())
			tc.after(t, root)
			closed := event{mask: unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE, fd: -1, dir: dir, name: "a", hasDir: true, obj: obj, hasObj: true}
			got = s.eventChanges(nil, &closed, time.Now())
			if len(got) != 2 || got[0].Path != "a" || !got[0].Op.Has(tc.a) || !is("b", change.Write, true)(got[1]) {
				t.Errorf("the close read after the change of its name: got\n%s; want a %s, then b finished", list(got), tc.a)
			}
		})
	}
}
