package antientropy

import (
	"io/fs"
	"reflect"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/peer"
)

func file(p string, mtime int64, mode fs.FileMode, size int64) peer.TreeEntry {
	return peer.TreeEntry{Path: []byte(p), Mode: uint32(mode), Size: size, MtimeNs: mtime}
}

func dir(p string, mtime int64) peer.TreeEntry {
	return peer.TreeEntry{Path: []byte(p), Mode: uint32(fs.ModeDir | 0o755), MtimeNs: mtime}
}

func link(p, target string, mtime int64) peer.TreeEntry {
	return peer.TreeEntry{Path: []byte(p), Mode: uint32(fs.ModeSymlink | 0o777), Size: int64(len(target)), MtimeNs: mtime, Link: []byte(target)}
}

func TestSends(t *testing.T) {
	for _, tc := range []struct {
		name        string
		self, other string
		mine        []peer.TreeEntry
		theirs      []peer.TreeEntry
		keepDeletes bool
		want        []Send
	}{
		{name: "alike: nothing", self: "n1", other: "n2",
			mine: []peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o644, 3)}, theirs: []peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o644, 3)}},
		{name: "only mine: sent, a directory for itself and each path below it", self: "n2", other: "n1",
			mine: []peer.TreeEntry{dir("d", 5), file("d/f", 5, 0o644, 3), file("g", 1, 0o644, 1)}, theirs: []peer.TreeEntry{file("g", 1, 0o644, 1)},
			want: []Send{{Path: "d", Dir: true}, {Path: "d/f"}}},
		{name: "only theirs: nothing (never a deletion; the peer sends it)", self: "n1", other: "n2",
			theirs: []peer.TreeEntry{file("f", 5, 0o644, 3)}},
		{name: "only mine, deletes kept: nothing (the peer may have removed it on purpose)", self: "n1", other: "n2", keepDeletes: true,
			mine: []peer.TreeEntry{file("f", 5, 0o644, 3)}},
		{name: "differing, deletes kept: the newer still wins", self: "n1", other: "n2", keepDeletes: true,
			mine: []peer.TreeEntry{file("f", 6, 0o644, 3)}, theirs: []peer.TreeEntry{file("f", 5, 0o644, 3)}, want: []Send{{Path: "f"}}},
		{name: "newer here: sent", self: "n2", other: "n1",
			mine: []peer.TreeEntry{file("f", 6, 0o644, 4)}, theirs: []peer.TreeEntry{file("f", 5, 0o644, 3)}, want: []Send{{Path: "f"}}},
		{name: "older here: the peer's wins", self: "n1", other: "n2",
			mine: []peer.TreeEntry{file("f", 4, 0o644, 4)}, theirs: []peer.TreeEntry{file("f", 5, 0o644, 3)}},
		{name: "the same mtime, another mode: the lower node name wins", self: "n1", other: "n2",
			mine: []peer.TreeEntry{file("f", 5, 0o600, 3)}, theirs: []peer.TreeEntry{file("f", 5, 0o644, 3)}, want: []Send{{Path: "f"}}},
		{name: "the same mtime, another mode, the higher name: the peer's wins", self: "n2", other: "n1",
			mine: []peer.TreeEntry{file("f", 5, 0o600, 3)}, theirs: []peer.TreeEntry{file("f", 5, 0o644, 3)}},
		{name: "a directory over an older file: the directory wins", self: "n2", other: "n1",
			mine: []peer.TreeEntry{dir("x", 1), file("x/y", 1, 0o644, 1)}, theirs: []peer.TreeEntry{file("x", 9, 0o644, 3)},
			want: []Send{{Path: "x", Dir: true}, {Path: "x/y"}}},
		{name: "a newer file against a directory: the directory still wins", self: "n1", other: "n2",
			mine: []peer.TreeEntry{file("x", 9, 0o644, 3)}, theirs: []peer.TreeEntry{dir("x", 1)}},
		{name: "directories' times: the newer wins", self: "n1", other: "n2",
			mine: []peer.TreeEntry{dir("d", 8)}, theirs: []peer.TreeEntry{dir("d", 7)}, want: []Send{{Path: "d", Dir: true}}},
		{name: "a symlink's target differs at one mtime: the lower name wins", self: "n1", other: "n3",
			mine: []peer.TreeEntry{link("l", "a", 2)}, theirs: []peer.TreeEntry{link("l", "b", 2)}, want: []Send{{Path: "l"}}},
		{name: "a newer file over a symlink", self: "n3", other: "n1",
			mine: []peer.TreeEntry{file("l", 3, 0o644, 1)}, theirs: []peer.TreeEntry{link("l", "b", 2)}, want: []Send{{Path: "l"}}},
		{name: "in path order", self: "n1", other: "n2",
			mine: []peer.TreeEntry{file("b", 1, 0o644, 1), file("a/z", 1, 0o644, 1), dir("a", 1)},
			want: []Send{{Path: "a", Dir: true}, {Path: "a/z"}, {Path: "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Sends(tc.self, tc.other, tc.mine, tc.theirs, tc.keepDeletes)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Sends = %+v, want %+v", got, tc.want)
			}
			// The peer, by the same rule, sends none of what this member
			// sends: exactly one side sends each path.
			back := Sends(tc.other, tc.self, tc.theirs, tc.mine, tc.keepDeletes)
			for _, s := range got {
				for _, b := range back {
					if s.Path == b.Path {
						t.Errorf("both members send %s", s.Path)
					}
				}
			}
		})
	}
}
