//go:build linux

package fanotify

import (
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// maxOpenLinks bounds openLinks; when it is full it starts over, and the
// names it forgot wait for the consumer's maximum hold time instead.
const maxOpenLinks = 4096

// fileID identifies a file by device and inode number.
type fileID struct{ dev, ino uint64 }

// openLinks remembers the names of multiply linked files that were
// reported unfinished. The writer that keeps such a file open may have
// opened it under another name, and its close is reported under that
// name only: that close finishes every name of the file.
type openLinks struct {
	names map[fileID]map[string]struct{}
}

func (o *openLinks) add(id fileID, rel string) {
	if o.names == nil || len(o.names) >= maxOpenLinks {
		o.names = make(map[fileID]map[string]struct{})
	}
	if o.names[id] == nil {
		o.names[id] = make(map[string]struct{})
	}
	o.names[id][rel] = struct{}{}
}

// take removes and returns the names remembered for id.
func (o *openLinks) take(id fileID) map[string]struct{} {
	names := o.names[id]
	delete(o.names, id)
	return names
}

// emit appends c, the change of a path found in state st, to dst. For a
// regular file it keeps openLinks: an unfinished change of a multiply
// linked file is remembered, and a finished one finishes the file's other
// names remembered, if they still name it.
func (s *Source) emit(dst []change.Change, c change.Change, st pathState) []change.Change {
	dst = append(dst, c)
	switch {
	case st.kind != kindRegular:
	case !c.Finished && st.nlink > 1:
		s.links.add(st.id, c.Path)
	case c.Finished && len(s.links.names) > 0:
		for rel := range s.links.take(st.id) {
			var other unix.Stat_t
			if rel == c.Path || unix.Lstat(s.abs(rel), &other) != nil ||
				other.Dev != st.id.dev || other.Ino != st.id.ino {
				continue
			}
			dst = append(dst, change.Change{Path: rel, Op: change.Write, Finished: true, Echo: c.Echo, Time: c.Time})
		}
	}
	return dst
}

// abs is the absolute path of rel, a path under the root.
func (s *Source) abs(rel string) string {
	if s.root == "/" {
		return "/" + rel
	}
	return s.root + "/" + rel
}
