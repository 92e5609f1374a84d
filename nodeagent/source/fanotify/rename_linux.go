//go:build linux

package fanotify

import (
	"bytes"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// renameChanges appends the changes of a FAN_RENAME event, which names the
// old and the new directory entry and the object moved.
//
// A rename within the root is a Rename (Rename|Subtree for a directory)
// when the new name still holds the object moved; a side outside the root,
// or excluded, counts as outside: a rename into the root is a Create (a
// Subtree for a directory), a rename out of it a Remove (an Rmdir).
//
// Both names are then checked against what they hold when the event is
// read, because a later event about either name may have merged into an
// older queued event and been read before this one. The rename is
// reported all the same (a peer replays every rename, in order: the
// journal's rename log): a new name gone since as a Rename still, one
// that holds another object since as the Rename, then that object's own
// change; an old name made again since is reported as created (a
// directory as Mkdir|Subtree: its tree is a new one). Left out, the
// first rename of a chain read late (mv a b; mv b c) left the peer's
// object at a for the later renames of the log to carry along (the
// stress test; the auditpipe source reports every rename it reads).
func (s *Source) renameChanges(dst []change.Change, ev *event, now time.Time) []change.Change {
	if !ev.hasDir || !ev.hasNew {
		return append(dst, s.lostEvents(now))
	}
	oldAbs, oldRes := s.entryPath(ev.dir, ev.name)
	newAbs, newRes := s.entryPath(ev.newDir, ev.newName)
	if oldRes == lost || newRes == lost {
		return append(dst, s.lostEvents(now))
	}
	if ev.mask&unix.FAN_ONDIR != 0 {
		s.renameCached(ev, oldAbs, oldRes == resolved, newAbs, newRes == resolved)
	}
	var (
		oldRel string
		inOld  bool
		moved  bool
	)
	switch oldRes {
	case resolved:
		oldRel, inOld = s.rel(oldAbs)
	case unplaced:
		// The old name's directory where it is now, not where the
		// events read so far had it (dirCache's unplaced): no rename
		// from it, whose old name no member may hold, but a scan of
		// that directory, which finds what is gone from it.
		if dirRel, in := s.rel(path.Dir(oldAbs)); in {
			dst = append(dst, s.newChange(dirRel, "", change.Rescan, false, ev.pid, now))
		}
	}
	switch newRes {
	case resolved:
		dst, moved = s.renamedTo(dst, ev, newAbs, oldRel, inOld, now)
	case unplaced:
		// The same for the new name: what is there now, as moved in
		// from outside (a Create, or a Subtree for a directory), and
		// the old name's removal.
		dst, _ = s.renamedTo(dst, ev, newAbs, "", false, now)
	}
	if !inOld {
		return dst
	}
	// Gone without a Rename to say so (Remove, Rmdir), or made again
	// since (Create, Mkdir|Subtree): as after FAN_DELETE.
	mask := unix.FAN_DELETE | ev.mask&unix.FAN_ONDIR
	st, err := s.stat(oldRel, mask)
	switch {
	case err != nil:
		return append(dst, s.newChange(oldRel, "", change.Rescan, false, ev.pid, now))
	case st.exists || !moved:
		op, finished := classify(mask, st)
		return s.emit(dst, s.newChange(oldRel, "", op, finished, ev.pid, now), st)
	}
	return dst
}

// renameCached updates the directory cache for the rename of a directory
// from oldAbs to newAbs (each known when resolved).
func (s *Source) renameCached(ev *event, oldAbs string, oldKnown bool, newAbs string, newKnown bool) {
	c := s.res.cache
	if !newKnown {
		// Moved into a directory gone since, or unplaced itself, or out
		// of the root's mount: the directory and those below it are
		// nowhere the events read so far know (dirCache's unplaced),
		// until an event moves it where they do. Only forgotten, they
		// were resolved afresh, where they are when read.
		if oldKnown {
			c.unplaceBelow(oldAbs)
		}
		if ev.hasObj {
			c.unplace(ev.obj.key)
		}
		return
	}
	if ev.hasObj && oldKnown && newKnown && c.holds(ev.obj.key, oldAbs) {
		// Cached where the rename took it from: the paths below it
		// are as the events read so far knew them, and move with it.
		// Forgotten, a directory below it was resolved when its next
		// event was read, at its path of that moment, later than the
		// event if it moved again in between: "mv s/d s/e; mv
		// s/e/sub/f s/e/sub/g; mv s/e/sub t/x", read late, gave
		// "t/x/f -> t/x/g", a rename of a path no member held yet (the
		// stress test's renames that match no operation).
		c.move(oldAbs, newAbs)
	} else {
		// Not for a directory the cache does not hold there: a swap's
		// second rename (RENAME_EXCHANGE) finds the first's object at
		// its old name, and the entries below it are not its own.
		if oldKnown {
			c.forget(oldAbs)
		}
		// Without the old path (its directory was removed since, and
		// not cached), nothing below the directory is cached either
		// (resolver.asCached). Resetting the whole cache here instead
		// had every directory resolved afresh, at its path when read,
		// and rebased on entries of an earlier moment: "mkdir
		// D8/d17/d6; mv D8/d17/d6 D8/e/D11; mkdir D8/e/D11/d8; mv
		// D8/e/D11 d4/c28; rmdir D8/d17; mv D8 d4/c28/d8/D9", read late,
		// gave d4/c28/d8/D9/e/D11/d8/D9/e/D11 -> d4/c28, names in a
		// loop that no member ever had, which the journal logged as
		// renames and removals (the stress test, seed 613 of the
		// fifty-sixth session: 21 renames that matched no operation).
		// Nor does a directory the cache holds elsewhere take the
		// entries below it along: where that is a path read later than
		// the event (resolved afresh), it can be above the new name,
		// and the move made such a loop itself.
		if newKnown {
			c.forget(newAbs)
		}
	}
	if ev.hasObj && newKnown {
		// The directory itself is where this event put it, for the
		// events after it (as for a directory made).
		c.put(ev.obj.key, newAbs)
	}
}

// renamedTo appends the change for the new name of a rename, if under the
// root, and reports whether it reported a Rename: the old name was under
// the root too.
func (s *Source) renamedTo(dst []change.Change, ev *event, newAbs, oldRel string, inOld bool, now time.Time) ([]change.Change, bool) {
	newRel, inNew := s.rel(newAbs)
	if !inNew {
		return dst, false
	}
	st, err := s.stat(newRel, ev.mask)
	if err != nil {
		return append(dst, s.newChange(newRel, "", change.Rescan, false, ev.pid, now)), false
	}
	finished := st.kind != kindRegular || st.noWriter
	renamed := change.Rename
	if ev.mask&unix.FAN_ONDIR != 0 {
		renamed |= change.Subtree
	}
	switch {
	case !st.exists && inOld:
		// Gone again since: the rename, and what came after it is
		// another event's.
		return append(dst, s.newChange(newRel, oldRel, renamed, true, ev.pid, now)), true
	case !st.exists:
		// Moved in, and gone again since.
		op, _ := classify(ev.mask&unix.FAN_ONDIR, st)
		return append(dst, s.newChange(newRel, "", op, true, ev.pid, now)), false
	case inOld && !sameObject(newAbs, ev):
		// Another object there since: the rename, then what is there.
		dst = append(dst, s.newChange(newRel, oldRel, renamed, true, ev.pid, now))
		if st.kind == kindDir {
			return append(dst, s.newChange(newRel, "", change.Mkdir|change.Subtree, true, ev.pid, now)), true
		}
		return s.emit(dst, s.newChange(newRel, "", change.Create, finished, ev.pid, now), st), true
	case inOld:
		op := change.Rename
		if st.kind == kindDir {
			// Changes inside the directory read before this one may
			// have been reported under either name (paths are
			// resolved when read): have its tree compared too.
			op |= change.Subtree
		}
		return s.emit(dst, s.newChange(newRel, oldRel, op, finished, ev.pid, now), st), true
	case st.kind == kindDir:
		return append(dst, s.newChange(newRel, "", change.Subtree, true, ev.pid, now)), false
	default:
		return s.emit(dst, s.newChange(newRel, "", change.Create, finished, ev.pid, now), st), false
	}
}

// sameObject reports whether abs names the object the event is about, by
// its file handle (name_to_handle_at(2), not following a symlink). Without
// the object's handle in the event, it trusts the event.
func sameObject(abs string, ev *event) bool {
	if !ev.hasObj {
		return true
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, abs, 0)
	if err != nil {
		return false
	}
	return h.Type() == ev.obj.typ && bytes.Equal(h.Bytes(), ev.obj.handle)
}
