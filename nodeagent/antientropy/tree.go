// Package antientropy brings members that ended apart back to one tree.
// Change detection, the journal and the senders carry every change a
// member sees; what they cannot carry is a difference no change touches
// again: writes and renames of one tree crossing on several members (the
// stress test's Crossing scenario, docs/design.md), or a change this
// member missed. Once this member and a peer are both quiet (nothing
// pending, no run or replay under way, no change for a settle time), it
// compares its tree on disk with the peer's, and journals for that peer
// what the peer lacks or holds older. Nothing is ever deleted: a path only one of
// them holds goes to the other (modify beats delete), so a removal that
// reached one member and not another comes back. Of a path both hold
// differently, the newer mtime wins and the lower node name breaks ties; a
// directory wins over anything else (what it holds is never removed for a
// file). The peer, running the same rule, sends what it wins.
//
// This is the lightweight anti-entropy of the replication engine, before
// per-file versions (the multi-master capability, shared/ROADMAP.md): it
// compares states, not histories, so a removal and a creation that crossed
// are resolved as a creation. The wire (peer.TreeRequest) has room for a
// version per entry.
package antientropy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/scan"
)

// Tree is a member's tree as the compare sees it.
type Tree struct {
	// Entries are every path below the root (the root itself, the
	// reserved directory and excluded paths left out), sorted by path:
	// the same order on every member for the same paths.
	Entries []peer.TreeEntry
	// Digest is the hash of Entries (Digest): two members with the same
	// digest hold the same tree.
	Digest string
}

// Read reads the tree on disk beneath rootfd: every directory read, every
// path lstat'ed, never a symlink followed. Not the index: what the
// compare must make alike is what members hold, and an index entry that
// is not (a rename the index missed, a stray directory rsync left)
// would hide a difference for good. A directory or path that cannot be
// read makes it fail: an incomplete tree would have the peers send this
// member what it holds and could not read, over it. exclude, when set,
// drops paths the group excludes.
func Read(ctx context.Context, rootfd int, exclude func(rel string, dir bool) bool) (Tree, error) {
	var t Tree
	dirs := []string{"."}
	for len(dirs) > 0 {
		if err := ctx.Err(); err != nil {
			return Tree{}, err
		}
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		more, err := t.readDir(rootfd, dir, exclude)
		if err != nil {
			return Tree{}, fmt.Errorf("read the tree at %q: %w", dir, err)
		}
		dirs = append(dirs, more...)
	}
	slices.SortFunc(t.Entries, func(a, b peer.TreeEntry) int { return bytes.Compare(a.Path, b.Path) })
	t.Digest = Digest(t.Entries)
	return t, nil
}

// readDir adds dir's entries to t and returns its subdirectories.
func (t *Tree) readDir(rootfd int, dir string, exclude func(rel string, dir bool) bool) ([]string, error) {
	// Opened afresh, the root too: getdents reads on from a descriptor's
	// offset, and the root's held descriptor is shared (read through it,
	// a second Read found the root empty).
	var fd int
	var err error
	if dir == "." {
		fd, err = unix.Openat(rootfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		fd, err = beneath.Open(rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	names, entries, err := scan.Entries(fd)
	if err != nil {
		return nil, err
	}
	var subdirs []string
	for i, name := range names {
		rel, e := index.Join(dir, name), entries[i]
		if index.InReserved(rel) || (exclude != nil && exclude(rel, e.IsDir())) {
			continue
		}
		te := peer.TreeEntry{Path: []byte(rel), Mode: uint32(e.Mode), Size: e.Size, MtimeNs: e.Mtime.UnixNano(), UID: e.UID, GID: e.GID}
		switch e.Mode.Type() {
		case fs.ModeDir:
			te.Size = 0 // the file system's business, not the tree's
			subdirs = append(subdirs, rel)
		case fs.ModeSymlink:
			target, err := beneath.Readlink(fd, name) // a name in fd: readlinkat
			if err != nil {
				return nil, err
			}
			te.Link = []byte(target)
			// A symlink's own permission bits are not replicated (Linux
			// cannot set them; rsync leaves them), so not compared.
			te.Mode = uint32(fs.ModeSymlink | 0o777)
		}
		t.Entries = append(t.Entries, te)
	}
	return subdirs, nil
}

// Digest is the hash of entries, in order: every field of each.
func Digest(entries []peer.TreeEntry) string {
	h := sha256.New()
	var b []byte
	for _, e := range entries {
		b = appendEntry(b[:0], e)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// appendEntry appends e's encoding for Digest: lengths before the
// variable parts, so that no two entries encode alike.
func appendEntry(b []byte, e peer.TreeEntry) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Path)))
	b = append(b, e.Path...)
	b = binary.BigEndian.AppendUint32(b, e.Mode)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(e.MtimeNs))
	b = binary.BigEndian.AppendUint32(b, e.UID)
	b = binary.BigEndian.AppendUint32(b, e.GID)
	b = binary.AppendUvarint(b, uint64(len(e.Link)))
	return append(b, e.Link...)
}
