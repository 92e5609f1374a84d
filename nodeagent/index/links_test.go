//go:build linux || freebsd

package index

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

func TestTx_Links(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	file := func(ino, nlink uint64) Entry {
		return Entry{Size: 5, Mode: 0o644, Mtime: now, Ctime: now, Ino: ino, Nlink: nlink}
	}
	dir := Entry{Mode: os.ModeDir | 0o755, Mtime: now, Ctime: now, Ino: 50, Nlink: 3}
	put := func(rel string, e Entry) func(*Tx) error { return func(tx *Tx) error { return tx.Put(rel, e) } }
	del := func(rel string) func(*Tx) error { return func(tx *Tx) error { return tx.Delete(rel) } }
	mv := func(from, to string) func(*Tx) error { return func(tx *Tx) error { return tx.Move(from, to) } }
	tests := []struct {
		name  string
		steps []func(*Tx) error
		want  map[uint64][]string // inode -> Links
	}{
		{
			name:  "two names recorded: each finds the other",
			steps: []func(*Tx) error{put("a", file(7, 2)), put("d/b", file(7, 2))},
			want:  map[uint64][]string{7: {"a", "d/b"}},
		},
		{
			name:  "a single-link file is listed under its inode",
			steps: []func(*Tx) error{put("a", file(7, 1)), put("b", file(8, 0))},
			want:  map[uint64][]string{7: {"a"}, 8: {"b"}},
		},
		{
			name:  "a link made after the first name was recorded with one link finds it",
			steps: []func(*Tx) error{put("a", file(7, 1)), put("b", file(7, 2))},
			want:  map[uint64][]string{7: {"a", "b"}},
		},
		{
			name:  "a directory's link count is not a hard link",
			steps: []func(*Tx) error{put("d", dir)},
			want:  map[uint64][]string{50: nil},
		},
		{
			name:  "a path recorded again with another inode moves",
			steps: []func(*Tx) error{put("a", file(7, 2)), put("b", file(7, 2)), put("a", file(9, 2))},
			want:  map[uint64][]string{7: {"b"}, 9: {"a"}},
		},
		{
			name:  "a path whose link count drops to 1 stays under its inode",
			steps: []func(*Tx) error{put("a", file(7, 2)), put("b", file(7, 2)), put("b", file(7, 1))},
			want:  map[uint64][]string{7: {"a", "b"}},
		},
		{
			name:  "a placeholder entry (received path gone again) leaves",
			steps: []func(*Tx) error{put("a", file(7, 2)), put("a", Entry{Size: -1})},
			want:  map[uint64][]string{7: nil},
		},
		{
			name:  "a deleted path disappears",
			steps: []func(*Tx) error{put("a", file(7, 2)), put("b", file(7, 2)), del("a")},
			want:  map[uint64][]string{7: {"b"}},
		},
		{
			name: "a deleted directory takes the names below it",
			steps: []func(*Tx) error{put("d", dir), put("d/e", dir), put("d/e/x", file(7, 3)), put("d/y", file(7, 3)),
				put("top", file(7, 3)), del("d")},
			want: map[uint64][]string{7: {"top"}},
		},
		{
			name:  "a moved directory takes its names' links along",
			steps: []func(*Tx) error{put("d", dir), put("d/x", file(7, 2)), put("top", file(7, 2)), mv("d", "e")},
			want:  map[uint64][]string{7: {"e/x", "top"}},
		},
		{
			name:  "inodes do not mix (prefix of another inode's key)",
			steps: []func(*Tx) error{put("a", file(1, 2)), put("b", file(256, 2)), put("c", file(1<<56, 2))},
			want:  map[uint64][]string{1: {"a"}, 256: {"b"}, 1 << 56: {"c"}, 0: nil},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := openTemp(t)
			for i, step := range tc.steps {
				if err := x.Update(step); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			for ino, want := range tc.want {
				got, err := x.Links(ino, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("Links(%d) = %q, want %q", ino, got, want)
				}
			}
		})
	}
}

func TestIndex_LinksLimit(t *testing.T) {
	x := openTemp(t)
	err := x.Update(func(tx *Tx) error {
		for _, rel := range []string{"a", "b", "c"} {
			if err := tx.Put(rel, Entry{Mode: 0o644, Ino: 7, Nlink: 3}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := x.Links(7, 2); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Links(7, 2) = %q", got)
	}
}

// TestTx_RecordLinks records real hard links through Record, as the
// journal and the receiver do.
func TestTx_RecordLinks(t *testing.T) {
	x, root := openTemp(t), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "a"), []byte("one"), 0o644))
	must(os.Link(filepath.Join(root, "a"), filepath.Join(root, "b")))
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(rootfd)
	record := func(rels ...string) {
		t.Helper()
		must(x.Update(func(tx *Tx) error {
			for _, rel := range rels {
				if err := tx.Record(rootfd, rel); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	inode := func(rel string) uint64 {
		t.Helper()
		var st unix.Stat_t
		must(unix.Lstat(filepath.Join(root, rel), &st))
		return uint64(st.Ino)
	}
	links := func(ino uint64) []string {
		t.Helper()
		got, err := x.Links(ino, 0)
		must(err)
		return got
	}
	record("a", "b")
	ino := inode("a")
	if got := links(ino); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after recording a and b: Links = %q", got)
	}
	// a replaced by rename (a new inode): it moves; removing b leaves
	// nothing under the old inode.
	must(os.WriteFile(filepath.Join(root, "tmp"), []byte("two"), 0o644))
	must(os.Rename(filepath.Join(root, "tmp"), filepath.Join(root, "a")))
	must(os.Remove(filepath.Join(root, "b")))
	record("a", "b")
	if got := links(ino); len(got) != 0 {
		t.Errorf("after replacing a and removing b: Links(old) = %q", got)
	}
	if got := links(inode("a")); !slices.Equal(got, []string{"a"}) {
		t.Errorf("the new single-link a: Links = %q, want [a]", got)
	}
}

// TestOpen_BuildsLinks opens a database written before the links bucket
// existed: the entries already there get into it.
func TestOpen_BuildsLinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = x.Update(func(tx *Tx) error {
		for rel, e := range map[string]Entry{
			"a": {Mode: 0o644, Ino: 7, Nlink: 2}, "d/b": {Mode: 0o644, Ino: 7, Nlink: 2},
			"single": {Mode: 0o644, Ino: 8, Nlink: 1}, "d": {Mode: os.ModeDir | 0o755, Ino: 9, Nlink: 2},
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
	if err := x.DB().Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLinks) }); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for ino, want := range map[uint64][]string{7: {"a", "d/b"}, 8: {"single"}, 9: nil} {
		if got, err := x.Links(ino, 0); err != nil || !slices.Equal(got, want) {
			t.Errorf("Links(%d) = %q, %v; want %q", ino, got, err, want)
		}
	}
}
