//go:build linux || freebsd

package index

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// Record stores the current lstat of rel, resolved beneath rootfd, as its
// entry, or deletes the entry (and, for a directory, its subtree) when rel
// no longer exists. The receiver records what it wrote this way; the
// engine records what it has journaled.
func (t *Tx) Record(rootfd int, rel string) error {
	_, _, err := t.RecordEntry(rootfd, rel)
	return err
}

// RecordEntry is Record, and returns the entry recorded; ok is false when
// rel no longer exists (its entry was deleted).
func (t *Tx) RecordEntry(rootfd int, rel string) (e Entry, ok bool, err error) {
	e, _, ok, _, err = t.record(rootfd, rel, false, false)
	return e, ok, err
}

// RecordChanged is RecordEntry for a change that the index may already
// hold (Unchanged, with dirTimes as there): then it writes nothing and
// changed is false. A file whose link count is all that changed
// (Entry.LinksOnly) is recorded as it is now, and changed is false too.
// was is the entry the index held before (zero if none): when rel is gone,
// or holds another inode now, the file whose other names a change through
// rel may have changed.
func (t *Tx) RecordChanged(rootfd int, rel string, dirTimes bool) (e, was Entry, ok, changed bool, err error) {
	return t.record(rootfd, rel, true, dirTimes)
}

// RecordFound is Record with rel's lstat taken already by the caller:
// st, or the error lerr of that lstat. What the caller looked at and
// judged is what the index holds then; lstatted again, a change made
// between the two would be recorded as judged, and its own event would
// then compare as nothing new (the receiver's confirmation,
// docs/design.md).
func (t *Tx) RecordFound(rel string, st *unix.Stat_t, lerr error) error {
	_, _, _, _, err := t.recordFound(rel, st, lerr, false, false)
	return err
}

// record lstats rel once, and records it unless onlyChanged and the index
// holds it as it is (same, with dirTimes). was is the entry it held, read
// when onlyChanged.
func (t *Tx) record(rootfd int, rel string, onlyChanged, dirTimes bool) (e, was Entry, ok, changed bool, err error) {
	var st unix.Stat_t
	lerr := beneath.Lstat(rootfd, rel, &st)
	return t.recordFound(rel, &st, lerr, onlyChanged, dirTimes)
}

// recordFound is record with rel's lstat given (st, or its error lerr).
func (t *Tx) recordFound(rel string, st *unix.Stat_t, lerr error, onlyChanged, dirTimes bool) (e, was Entry, ok, changed bool, err error) {
	gone := IsGone(lerr)
	switch {
	case lerr != nil && !gone:
		return Entry{}, Entry{}, false, false, fmt.Errorf("record %q: %w: %w", rel, ErrUnreadable, lerr)
	case gone && !onlyChanged:
		return Entry{}, Entry{}, false, true, t.Delete(rel)
	}
	old, had, err := t.Get(rel)
	if err != nil {
		return Entry{}, Entry{}, false, false, err
	}
	if gone {
		if !had {
			return Entry{}, Entry{}, false, false, nil
		}
		return Entry{}, old, false, true, t.Delete(rel)
	}
	e = FromStat(st)
	if !had {
		return e, Entry{}, true, true, t.Put(rel, e)
	}
	if onlyChanged && same(old, e, dirTimes) {
		return e, old, true, false, nil
	}
	// Compared as any other ctime change (Unchanged), a link made or
	// removed read as a write that kept the size and mtime, and a
	// receiver that recorded its run's hard link after the event of
	// another name of the file (index.Tx.RefreshLinks, when the event came
	// first) took that for its own change and pushed the file with its
	// other names back to every member: the writer's newer file under one
	// of them, a file of its own since, became a link to the old one again
	// (the stress test, seed 35).
	if onlyChanged && old.LinksOnly(e) {
		e.Version = old.Version
		return e, old, true, false, t.Put(rel, e)
	}
	e.Version = old.Version
	if old.MayHaveChildren() && !e.IsDir() {
		if err := t.Delete(rel); err != nil {
			return Entry{}, Entry{}, false, false, err
		}
	}
	return e, old, true, true, t.Put(rel, e)
}

// IsGone reports whether an lstat's error says that the path is not in the
// tree: it does not exist, a parent is not a directory, or a parent is now
// a symlink (beneath.ErrOutside: the path is then no path of the root's
// own; the symlink is a change of its own, and the runs never follow it).
// One path that became unreachable so must not fail the changes of others
// recorded with it.
func IsGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, beneath.ErrOutside)
}

// Unchanged reports whether rel's current lstat, resolved beneath rootfd,
// is what the index holds: the same entry, or absent from both. An event
// for such a path is an echo of this agent's own receiver, or a change that
// was undone, and is not sent on. dirTimes compares a directory's mtime
// too, which same leaves out: for an attribute change of the directory
// itself (chmod, chown, utimensat), whose times may be all it changed
// (touch -d, which the stress test's writers do); a change of its entries
// does not read its times.
func (t *Tx) Unchanged(rootfd int, rel string, dirTimes bool) (bool, error) {
	var st unix.Stat_t
	lerr := beneath.Lstat(rootfd, rel, &st)
	return t.UnchangedFound(rel, &st, lerr, dirTimes)
}

// UnchangedFound is Unchanged with rel's lstat taken already by the
// caller (st, or the error lerr of that lstat), which may then record
// what it compared (RecordFound).
func (t *Tx) UnchangedFound(rel string, st *unix.Stat_t, lerr error, dirTimes bool) (bool, error) {
	old, ok, err := t.Get(rel)
	if err != nil {
		return false, err
	}
	switch {
	case IsGone(lerr):
		return !ok, nil
	case lerr != nil:
		return false, fmt.Errorf("lstat %q: %w", rel, lerr)
	}
	return ok && same(old, FromStat(st), dirTimes), nil
}

// same reports whether the index's entry old still describes e, the path
// as it is: for a directory Entry.DirMatches (mv d e; mkdir d, read
// before the rename was recorded, compared without the inode as the old d
// and was dropped, and the peers lost d with their rename), with its
// mtime when dirTimes (Unchanged, RecordChanged), for anything else
// Entry.Matches.
func same(old, e Entry, dirTimes bool) bool {
	if e.IsDir() {
		return old.IsDir() && old.DirMatches(e) && (!dirTimes || old.Mtime.Equal(e.Mtime))
	}
	return old.Matches(e)
}
