package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"strings"
	"time"
)

// Entry is what the index knows of one path.
type Entry struct {
	Size  int64
	Mtime time.Time
	Ctime time.Time
	Mode  fs.FileMode
	UID   uint32
	GID   uint32
	Ino   uint64
	Nlink uint64
	// Version is reserved for multi-master version data (opaque here).
	Version []byte
}

// Matches reports whether e and o describe the same state of a path: the
// fields a write, chmod, chown, touch, rename over or replace would change.
// Version is not compared.
func (e Entry) Matches(o Entry) bool {
	return e.Size == o.Size && e.Mtime.Equal(o.Mtime) && e.Ctime.Equal(o.Ctime) &&
		e.Mode == o.Mode && e.UID == o.UID && e.GID == o.GID && e.Ino == o.Ino
}

// DirMatches reports whether o is still the directory e describes: the
// same mode, owner and inode. Its times are not compared: they move with
// every entry made in it, which are changes of their own. A directory
// made again under the name is another one (mv d e; mkdir d): its inode
// differs.
func (e Entry) DirMatches(o Entry) bool {
	return e.Mode == o.Mode && e.UID == o.UID && e.GID == o.GID && e.Ino == o.Ino
}

// ContentMatches reports whether only metadata (mode, owner, ctime, link
// count) can differ between e and o: same type, size, mtime and inode.
func (e Entry) ContentMatches(o Entry) bool {
	return e.Size == o.Size && e.Mtime.Equal(o.Mtime) && e.Ino == o.Ino && e.Mode.Type() == o.Mode.Type()
}

// LinksMatch reports whether e and o differ at most in their ctime and
// link count, which a name of the same file made or removed elsewhere
// moves: the same inode, type, size, mtime, mode and owner.
func (e Entry) LinksMatch(o Entry) bool {
	return e.ContentMatches(o) && e.Mode == o.Mode && e.UID == o.UID && e.GID == o.GID
}

// Diff names the fields in which e and o differ (size, mtime, ctime,
// mode, owner, inode, links), comma-separated; "" when none does. For
// logs: what made a path read as changed.
func (e Entry) Diff(o Entry) string {
	var d []string
	for _, f := range []struct {
		name   string
		differ bool
	}{
		{"size", e.Size != o.Size},
		{"mtime", !e.Mtime.Equal(o.Mtime)},
		{"ctime", !e.Ctime.Equal(o.Ctime)},
		{"mode", e.Mode != o.Mode},
		{"owner", e.UID != o.UID || e.GID != o.GID},
		{"inode", e.Ino != o.Ino},
		{"links", e.Nlink != o.Nlink},
	} {
		if f.differ {
			d = append(d, f.name)
		}
	}
	return strings.Join(d, ",")
}

// LinksOnly reports whether o, a regular file, differs from e in its link
// count and ctime alone (and LinksMatch): a name of the same file made or
// removed (ln, rm, or rsync -H on a receiver) moves both, and nothing of
// the file itself changed. A write that keeps size and mtime while a name
// of the file is made or removed, in the same tick, is taken for the link
// alone.
func (e Entry) LinksOnly(o Entry) bool {
	return o.Mode.IsRegular() && e.LinksMatch(o) && e.Nlink != o.Nlink
}

// IsDir reports whether the entry is a directory.
func (e Entry) IsDir() bool { return e.Mode.IsDir() }

// movedSize marks a Moved entry; -1 (Entry{Size: -1}) marks one that
// matches nothing.
const movedSize = -2

// Moved returns the entry of a path below a directory renamed here,
// recorded under its new name with the rename (the journal's) until a
// scan of the new tree records the path as it is. It matches nothing, and
// a scan reports the path, where it exists, as new (the peer holds it once
// it applies the rename, and rsync then only verifies it); where it is
// gone, as removed: the removal of a path just renamed (mv d e; rm e/x)
// finds the entry and goes to the peers, which hold e/x once they apply
// the rename.
func Moved() Entry { return Entry{Size: movedSize} }

// IsMoved reports whether e is a Moved entry.
func (e Entry) IsMoved() bool { return e.Size == movedSize }

// IsPlaceholder reports whether e stands for a path without its state:
// an entry that matches nothing (Size -1), or a Moved one.
func (e Entry) IsPlaceholder() bool { return e.Size < 0 }

// MayHaveChildren reports whether entries may be indexed below e's path:
// a directory's, or a placeholder's, which may stand for a directory.
func (e Entry) MayHaveChildren() bool { return e.IsDir() || e.IsPlaceholder() }

