package antientropy

import (
	"bytes"
	"io/fs"
	"sort"

	"github.com/jailsync/jailsync/nodeagent/peer"
)

// Send is a path this member sends a peer after a compare.
type Send struct {
	Path string
	// Dir: a directory, sent for itself (its mode, owner and times), not
	// for what it holds: each path below it that differs is a Send of its
	// own.
	Dir bool
}

// Sends compares this member's tree (self, mine) with a peer's (other,
// theirs) and returns what this member sends the peer, in path order:
//   - a path only this member holds (unless keepDeletes: the group keeps
//     what a member removed, and a path only one member holds may be one
//     the other removed on purpose);
//   - a path both hold differently where this member's wins (Wins).
//
// What the peer lacks below a directory it lacks is listed too, path by
// path. Nothing is listed for removal: the compare never deletes.
func Sends(self, other string, mine, theirs []peer.TreeEntry, keepDeletes bool) []Send {
	held := make(map[string]*peer.TreeEntry, len(theirs))
	for i := range theirs {
		held[string(theirs[i].Path)] = &theirs[i]
	}
	var out []Send
	for i := range mine {
		m := &mine[i]
		p := string(m.Path)
		t, ok := held[p]
		switch {
		case !ok && keepDeletes:
			continue
		case !ok:
		case Same(*m, *t):
			continue
		case !Wins(self, other, *m, *t):
			continue
		}
		out = append(out, Send{Path: p, Dir: fs.FileMode(m.Mode).IsDir()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Same reports whether two members hold a path alike: the same type,
// mode, owner, mtime, and size (a file's) or target (a symlink's).
func Same(a, b peer.TreeEntry) bool {
	return a.Mode == b.Mode && a.Size == b.Size && a.MtimeNs == b.MtimeNs &&
		a.UID == b.UID && a.GID == b.GID && bytes.Equal(a.Link, b.Link)
}

// Wins reports whether self's entry a wins over other's entry b of the
// same path, which they hold differently: a directory wins over anything
// else (what it holds is never removed for a file or a link); otherwise
// the newer mtime wins, and the lower node name breaks ties. Both members
// of a pair decide alike, so exactly one of them sends.
func Wins(self, other string, a, b peer.TreeEntry) bool {
	aDir, bDir := fs.FileMode(a.Mode).IsDir(), fs.FileMode(b.Mode).IsDir()
	switch {
	case aDir != bDir:
		return aDir
	case a.MtimeNs != b.MtimeNs:
		return a.MtimeNs > b.MtimeNs
	}
	return self < other
}
