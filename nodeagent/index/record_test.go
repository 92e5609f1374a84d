package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTx_RecordChanged_directories: a directory's times move with every
// entry made in it (changes of their own), so they do not make it changed;
// its mode does, and so does another directory made under its name (mv d
// e; mkdir d, compared before the rename was recorded: taken for the old
// d, it was dropped, and the peers lost d with their rename). Compared
// with dirTimes (an attribute change of the directory itself), its times
// count: a touch -d that changed nothing else went to no peer.
func TestTx_RecordChanged_directories(t *testing.T) {
	for _, tc := range []struct {
		name        string
		change      func(t *testing.T, dir string)
		wantChanged bool
		// wantTimes: changed, compared with dirTimes.
		wantTimes bool
	}{
		{"an entry made in it", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "f")) }, false, true},
		{"its mode", func(t *testing.T, dir string) { must(t, os.Chmod(dir, 0o700)) }, true, true},
		{"its times set", func(t *testing.T, dir string) {
			must(t, os.Chtimes(dir, time.Unix(1514746671, 0), time.Unix(1514746671, 0)))
		}, false, true},
		{"nothing", func(*testing.T, string) {}, false, false},
		{"made again", func(t *testing.T, dir string) {
			must(t, os.Rename(dir, dir+".old"))
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.Chmod(dir, 0o755)) // the same mode and owner as the old one
		}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "d")
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.Chmod(dir, 0o755))
			rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			must(t, err)
			t.Cleanup(func() { unix.Close(rootfd) })
			x := openTemp(t)
			must(t, x.Update(func(tx *Tx) error { _, _, _, _, err := tx.RecordChanged(rootfd, "d", false); return err }))
			tc.change(t, dir)
			for _, dirTimes := range []bool{false, true} {
				want := tc.wantChanged
				if dirTimes {
					want = tc.wantTimes
				}
				var changed, unchanged bool
				must(t, x.View(func(tx *Tx) (err error) { unchanged, err = tx.Unchanged(rootfd, "d", dirTimes); return err }))
				// In a transaction rolled back: the other comparison
				// reads the entry as it was.
				errRollback := errors.New("rollback")
				err := x.Update(func(tx *Tx) (err error) {
					if _, _, _, changed, err = tx.RecordChanged(rootfd, "d", dirTimes); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					t.Fatal(err)
				}
				if changed != want || unchanged == want {
					t.Errorf("dirTimes %v: RecordChanged: changed %v, Unchanged %v; want changed %v", dirTimes, changed, unchanged, want)
				}
			}
		})
	}
}

func write(t *testing.T, path string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte("x"), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTx_RecordChanged_files: a file whose link count and ctime alone
// moved (a name of it made or removed) is recorded as it is now and not
// reported changed, so that a later write that keeps its size and mtime
// is still told from the index; Unchanged, which records nothing, still
// reports it. A write that keeps the size and mtime is a change.
func TestTx_RecordChanged_files(t *testing.T) {
	for _, tc := range []struct {
		name          string
		change        func(t *testing.T, root string)
		wantChanged   bool
		wantUnchanged bool
	}{
		{"nothing", func(*testing.T, string) {}, false, true},
		{"a name made", func(t *testing.T, root string) {
			must(t, os.Link(filepath.Join(root, "f"), filepath.Join(root, "g")))
		}, false, false},
		{"a name removed", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "h")))
		}, false, false},
		{"a name made and its mode changed", func(t *testing.T, root string) {
			must(t, os.Link(filepath.Join(root, "f"), filepath.Join(root, "g")))
			must(t, os.Chmod(filepath.Join(root, "f"), 0o600))
		}, true, false},
		{"written, size and mtime kept", func(t *testing.T, root string) {
			p := filepath.Join(root, "f")
			st, err := os.Stat(p)
			must(t, err)
			must(t, os.WriteFile(p, []byte("zz"), 0o644))
			must(t, os.Chtimes(p, st.ModTime(), st.ModTime()))
		}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "f")
			must(t, os.WriteFile(p, []byte("ab"), 0o644))
			must(t, os.Chmod(p, 0o644))
			must(t, os.Link(p, filepath.Join(root, "h")))
			rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			must(t, err)
			t.Cleanup(func() { unix.Close(rootfd) })
			x := openTemp(t)
			must(t, x.Update(func(tx *Tx) error { _, _, _, _, err := tx.RecordChanged(rootfd, "f", false); return err }))
			time.Sleep(10 * time.Millisecond) // a ctime of its own for the change
			tc.change(t, root)
			var unchanged, changed bool
			must(t, x.View(func(tx *Tx) (err error) { unchanged, err = tx.Unchanged(rootfd, "f", false); return err }))
			must(t, x.Update(func(tx *Tx) (err error) { _, _, _, changed, err = tx.RecordChanged(rootfd, "f", false); return err }))
			if changed != tc.wantChanged || unchanged != tc.wantUnchanged {
				t.Errorf("RecordChanged changed = %v, Unchanged = %v; want %v, %v", changed, unchanged, tc.wantChanged, tc.wantUnchanged)
			}
			// Recorded either way: the index now holds the file as it is.
			must(t, x.View(func(tx *Tx) (err error) { unchanged, err = tx.Unchanged(rootfd, "f", false); return err }))
			if !unchanged {
				t.Error("after RecordChanged, Unchanged = false, want true")
			}
		})
	}
}

