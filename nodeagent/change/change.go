package change

import (
	"strings"
	"time"
)

// Op is a set of things that happened to a path. Events for one path
// coalesce by OR-ing their ops.
type Op uint16

const (
	// Create: the path was made (a file, a link, a device node).
	Create Op = 1 << iota
	// Write: the file's content changed.
	Write
	// Remove: the path was removed.
	Remove
	// Rename: the path is the new name of OldPath.
	Rename
	// Attrib: mode, owner, times or link count changed.
	Attrib
	// Mkdir: a directory was made at the path.
	Mkdir
	// Rmdir: the directory at the path was removed.
	Rmdir
	// Subtree: a whole directory appeared at the path (moved in from outside
	// the root, or an overflow marked it for a rescan); later stages expand it
	// by walking it.
	Subtree
	// Rescan: events under Path were lost (a queue overflowed, the kernel
	// could not build a path); Path must be compared with the index.
	Rescan
	// Found: a scan found the path new to the index (the start-up scan,
	// the scan of a renamed or moved-in tree, a rescan), so what made it
	// was not seen. A peer may hold it already, as it is: seeded by hand,
	// sent before a crash, or renamed there at this member's request.
	// Only a write seen happening (an op without Found) says that the
	// content is new to every peer (journal.Entry keeps Found only while
	// every write merged into it was found so).
	Found
)

var opNames = []string{"create", "write", "remove", "rename", "attrib", "mkdir", "rmdir", "subtree", "rescan", "found"}

// String lists the ops joined by "|", such as "create|write".
func (o Op) String() string {
	if o == 0 {
		return "none"
	}
	var b strings.Builder
	for i, name := range opNames {
		if o&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// Has reports whether o holds every op in x.
func (o Op) Has(x Op) bool { return o&x == x }

// Merge is o and n together, as one path's changes coalesce: their ops
// OR-ed, but Found only while no write of either was seen happening (a
// write seen says the content is new to every peer, whatever a scan found
// of the path as well).
func (o Op) Merge(n Op) Op {
	seen := func(x Op) bool { return x.Has(Write) && !x.Has(Found) }
	op := o | n
	if seen(o) || seen(n) {
		op &^= Found
	}
	return op
}

// Change is what happened to one path under a data root.
type Change struct {
	// Path is relative to the data root, slash-separated, cleaned, never
	// absolute and never starting with "..": "." is the root itself. It may
	// hold any byte but NUL and '/' in its names, including invalid UTF-8.
	Path string
	// OldPath is the previous name for Rename, relative like Path.
	OldPath string
	// Op is what happened.
	Op Op
	// Finished is true when the last writer closed the file, or, where a
	// close cannot be seen, no further change came for the settle period.
	// A change reported unfinished after the maximum hold time must not be
	// shipped as final.
	Finished bool
	// Closed is true, on an unfinished change, when its source saw a
	// writer close the file and still found a writer holding it. Linux
	// reports a close before it drops the closing writer's access
	// (fs/file_table.c, __fput: fsnotify_close before put_file_access), so
	// a close read at once can find its own writer still counted; the
	// coalescer then probes again moments later instead of waiting for the
	// settle period.
	Closed bool
	// NeedsSettle is true when the source cannot observe this file's close
	// (a scan, an auditpipe open whose close was lost): an unfinished
	// change then becomes finished after the settle period without further
	// change, instead of waiting for a close.
	NeedsSettle bool
	// Echo is true when the source knew the change came from this agent's
	// own receiver (by pid or audit user id). It is only a hint: the index
	// decides by state (see package index).
	Echo bool
	// EchoRename is true when the rename this change names (OldPath) came
	// from this agent's own receiver (a peer's rename replayed here),
	// whatever other events merged into the change since (a peer's run
	// writing the new name, a local write): the coalescer keeps it for
	// the last rename merged, where Echo is false once any event is not
	// the agent's. The receiver recorded the rename; the detector compares
	// the rest of the change as any other (detect.Detector.changed).
	EchoRename bool
	// WrittenIno, when not 0, is the inode of a regular file written
	// through Path that Path no longer named when the source read the
	// event (removed or renamed away at once: link, write, unlink), while
	// the file lived on under other names. Those names hold the new
	// content, and no event names them: the journal looks them up in the
	// index by this inode.
	WrittenIno uint64
	// Time is when the change happened, as the source saw it.
	Time time.Time
}

// Rel returns the path of abs relative to root, both absolute, after
// cleaning abs lexically (doubled slashes, "." and ".." as given by a
// process). It reports false when abs is empty, not absolute, or outside
// root once cleaned. root must be clean and absolute (resolve symlinks in it
// before, so that it matches the kernel's host paths).
func Rel(root, abs string) (string, bool) {
	if abs == "" || abs[0] != '/' {
		return "", false
	}
	p := cleanAbs(abs)
	if root == "/" {
		if p == "/" {
			return ".", true
		}
		return p[1:], true
	}
	if p == root {
		return ".", true
	}
	if len(p) > len(root) && p[len(root)] == '/' && p[:len(root)] == root {
		return p[len(root)+1:], true
	}
	return "", false
}

// cleanAbs is path.Clean for an absolute path, byte-exact for names that
// are not valid UTF-8.
func cleanAbs(p string) string {
	var parts []string
	for name := range strings.SplitSeq(p, "/") {
		switch name {
		case "", ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, name)
		}
	}
	return "/" + strings.Join(parts, "/")
}
