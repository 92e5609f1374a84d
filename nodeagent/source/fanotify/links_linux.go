//go:build linux

package fanotify

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// maxOpenLinks bounds openLinks; when it is full it starts over, and the
// names it forgot wait for the consumer's maximum hold time instead.
const maxOpenLinks = 4096

// objectKey identifies a file by its handle: type and bytes, as
// name_to_handle_at(2) returns them and as an event's object record holds
// them. One Source watches one filesystem, so the fsid is left out.
type objectKey string

func keyOf(typ int32, handle []byte) objectKey {
	b := binary.NativeEndian.AppendUint32(make([]byte, 0, 4+len(handle)), uint32(typ))
	return objectKey(append(b, handle...))
}

// openLinks remembers the names of multiply linked files that were
// reported unfinished. The writer that keeps such a file open may have
// opened it under another name, and its close is reported under that
// name only, which may be gone or name another file by the time the close
// is read (link, write, close, unlink): so the names are kept by the
// file's handle, and the close event's object finishes them whatever its
// own name holds now.
type openLinks struct {
	names map[objectKey]map[string]struct{}
}

func (o *openLinks) add(k objectKey, rel string) {
	if o.names == nil || len(o.names) >= maxOpenLinks {
		o.names = make(map[objectKey]map[string]struct{})
	}
	if o.names[k] == nil {
		o.names[k] = make(map[string]struct{})
	}
	o.names[k][rel] = struct{}{}
}

// take removes and returns the names remembered for k.
func (o *openLinks) take(k objectKey) map[string]struct{} {
	names := o.names[k]
	delete(o.names, k)
	return names
}

// emit appends c, the change of a path found in state st, to dst; an
// unfinished change of a multiply linked regular file is remembered in
// openLinks under the handle of the file at the path.
func (s *Source) emit(dst []change.Change, c change.Change, st pathState) []change.Change {
	if !c.Finished && st.kind == kindRegular && st.nlink > 1 {
		if h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, s.abs(c.Path), 0); err == nil {
			s.links.add(keyOf(h.Type(), h.Bytes()), c.Path)
		}
	}
	return append(dst, c)
}

// finishLinks appends, after the changes of ev (dst[from:]), a finished
// Write for each name remembered for ev's object that still names it and
// that no writer has open any more; names still written stay remembered.
func (s *Source) finishLinks(dst []change.Change, from int, ev *event, now time.Time) []change.Change {
	if !ev.hasObj || len(s.links.names) == 0 || ev.mask&unix.FAN_ONDIR != 0 {
		return dst
	}
	k := keyOf(ev.obj.typ, ev.obj.handle)
	names := s.links.take(k)
	if len(names) == 0 {
		return dst
	}
	c := s.newChange("", "", change.Write, true, ev.pid, now)
	for rel := range names {
		abs := s.abs(rel)
		switch {
		case finishedIn(dst[from:], rel) || !sameObject(abs, ev):
			// Said by the event itself, or the name holds another
			// file now, whose own events report it.
		case !noWriter(s.res.mount, rel, ev.mask):
			s.links.add(k, rel)
		default:
			c.Path = rel
			dst = append(dst, c)
		}
	}
	return dst
}

// finishedIn reports whether cs holds a finished change of rel.
func finishedIn(cs []change.Change, rel string) bool {
	for _, c := range cs {
		if c.Path == rel && c.Finished {
			return true
		}
	}
	return false
}

// abs is the absolute path of rel, a path under the root.
func (s *Source) abs(rel string) string {
	if s.root == "/" {
		return "/" + rel
	}
	return s.root + "/" + rel
}
