package scan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// fixture is a data root with its index.
type fixture struct {
	t      *testing.T
	root   string
	idx    *index.Index
	rootfd int
	sc     *Scanner
}

func newFixture(t *testing.T, root string) *fixture {
	t.Helper()
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	if err := idx.CheckRoot(root); err != nil {
		t.Fatal(err)
	}
	fd, err := beneath.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &fixture{t: t, root: root, idx: idx, rootfd: fd, sc: &Scanner{Root: root, Index: idx, Workers: 3}}
}

// scan returns the changes of one full scan as sorted "op path" strings.
func (f *fixture) scan() []string {
	f.t.Helper()
	out := make(chan change.Change, 1<<16)
	if _, err := f.sc.Scan(context.Background(), ".", out); err != nil {
		f.t.Fatalf("scan: %v", err)
	}
	close(out)
	var got []string
	for c := range out {
		got = append(got, c.Op.String()+" "+c.Path)
	}
	sort.Strings(got)
	return got
}

// recordAll records every path the last scan reported, as the engine does
// once it has journaled them.
func (f *fixture) recordAll(paths ...string) {
	f.t.Helper()
	err := f.idx.Update(func(tx *index.Tx) error {
		for _, p := range paths {
			if err := tx.Record(f.rootfd, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// indexedFiles writes n files, f000 and on, and records them in the index.
func (f *fixture) indexedFiles(n int) []string {
	f.t.Helper()
	all := make([]string, n)
	for i := range all {
		all[i] = fmt.Sprintf("f%03d", i)
		f.write(all[i], "x")
	}
	f.recordAll(all...)
	return all
}

func (f *fixture) write(rel, data string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.root, rel), []byte(data), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) do(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

func pathsOf(lines []string) []string {
	var ps []string
	for _, l := range lines {
		_, p, _ := cut(l)
		ps = append(ps, p)
	}
	return ps
}

func cut(l string) (string, string, bool) {
	for i := range l {
		if l[i] == ' ' {
			return l[:i], l[i+1:], true
		}
	}
	return l, "", false
}

var hostileNames = []string{
	"with space", "new\nline", "-n", "--delete", "#hash", ";semi", "$(touch pwned)", "`id`", "*", "back\\slash",
	"\xff\xfe invalid utf8", string(make255()),
}

func make255() []byte {
	b := make([]byte, 255)
	for i := range b {
		b[i] = 'x'
	}
	return b
}

func TestScanner_ReportsDifferences(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.do(os.MkdirAll(filepath.Join(f.root, "dir/sub"), 0o755))
	f.write("dir/sub/a", "a")
	f.write("b", "b")
	for _, n := range hostileNames {
		f.write(n, n)
	}
	f.do(os.Symlink("b", filepath.Join(f.root, "link")))
	first := f.scan()
	want := []string{"create|write|found b", "create|write|found dir/sub/a", "create|write|found link", "mkdir dir", "mkdir dir/sub"}
	for _, n := range hostileNames {
		want = append(want, "create|write|found "+n)
	}
	sort.Strings(want)
	if !slices.Equal(first, want) {
		t.Fatalf("first scan:\n got %q\nwant %q", first, want)
	}
	f.recordAll(pathsOf(first)...)
	if again := f.scan(); len(again) != 0 {
		t.Fatalf("a scan with nothing changed reported %q", again)
	}

	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"write", func() { f.write("b", "bb") }, []string{"write b"}},
		{"same-size rewrite", func() {
			f.do(os.Chtimes(filepath.Join(f.root, "b"), time.Now(), time.Unix(1, 0)))
		}, []string{"write b"}},
		{"chmod", func() { f.do(os.Chmod(filepath.Join(f.root, "b"), 0o600)) }, []string{"attrib b"}},
		{"chown", func() { f.do(os.Lchown(filepath.Join(f.root, "b"), 123, 456)) }, []string{"attrib b"}},
		{"an mtime in the year 2300 (past what nanoseconds since 1970 hold)", func() {
			// Not os.Chtimes: it passes the time as nanoseconds, wrapped.
			future := unix.Timespec{Sec: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), Nsec: 7}
			f.do(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(f.root, "b"), []unix.Timespec{future, future}, 0))
			var st unix.Stat_t
			f.do(unix.Lstat(filepath.Join(f.root, "b"), &st))
			if st.Mtim.Sec != future.Sec {
				t.Fatalf("the filesystem keeps the mtime as %d s, not %d", st.Mtim.Sec, future.Sec)
			}
		}, []string{"write b"}},
		{"rewritten in place, size and mtime kept (cp -p)", func() {
			p := filepath.Join(f.root, "b")
			var st unix.Stat_t
			f.do(unix.Lstat(p, &st))
			f.do(os.WriteFile(p, []byte("BB"), 0o600))
			f.do(unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{st.Atim, st.Mtim}, 0))
		}, []string{"write|attrib b"}},
		{"delete", func() { f.do(os.Remove(filepath.Join(f.root, "b"))) }, []string{"remove b"}},
		{"rename file", func() {
			f.do(os.Rename(filepath.Join(f.root, "with space"), filepath.Join(f.root, "renamed")))
		}, []string{"create|write|found renamed", "remove with space"}},
		{"rename directory", func() {
			f.do(os.Rename(filepath.Join(f.root, "dir"), filepath.Join(f.root, "moved")))
		}, []string{"create|write|found moved/sub/a", "mkdir moved", "mkdir moved/sub", "rmdir dir"}},
		{"hard link", func() {
			f.do(os.Link(filepath.Join(f.root, "moved/sub/a"), filepath.Join(f.root, "hard")))
		}, []string{"write|attrib moved/sub/a", "create|write|found hard"}}, // only the inode's ctime (and link count) change: as a write that kept size and mtime
		{"symlink replaced by a file", func() {
			f.do(os.Remove(filepath.Join(f.root, "link")))
			f.write("link", "now a file")
		}, []string{"create|write|remove link"}},
		{"chmod a directory", func() { f.do(os.Chmod(filepath.Join(f.root, "moved"), 0o700)) }, []string{"attrib moved"}},
		{"an empty directory", func() {
			f.do(os.Mkdir(filepath.Join(f.root, "e"), 0o755))
			f.do(os.Chmod(filepath.Join(f.root, "e"), 0o755))
		}, []string{"mkdir e"}},
		{"a directory made again under its name, alike", func() {
			// Renamed, not removed: a removed one's inode may be the new
			// one's on some filesystems.
			f.do(os.Rename(filepath.Join(f.root, "e"), filepath.Join(f.root, "e-old")))
			f.do(os.Mkdir(filepath.Join(f.root, "e"), 0o755))
			f.do(os.Chmod(filepath.Join(f.root, "e"), 0o755))
		}, []string{"attrib e", "mkdir e-old"}},
		{"delete a hostile name", func() { f.do(os.Remove(filepath.Join(f.root, "new\nline"))) }, []string{"remove new\nline"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			got := f.scan()
			sort.Strings(st.want)
			if !slices.Equal(got, st.want) {
				t.Fatalf("got %q, want %q", got, st.want)
			}
			f.recordAll(pathsOf(got)...)
			if again := f.scan(); len(again) != 0 {
				t.Fatalf("after recording, a scan still reports %q", again)
			}
		})
	}
}