// TestTx_RecordFound: what a caller's lstat found is what the index
// holds, not the path as it is when the entry is written. A file written
// between the two then differs from the index, and its change is told
// from what was recorded (the receiver records a received file so, once
// it found it as the sender sent it). An lstat that found nothing removes
// the entry; one that failed otherwise is ErrUnreadable. UnchangedFound
// compares what was found in the same way.
func TestTx_RecordFound(t *testing.T) {
	for _, tc := range []struct {
		name string
		// after runs between the caller's lstat and the record.
		after         func(t *testing.T, p string)
		lerr          error // the lstat's error to give, if not its own
		wantHeld      bool  // an entry for "f" after the record
		wantSize      int64 // its size
		wantUnchanged bool  // Unchanged after the record
		wantErr       error
	}{
		{"nothing happens", func(*testing.T, string) {}, nil, true, 2, true, nil},
		{"written after the lstat", func(t *testing.T, p string) {
			must(t, os.WriteFile(p, []byte("abcd"), 0o644))
		}, nil, true, 2, false, nil},
		{"removed after the lstat", func(t *testing.T, p string) { must(t, os.Remove(p)) }, nil, true, 2, false, nil},
		{"gone when lstatted", func(*testing.T, string) {}, unix.ENOENT, false, 0, false, nil},
		{"unreadable when lstatted", func(*testing.T, string) {}, unix.EIO, true, 1, false, ErrUnreadable}, // left as it was
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "f")
			must(t, os.WriteFile(p, []byte("x"), 0o644))
			rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			must(t, err)
			t.Cleanup(func() { unix.Close(rootfd) })
			x := openTemp(t)
			must(t, x.Update(func(tx *Tx) error { return tx.Record(rootfd, "f") })) // 1 byte
			must(t, os.WriteFile(p, []byte("ab"), 0o644))
			var st unix.Stat_t
			lerr := unix.Lstat(p, &st)
			must(t, lerr)
			if tc.lerr != nil {
				lerr = tc.lerr
			}
			tc.after(t, p)
			err = x.Update(func(tx *Tx) error { return tx.RecordFound("f", &st, lerr) })
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("RecordFound: %v, want %v", err, tc.wantErr)
			}
			var e Entry
			var held, unchanged bool
			must(t, x.View(func(tx *Tx) (err error) {
				if e, held, err = tx.Get("f"); err != nil {
					return err
				}
				unchanged, err = tx.Unchanged(rootfd, "f", false)
				return err
			}))
			if held != tc.wantHeld || held && e.Size != tc.wantSize || unchanged != tc.wantUnchanged {
				t.Errorf("after RecordFound: held %v (size %d), Unchanged %v; want held %v (size %d), Unchanged %v",
					held, e.Size, unchanged, tc.wantHeld, tc.wantSize, tc.wantUnchanged)
			}
			// What was found and recorded compares as the index holds it.
			if tc.wantErr == nil {
				var sameFound bool
				must(t, x.View(func(tx *Tx) (err error) { sameFound, err = tx.UnchangedFound("f", &st, lerr, false); return err }))
				if !sameFound {
					t.Error("UnchangedFound of what was recorded = false, want true")
				}
			}
		})
	}
}