// entryFormat is the first byte of every entry encoded now. Format 2
// stores times as seconds and nanoseconds (at the end of the fixed part,
// so that mode and inode keep their offsets); format 1, still read, stored
// them as Unix nanoseconds, which wrap outside the years 1678-2262: a file
// touched to 2300 never matched its entry, and went out as changed at
// every scan.
const (
	entryFormat   = 2
	entryFormatV1 = 1
)

// fixedLen is the encoded size of an entry without its Version; fixedLenV1
// that of format 1.
const (
	fixedLenV1 = 1 + 8 + 8 + 8 + 4 + 4 + 4 + 8 + 8
	fixedLen   = fixedLenV1 + 4 + 4
)

// errCorruptEntry is returned for a stored entry that cannot be decoded.
var errCorruptEntry = errors.New("corrupt index entry")

func (e Entry) marshal() []byte {
	b := make([]byte, fixedLen, fixedLen+len(e.Version))
	b[0] = entryFormat
	binary.BigEndian.PutUint64(b[1:], uint64(e.Size))
	binary.BigEndian.PutUint64(b[9:], uint64(e.Mtime.Unix()))
	binary.BigEndian.PutUint64(b[17:], uint64(e.Ctime.Unix()))
	binary.BigEndian.PutUint32(b[25:], uint32(e.Mode))
	binary.BigEndian.PutUint32(b[29:], e.UID)
	binary.BigEndian.PutUint32(b[33:], e.GID)
	binary.BigEndian.PutUint64(b[37:], e.Ino)
	binary.BigEndian.PutUint64(b[45:], e.Nlink)
	binary.BigEndian.PutUint32(b[53:], uint32(e.Mtime.Nanosecond()))
	binary.BigEndian.PutUint32(b[57:], uint32(e.Ctime.Nanosecond()))
	return append(b, e.Version...)
}

// entryLen returns the fixed length of an encoded entry of b's format, or
// 0 when b is not one.
func entryLen(b []byte) int {
	switch {
	case len(b) >= fixedLen && b[0] == entryFormat:
		return fixedLen
	case len(b) >= fixedLenV1 && b[0] == entryFormatV1:
		return fixedLenV1
	}
	return 0
}

func unmarshalEntry(b []byte) (Entry, error) {
	n := entryLen(b)
	if n == 0 {
		return Entry{}, errCorruptEntry
	}
	e := Entry{
		Size:  int64(binary.BigEndian.Uint64(b[1:])),
		Mode:  fs.FileMode(binary.BigEndian.Uint32(b[25:])),
		UID:   binary.BigEndian.Uint32(b[29:]),
		GID:   binary.BigEndian.Uint32(b[33:]),
		Ino:   binary.BigEndian.Uint64(b[37:]),
		Nlink: binary.BigEndian.Uint64(b[45:]),
	}
	if b[0] == entryFormatV1 {
		e.Mtime = time.Unix(0, int64(binary.BigEndian.Uint64(b[9:])))
		e.Ctime = time.Unix(0, int64(binary.BigEndian.Uint64(b[17:])))
	} else {
		e.Mtime = time.Unix(int64(binary.BigEndian.Uint64(b[9:])), int64(binary.BigEndian.Uint32(b[53:])))
		e.Ctime = time.Unix(int64(binary.BigEndian.Uint64(b[17:])), int64(binary.BigEndian.Uint32(b[57:])))
	}
	if len(b) > n {
		e.Version = append([]byte(nil), b[n:]...)
	}
	return e, nil
}

// Key encodes a root-relative path so that the children of one directory
// sort together: "a/b/c" is "a/b" NUL "c"; a name in the root is NUL "name";
// the root itself ("." ) is the empty key's stand-in "\x00.".
func Key(rel string) []byte {
	if rel == "." {
		return []byte("\x00.")
	}
	dir, name := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, name = rel[:i], rel[i+1:]
	}
	k := make([]byte, 0, len(rel)+1)
	k = append(k, dir...)
	k = append(k, 0)
	return append(k, name...)
}

// childPrefix is the key prefix of dir's direct children.
func childPrefix(dir string) []byte {
	if dir == "." {
		return []byte{0}
	}
	return append([]byte(dir), 0)
}

// PathOf decodes a key made by Key.
func PathOf(k []byte) string {
	if string(k) == "\x00." {
		return "."
	}
	i := bytes.IndexByte(k, 0)
	if i == 0 {
		return string(k[1:])
	}
	return string(k[:i]) + "/" + string(k[i+1:])
}
