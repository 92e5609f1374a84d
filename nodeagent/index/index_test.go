package index

import (
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Index {
	t.Helper()
	x, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Close() })
	return x
}

func TestKey_RoundTrip(t *testing.T) {
	for _, rel := range []string{".", "a", "a/b", "a/b/c", "-n", "#x", "sp ace/new\nline", "\xff\xfe/\x01", "a/.jailsync"} {
		if got := PathOf(Key(rel)); got != rel {
			t.Errorf("PathOf(Key(%q)) = %q", rel, got)
		}
	}
}

func TestTx_PutGetChildrenDelete(t *testing.T) {
	x := openTemp(t)
	now := time.Unix(1_700_000_000, 123456789)
	dir := Entry{Mode: os.ModeDir | 0o755, Mtime: now, Ctime: now, Ino: 1}
	file := func(size int64) Entry {
		return Entry{Size: size, Mode: 0o644, Mtime: now, Ctime: now, Ino: uint64(size)}
	}
	err := x.Update(func(tx *Tx) error {
		for rel, e := range map[string]Entry{
			".": dir, "a": dir, "a/b": dir, "a/b/deep": file(1), "a/x": file(2), "a/x y": file(3),
			"ab": file(4), "a\xff": file(5), "z": file(6),
			// A placeholder (a directory made again under a rename's old
			// name) with entries below it.
			"a/p": {Size: -1}, "a/p/q": file(7),
			// Entries below a directory that is not indexed (a gap: a
			// receiver's replay records the parents it made last).
			"a/g/h/i": file(8), "a/g/h/i/j": file(9),
		} {
			if err := tx.Put(rel, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	children := func(dir string) []string {
		var names []string
		err := x.View(func(tx *Tx) error {
			return tx.Children(dir, func(name string, _ Entry) error { names = append(names, name); return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	tests := []struct {
		dir  string
		want []string
	}{
		{".", []string{"a", "ab", "a\xff", "z"}},
		{"a", []string{"b", "p", "x", "x y"}},
		{"a/g/h", []string{"i"}},
		{"a/b", []string{"deep"}},
		{"z", nil},
	}
	for _, tc := range tests {
		if got := children(tc.dir); !slices.Equal(got, tc.want) {
			t.Errorf("Children(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
	_ = x.View(func(tx *Tx) error {
		e, ok, err := tx.Get("a/x y")
		if err != nil || !ok || e.Size != 3 || !e.Mtime.Equal(now) || e.Mode != 0o644 {
			t.Errorf("Get(a/x y) = %+v, %v, %v", e, ok, err)
		}
		return nil
	})
	if err := x.Update(func(tx *Tx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	_ = x.View(func(tx *Tx) error {
		for _, rel := range []string{"a", "a/b", "a/b/deep", "a/x", "a/x y", "a/p", "a/p/q", "a/g/h/i", "a/g/h/i/j"} {
			if _, ok, _ := tx.Get(rel); ok {
				t.Errorf("%q still indexed after deleting a", rel)
			}
		}
		for _, rel := range []string{".", "ab", "a\xff", "z"} {
			if _, ok, _ := tx.Get(rel); !ok {
				t.Errorf("%q lost when deleting a", rel)
			}
		}
		return nil
	})
}

// TestTx_Move: a rename's entries move with it, values kept, and nothing
// else: not a sibling whose name has the old name as a prefix, and what
// was indexed at the new name goes.
func TestTx_Move(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	dir := Entry{Mode: os.ModeDir | 0o755, Mtime: now, Ctime: now, Ino: 1}
	file := func(ino uint64) Entry { return Entry{Size: int64(ino), Mode: 0o644, Mtime: now, Ctime: now, Ino: ino} }
	for _, tc := range []struct {
		name     string
		from, to string
		before   map[string]Entry
		after    map[string]Entry // every entry indexed after the move
	}{
		{
			name: "a file",
			from: "a", to: "d/b",
			before: map[string]Entry{"a": file(2), "ab": file(3), "d": dir},
			after:  map[string]Entry{"d/b": file(2), "ab": file(3), "d": dir},
		},
		{
			name: "a tree, its siblings left",
			from: "a", to: "e",
			before: map[string]Entry{"a": dir, "a/x": file(2), "a/s": dir, "a/s/y": file(3), "a\xff": file(4), "ab/z": file(5), "a/p": {Size: -1}, "a/p/q": file(6)},
			after:  map[string]Entry{"e": dir, "e/x": file(2), "e/s": dir, "e/s/y": file(3), "a\xff": file(4), "ab/z": file(5), "e/p": {Size: -1}, "e/p/q": file(6)},
		},
		{
			name: "onto a name indexed before",
			from: "a", to: "e",
			before: map[string]Entry{"a": dir, "a/x": file(2), "e": dir, "e/old": file(3)},
			after:  map[string]Entry{"e": dir, "e/x": file(2)},
		},
		{
			name: "a name the index does not hold",
			from: "a", to: "e",
			before: map[string]Entry{"e": file(3), "b": file(4)},
			after:  map[string]Entry{"b": file(4)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := openTemp(t)
			err := x.Update(func(tx *Tx) error {
				for rel, e := range tc.before {
					if err := tx.Put(rel, e); err != nil {
						return err
					}
				}
				return tx.Move(tc.from, tc.to)
			})
			if err != nil {
				t.Fatal(err)
			}
			got := make(map[string]Entry)
			err = x.View(func(tx *Tx) error {
				c := tx.b.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					e, err := unmarshalEntry(v)
					if err != nil {
						return err
					}
					got[PathOf(k)] = e
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.after) {
				t.Errorf("indexed after the move: %v, want %v", got, tc.after)
			}
			for rel, want := range tc.after {
				if e, ok := got[rel]; !ok || !e.Matches(want) || e.Size != want.Size {
					t.Errorf("%q: %+v (held %v), want %+v", rel, e, ok, want)
				}
			}
		})
	}
}

// TestTx_HasBelow: anything indexed below a directory, at any depth,
// counts; a sibling whose name has the directory's as a prefix does not,
// nor the root's own entry for the root. EachBelow gives the same paths,
// the directories in between indexed or not.
func TestTx_HasBelow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		indexed []string
		dir     string
		want    []string // EachBelow, in key order
	}{
		{"nothing indexed", nil, "a", nil},
		{"the directory alone", []string{"a"}, "a", nil},
		{"a child", []string{"a", "a/x"}, "a", []string{"a/x"}},
		{"a deeper entry only", []string{"a", "a/s/y"}, "a", []string{"a/s/y"}},
		{"siblings with its name as a prefix", []string{"a", "a\xff", "ab/z", "a-b"}, "a", nil},
		{"the root's own entry", []string{"."}, ".", nil},
		{"below the root", []string{".", "x"}, ".", []string{"x"}},
		{"below the root, deeper only", []string{".", "d/e/f"}, ".", []string{"d/e/f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := openTemp(t)
			var (
				has  bool
				each []string
			)
			err := x.Update(func(tx *Tx) error {
				for _, rel := range tc.indexed {
					if err := tx.Put(rel, Entry{Size: 1, Mode: 0o644}); err != nil {
						return err
					}
				}
				has = tx.HasBelow(tc.dir)
				return tx.EachBelow(tc.dir, func(rel string, _ Entry) error {
					each = append(each, rel)
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := len(tc.want) > 0; has != want {
				t.Errorf("HasBelow(%q) = %v, want %v", tc.dir, has, want)
			}
			if !slices.Equal(each, tc.want) {
				t.Errorf("EachBelow(%q) = %q, want %q", tc.dir, each, tc.want)
			}
		})
	}
}

func TestEntry_Matches(t *testing.T) {
	base := Entry{Size: 10, Mtime: time.Unix(1, 0), Ctime: time.Unix(2, 0), Mode: 0o644, UID: 1, GID: 1, Ino: 7}
	tests := []struct {
		name   string
		mutate func(*Entry)
		want   bool
	}{
		{"same", func(*Entry) {}, true},
		{"size", func(e *Entry) { e.Size++ }, false},
		{"mtime", func(e *Entry) { e.Mtime = e.Mtime.Add(time.Nanosecond) }, false},
		{"ctime (chmod back and forth)", func(e *Entry) { e.Ctime = e.Ctime.Add(time.Second) }, false},
		{"mode", func(e *Entry) { e.Mode = 0o600 }, false},
		{"owner", func(e *Entry) { e.UID = 2 }, false},
		{"inode (replaced by rename)", func(e *Entry) { e.Ino = 8 }, false},
		{"link count alone", func(e *Entry) { e.Nlink = 3 }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mutate(&o)
			if got := base.Matches(o); got != tc.want {
				t.Fatalf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEntry_Diff(t *testing.T) {
	base := Entry{Size: 10, Mtime: time.Unix(1, 0), Ctime: time.Unix(2, 0), Mode: 0o644, UID: 1, GID: 1, Ino: 7, Nlink: 2}
	tests := []struct {
		name   string
		mutate func(*Entry)
		want   string
	}{
		{"same", func(*Entry) {}, ""},
		{"a write", func(e *Entry) { e.Size, e.Mtime, e.Ctime = 11, e.Mtime.Add(time.Second), e.Ctime.Add(time.Second) }, "size,mtime,ctime"},
		{"a link made elsewhere", func(e *Entry) { e.Ctime, e.Nlink = e.Ctime.Add(time.Second), 3 }, "ctime,links"},
		{"chmod", func(e *Entry) { e.Mode = 0o600 }, "mode"},
		{"chgrp", func(e *Entry) { e.GID = 2 }, "owner"},
		{"another file", func(e *Entry) { e.Ino = 8 }, "inode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mutate(&o)
			if got := base.Diff(o); got != tc.want {
				t.Fatalf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEntry_LinksOnly(t *testing.T) {
	file := Entry{Size: 10, Mtime: time.Unix(1, 0), Ctime: time.Unix(2, 0), Mode: 0o644, UID: 1, GID: 1, Ino: 7, Nlink: 2}
	dir := file
	dir.Mode = fs.ModeDir | 0o755
	tests := []struct {
		name   string
		base   Entry
		mutate func(*Entry)
		want   bool
	}{
		{"a link made", file, func(e *Entry) { e.Ctime, e.Nlink = e.Ctime.Add(time.Second), 3 }, true},
		{"a link removed", file, func(e *Entry) { e.Ctime, e.Nlink = e.Ctime.Add(time.Second), 1 }, true},
		{"the same", file, func(*Entry) {}, false},
		{"ctime alone (chmod back and forth)", file, func(e *Entry) { e.Ctime = e.Ctime.Add(time.Second) }, false},
		{"a link and a write", file, func(e *Entry) { e.Nlink, e.Size = 3, 11 }, false},
		{"a link and a chmod", file, func(e *Entry) { e.Nlink, e.Mode = 3, 0o600 }, false},
		{"a directory's link count (a subdirectory made)", dir, func(e *Entry) { e.Ctime, e.Nlink = e.Ctime.Add(time.Second), 3 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.base
			tc.mutate(&o)
			if got := tc.base.LinksOnly(o); got != tc.want {
				t.Fatalf("LinksOnly = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEntry_DirMatches(t *testing.T) {
	base := Entry{Size: 4096, Mtime: time.Unix(1, 0), Ctime: time.Unix(2, 0), Mode: fs.ModeDir | 0o755, UID: 1, GID: 1, Ino: 7, Nlink: 2}
	tests := []struct {
		name   string
		mutate func(*Entry)
		want   bool
	}{
		{"same", func(*Entry) {}, true},
		{"times (an entry made in it)", func(e *Entry) { e.Mtime, e.Ctime = e.Mtime.Add(time.Second), e.Ctime.Add(time.Second) }, true},
		{"size and link count (an entry made in it)", func(e *Entry) { e.Size, e.Nlink = 8192, 3 }, true},
		{"mode", func(e *Entry) { e.Mode = fs.ModeDir | 0o700 }, false},
		{"owner", func(e *Entry) { e.UID = 2 }, false},
		{"group", func(e *Entry) { e.GID = 2 }, false},
		{"inode (made again under the name)", func(e *Entry) { e.Ino = 8 }, false},
		{"a Moved entry", func(e *Entry) { *e = Moved() }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mutate(&o)
			if got := o.DirMatches(base); got != tc.want {
				t.Fatalf("DirMatches = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEntry_MarshalRoundTrip: an entry reads back as it was written, with
// times outside the years 1678-2262 too (as nanoseconds they wrapped, and
// the file never matched its entry); an entry of format 1 still reads,
// and its link is still found.
func TestEntry_MarshalRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    time.Time
	}{
		{"now", time.Unix(1_700_000_000, 123456789)},
		{"the year 2300", time.Date(2300, 1, 1, 0, 0, 0, 7, time.UTC)},
		{"the year 1600", time.Date(1600, 1, 1, 0, 0, 0, 999999999, time.UTC)},
		{"the epoch", time.Unix(0, 0)},
	} {
		e := Entry{Size: 5, Mtime: tc.t, Ctime: tc.t.Add(time.Second), Mode: 0o644, UID: 1, GID: 2, Ino: 42, Nlink: 2, Version: []byte("v")}
		got, err := unmarshalEntry(e.marshal())
		if err != nil || !got.Matches(e) || got.Nlink != 2 || string(got.Version) != "v" {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, e)
		}
	}
	// Format 1, as the agents before it wrote it.
	now := time.Unix(1_700_000_000, 5)
	v1 := make([]byte, fixedLenV1)
	v1[0] = entryFormatV1
	binary.BigEndian.PutUint64(v1[1:], 5)
	binary.BigEndian.PutUint64(v1[9:], uint64(now.UnixNano()))
	binary.BigEndian.PutUint64(v1[17:], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(v1[25:], 0o644)
	binary.BigEndian.PutUint64(v1[37:], 42)
	want := Entry{Size: 5, Mtime: now, Ctime: now, Mode: 0o644, Ino: 42}
	if got, err := unmarshalEntry(v1); err != nil || !got.Matches(want) {
		t.Errorf("format 1: %+v, %v; want %+v", got, err, want)
	}
	if ino, ok := storedLink(v1); !ok || ino != 42 {
		t.Errorf("format 1 link: %d, %v; want 42", ino, ok)
	}
	if _, err := unmarshalEntry([]byte{9, 1, 2}); err == nil {
		t.Error("an unknown format decoded")
	}
}
