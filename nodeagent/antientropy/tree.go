// Package antientropy brings members that ended apart back to one tree.
// Change detection, the journal and the senders carry every change a
// member sees; what they cannot carry is a difference no change touches
// again: writes and renames of one tree crossing on several members (the
// stress test's Crossing scenario, docs/design.md), or a change this
// member missed. Once this member and a peer are both quiet (nothing
// pending, no run or replay under way, no change for a settle time, the
// index holding every path as it is), it compares its tree with the
// peer's, as their indexes hold them, and journals for that peer what the
// peer lacks or holds older. Nothing is ever deleted: a path only one of
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
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/peer"
)

// Tree is a member's tree as the compare sees it.
type Tree struct {
	// Entries are every path indexed below the root (the root itself
	// left out), in the index's key order, which is the same on every
	// member for the same paths.
	Entries []peer.TreeEntry
	// Digest is the hash of Entries (Digest): two members with the same
	// digest hold the same tree.
	Digest string
	// Unsettled are paths whose state the index does not hold: a
	// placeholder (a path renamed here or carried by a replay, until a
	// scan records it), or a directory or symlink that is not on disk as
	// indexed. The member is not quiet until a scan records them.
	Unsettled []string
}

// maxUnsettled bounds the unsettled paths a Read reports.
const maxUnsettled = 64

// Read reads the tree from idx. Files are as the index holds them (the
// detector keeps it so); directories' times and owners and symlinks'
// targets, which the index does not keep exactly, are read on disk
// beneath rootfd. exclude, when set, drops paths the group excludes (an
// index from before an exclude was added can still list them).
func Read(ctx context.Context, idx *index.Index, rootfd int, exclude func(rel string, dir bool) bool) (Tree, error) {
	var t Tree
	err := idx.View(func(tx *index.Tx) error {
		n := 0
		return tx.EachBelow(".", func(rel string, e index.Entry) error {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if exclude != nil && exclude(rel, e.IsDir()) {
				return nil
			}
			te, ok, err := entryOf(rootfd, rel, e)
			if err == errGone {
				return nil
			}
			if err != nil {
				return err
			}
			if !ok {
				if len(t.Unsettled) < maxUnsettled {
					t.Unsettled = append(t.Unsettled, rel)
				}
				return nil
			}
			t.Entries = append(t.Entries, te)
			return nil
		})
	})
	if err != nil {
		return Tree{}, fmt.Errorf("read the tree from the index: %w", err)
	}
	t.Digest = Digest(t.Entries)
	return t, nil
}

// entryOf is rel's entry; ok false when the index does not hold its state
// (Tree.Unsettled). An error is one of the disk other than the path's
// absence or change.
func entryOf(rootfd int, rel string, e index.Entry) (te peer.TreeEntry, ok bool, err error) {
	if e.IsPlaceholder() {
		// A path renamed here (or carried by a replay) that a scan has
		// not recorded yet: unsettled where it exists. Where it is gone
		// (a later rename or removal took it, or its parent is a file
		// now: a scan never walks below a file to drop such an entry),
		// this member does not hold it.
		var st unix.Stat_t
		if err := beneath.Lstat(rootfd, rel, &st); index.IsGone(err) {
			return te, false, errGone
		}
		return te, false, nil
	}
	te = peer.TreeEntry{Path: []byte(rel), Mode: uint32(e.Mode), Size: e.Size, MtimeNs: e.Mtime.UnixNano(), UID: e.UID, GID: e.GID}
	switch e.Mode.Type() {
	case fs.ModeDir:
		var st unix.Stat_t
		if err := beneath.Lstat(rootfd, rel, &st); err != nil {
			return te, false, nil
		}
		now := index.FromStat(&st)
		if !now.IsDir() || !e.DirMatches(now) {
			return te, false, nil
		}
		// A directory's size is the file system's business, not the
		// tree's; its times are read here (the index's move with nothing).
		te.Size, te.MtimeNs = 0, now.Mtime.UnixNano()
	case fs.ModeSymlink:
		target, err := beneath.Readlink(rootfd, rel)
		if err != nil || int64(len(target)) != e.Size {
			return te, false, nil
		}
		te.Link = []byte(target)
		// A symlink's own permission bits are not replicated (Linux
		// cannot set them; rsync leaves them), so they are not compared.
		te.Mode = uint32(fs.ModeSymlink | 0o777)
	}
	return te, true, nil
}

// errGone: entryOf's path is not held here.
var errGone = errors.New("gone")

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