// TestScanner_MovedEntries: the entries of a renamed tree, recorded under
// the new name as Moved ones (by the journal, with the rename), read as
// not indexed where the path exists (new to the peer's tree as the rename
// leaves it; a Write of a file rsync finds unchanged would be compared
// again by checksum) and as removed where it is gone (the peer holds it
// once it applies the rename), the top-most of a gone tree only.
func TestScanner_MovedEntries(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.do(os.MkdirAll(filepath.Join(f.root, "e/sub"), 0o755))
	f.write("e/a", "a")
	f.write("e/sub/b", "b")
	f.recordAll("e")
	f.do(f.idx.Update(func(tx *index.Tx) error {
		for _, p := range []string{"e/a", "e/sub", "e/sub/b", "e/gone", "e/gonedir", "e/gonedir/x"} {
			if err := tx.Put(p, index.Moved()); err != nil {
				return err
			}
		}
		return nil
	}))
	got := f.scan()
	want := []string{"create|write|found e/a", "create|write|found e/sub/b", "mkdir e/sub", "remove e/gone", "remove e/gonedir"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	f.recordAll(pathsOf(got)...)
	if again := f.scan(); len(again) != 0 {
		t.Fatalf("after recording, a scan still reports %q", again)
	}
	f.do(f.idx.View(func(tx *index.Tx) error {
		if _, ok, _ := tx.Get("e/gonedir/x"); ok {
			t.Error("e/gonedir/x is still indexed after its Moved directory's removal was recorded")
		}
		return nil
	}))
}

func TestScanner_ReceiverWritesAreNotLocalChanges(t *testing.T) {
	f := newFixture(t, t.TempDir())
	// The receiver writes a file and records its lstat in the index.
	f.write("from-peer", "peer data")
	f.recordAll("from-peer")
	if got := f.scan(); len(got) != 0 {
		t.Fatalf("a file the receiver wrote is reported as a local change: %q", got)
	}
	err := f.idx.View(func(tx *index.Tx) error {
		same, err := tx.Unchanged(f.rootfd, "from-peer", false)
		if err != nil || !same {
			return fmt.Errorf("Unchanged = %v, %v; want true", same, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A local process changes it afterwards: now it is a local change.
	time.Sleep(10 * time.Millisecond) // a distinct mtime on coarse clocks
	f.write("from-peer", "local edit")
	if got := f.scan(); !slices.Equal(got, []string{"write from-peer"}) {
		t.Fatalf("local edit after a received write: got %q", got)
	}
	err = f.idx.View(func(tx *index.Tx) error {
		same, err := tx.Unchanged(f.rootfd, "from-peer", false)
		if err != nil || same {
			return fmt.Errorf("Unchanged = %v, %v; want false", same, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestScanner_NeverLeavesTheRoot(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside + "/deep"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside+"/deep/secret", []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, root+"/evil"); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, root)
	got := f.scan()
	if !slices.Equal(got, []string{"create|write|found evil"}) {
		t.Fatalf("got %q, want only the symlink itself", got)
	}
}

func TestScanner_ExcludesReservedAndConfigured(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.sc.Exclude = func(rel string, _ bool) bool { return filepath.Ext(rel) == ".tmp" }
	f.write("keep", "k")
	f.write("skip.tmp", "s")
	f.do(os.WriteFile(filepath.Join(f.root, index.ReservedDir, "partial"), []byte("p"), 0o600))
	if got := f.scan(); !slices.Equal(got, []string{"create|write|found keep"}) {
		t.Fatalf("got %q", got)
	}
}

func TestSource_RefusesAnUnmountedRoot(t *testing.T) {
	root := tmpfs.Mount(t, "size=16m")
	f := newFixture(t, root)
	for i := range 20 {
		f.write(fmt.Sprintf("f%d", i), "data")
	}
	f.recordAll(pathsOf(f.scan())...)
	unix.Close(f.rootfd)
	if err := unix.Unmount(root, 0); err != nil {
		t.Fatal(err)
	}

	out := make(chan change.Change, 100)
	src := &Source{Scanner: f.sc, Interval: 10 * time.Millisecond}
	err := src.Run(context.Background(), out)
	if !errors.Is(err, index.ErrRootChanged) {
		t.Fatalf("Run = %v, want ErrRootChanged", err)
	}
	close(out)
	for c := range out {
		t.Errorf("reported %s %q from an unmounted root", c.Op, c.Path)
	}
}

// TestScanner_RefusesMassDeletion; removals the event source saw happen
// (SeenRemoved: they go to the peers as events anyway) count for no share.
func TestScanner_RefusesMassDeletion(t *testing.T) {
	tests := []struct {
		name    string
		delete  int
		share   float64 // MaxDeleteShare; 0 is the default, half
		allow   bool
		seen    int // of the deleted, how many the source saw removed
		wantErr bool
		want    int // removals reported
	}{
		{"a few deletions pass", 20, 0, false, 0, false, 20},
		{"more than half of the files is refused", 150, 0, false, 0, true, 0},
		{"the operator's word lets them pass", 150, 0, true, 0, false, 150},
		{"the default share refuses 120 of 200", 120, 0.5, false, 0, true, 0},
		{"a configured share of 0.8 lets 150 of 200 pass", 150, 0.8, false, 0, false, 150},
		{"a configured share of 0.6 refuses 150 of 200", 150, 0.6, false, 0, true, 0},
		{"150 of 200, all seen removed, pass", 150, 0, false, 150, false, 150},
		{"150 of 200, 60 seen removed: 90 unseen pass", 150, 0, false, 60, false, 150},
		{"180 of 200, 60 seen removed: 120 unseen are refused", 180, 0, false, 60, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, t.TempDir())
			all := f.indexedFiles(200)
			for _, n := range all[:tc.delete] {
				f.do(os.Remove(filepath.Join(f.root, n)))
			}
			f.sc.AllowMassDelete = tc.allow
			f.sc.MaxDeleteShare = tc.share
			seen := make(map[string]bool)
			for _, n := range all[:tc.seen] {
				seen[n] = true
			}
			f.sc.SeenRemoved = func(rel string) bool { return seen[rel] }
			out := make(chan change.Change, 1024)
			_, err := f.sc.Scan(context.Background(), ".", out)
			close(out)
			if gotErr := errors.Is(err, ErrMassDelete); gotErr != tc.wantErr {
				t.Fatalf("Scan error %v, want ErrMassDelete: %v", err, tc.wantErr)
			}
			n := 0
			for c := range out {
				if c.Op.Has(change.Remove) {
					n++
				}
			}
			if n != tc.want {
				t.Fatalf("%d removals reported, want %d", n, tc.want)
			}
		})
	}
}

// TestScanner_MassDeleteShareIsOfTheIndexBeforeTheScan: the files a scan
// finds new are journaled, and indexed, while it walks (here by a consumer
// that records each as the journal does); they must not dilute the share.
// A root rolled back to an older copy: 150 of its 200 indexed files gone,
// 400 older ones back. 150 of 200 is refused; counted against the index
// after the walk (about 600 paths) it would pass.
func TestScanner_MassDeleteShareIsOfTheIndexBeforeTheScan(t *testing.T) {
	f := newFixture(t, t.TempDir())
	all := f.indexedFiles(200)
	for _, n := range all[:150] {
		f.do(os.Remove(filepath.Join(f.root, n)))
	}
	for i := range 400 {
		f.write(fmt.Sprintf("old%03d", i), "x")
	}
	out := make(chan change.Change) // unbuffered: each new file is indexed before the walk goes on
	recorded := make(chan int)
	go func() {
		n := 0
		for c := range out {
			if c.Op.Has(change.Remove) {
				continue
			}
			if err := f.idx.Update(func(tx *index.Tx) error { return tx.Record(f.rootfd, c.Path) }); err != nil {
				t.Errorf("record %q: %v", c.Path, err)
			}
			n++
		}
		recorded <- n
	}()
	_, err := f.sc.Scan(context.Background(), ".", out)
	close(out)
	if n := <-recorded; n < 400 {
		t.Fatalf("%d new files recorded during the scan, want 400", n)
	}
	if !errors.Is(err, ErrMassDelete) {
		t.Fatalf("Scan error %v, want ErrMassDelete: 150 of the 200 files indexed before the scan are gone", err)
	}
}

// TestScanner_RefusesADirectoryReplaced: a directory holding most of the
// indexed files, replaced by a file or a symlink, would replace the
// peers' directory and all of it: a mass deletion, refused like one.
func TestScanner_RefusesADirectoryReplaced(t *testing.T) {
	tests := []struct {
		name    string
		replace func(f *fixture)
		allow   bool
		wantErr bool
	}{
		{"by a file", func(f *fixture) { f.write("d", "a file now") }, false, true},
		{"by a symlink", func(f *fixture) { f.do(os.Symlink("/elsewhere", filepath.Join(f.root, "d"))) }, false, true},
		{"by a file, with the operator's word", func(f *fixture) { f.write("d", "a file now") }, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, t.TempDir())
			f.do(os.Mkdir(filepath.Join(f.root, "d"), 0o755))
			all := []string{"d"}
			for i := range 150 {
				name := fmt.Sprintf("d/f%03d", i)
				f.write(name, "x")
				all = append(all, name)
			}
			for i := range 50 {
				name := fmt.Sprintf("g%03d", i)
				f.write(name, "x")
				all = append(all, name)
			}
			f.recordAll(all...)
			f.do(os.RemoveAll(filepath.Join(f.root, "d")))
			tc.replace(f)
			f.sc.AllowMassDelete = tc.allow
			out := make(chan change.Change, 1024)
			_, err := f.sc.Scan(context.Background(), ".", out)
			close(out)
			if gotErr := errors.Is(err, ErrMassDelete); gotErr != tc.wantErr {
				t.Fatalf("Scan error %v, want ErrMassDelete: %v", err, tc.wantErr)
			}
			var reported bool
			for c := range out {
				reported = reported || c.Path == "d"
			}
			if reported == tc.wantErr {
				t.Errorf("d reported: %v, want %v", reported, !tc.wantErr)
			}
		})
	}
}

// TestScanner_AllowMassDeleteIsForTheFirstFullScan: the operator's word
// lets the start scan's deletions pass, and no later scan's.
func TestScanner_AllowMassDeleteIsForTheFirstFullScan(t *testing.T) {
	f := newFixture(t, t.TempDir())
	all := f.indexedFiles(500)
	f.sc.AllowMassDelete = true
	scan := func(del []string) error {
		t.Helper()
		for _, n := range del {
			f.do(os.Remove(filepath.Join(f.root, n)))
		}
		out := make(chan change.Change, 1024)
		_, err := f.sc.Scan(context.Background(), ".", out)
		close(out)
		var gone []string
		for c := range out {
			gone = append(gone, c.Path)
		}
		if err == nil {
			err = f.idx.Update(func(tx *index.Tx) error { // as the journal records them
				for _, p := range gone {
					if err := tx.Delete(p); err != nil {
						return err
					}
				}
				return nil
			})
		}
		return err
	}
	if err := scan(all[:300]); err != nil {
		t.Fatalf("first full scan, 300 of 500 deleted, with the word: %v", err)
	}
	if err := scan(all[300:]); !errors.Is(err, ErrMassDelete) {
		t.Fatalf("second full scan, the other 200 of 200 deleted: %v, want ErrMassDelete", err)
	}
}

// TestSource_GoesOnAfterAnIncompleteScan: where the scanner is the only
// source, a scan that could not read a directory (here one whose path is
// longer than PATH_MAX) is logged, and the next scans still run; only a
// root that changed stops them (TestSource_StopsWhenTheRootChanges).
func TestSource_GoesOnAfterAnIncompleteScan(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.write("a", "data")
	// 20 levels of 250-byte names, made one level at a time.
	fd, err := unix.Dup(f.rootfd)
	f.do(err)
	for range 20 {
		name := strings.Repeat("d", 250)
		f.do(unix.Mkdirat(fd, name, 0o755))
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		f.do(err)
		fd = next
	}
	unix.Close(fd)
	if _, err := f.sc.Scan(context.Background(), ".", make(chan change.Change, 1024)); err == nil {
		t.Fatal("a scan read a directory deeper than PATH_MAX: the test no longer makes an incomplete scan")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	scans := 0
	src := &Source{Scanner: f.sc, Interval: time.Millisecond, Scanned: func(string) {
		if scans++; scans >= 3 {
			cancel()
		}
	}}
	if err := src.Run(ctx, make(chan change.Change, 1<<16)); err != nil {
		t.Fatalf("Run = %v after %d scans, want it to go on until cancelled", err, scans)
	}
	if scans < 3 {
		t.Errorf("%d scans, want 3", scans)
	}
}

func TestSource_ReportsEachScanWithItsReason(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.write("a", "data")
	var reasons []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := &Source{Scanner: f.sc, Interval: time.Millisecond, Scanned: func(reason string) {
		reasons = append(reasons, reason) // Run calls it from its own goroutine only
		if len(reasons) >= 3 {
			cancel()
		}
	}}
	out := make(chan change.Change, 100)
	if err := src.Run(ctx, out); err != nil {
		t.Fatalf("Run = %v", err)
	}
	// The first three: the ticker may run one more before Run sees the end.
	if want := []string{"start", "interval", "interval"}; len(reasons) < 3 || !slices.Equal(reasons[:3], want) {
		t.Errorf("reasons = %q, want %q", reasons, want)
	}
}

// TestScanner_NeverOpensAFIFO: a new FIFO is compared by its lstat only.
// Opened to ask whether a writer holds it, it would release a writer
// blocked in its open (and a device would run its driver's open).
func TestScanner_NeverOpensAFIFO(t *testing.T) {
	f := newFixture(t, t.TempDir())
	fifo := filepath.Join(f.root, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	go func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil { // blocks until a reader opens it
			w.Close()
		}
		close(opened)
	}()
	t.Cleanup(func() {
		// Release the writer if it still waits.
		if r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			<-opened
			r.Close()
		}
	})
	time.Sleep(50 * time.Millisecond) // the writer is in its open
	if got := f.scan(); !slices.Contains(got, "create|write|found fifo") {
		t.Errorf("scan = %q, want the FIFO as new", got)
	}
	select {
	case <-opened:
		t.Error("the scan opened the FIFO: its blocked writer was released")
	case <-time.After(200 * time.Millisecond):
	}
}
