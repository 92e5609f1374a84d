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
	var st unix.Stat_t
	err = beneath.Lstat(rootfd, rel, &st)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return Entry{}, false, t.Delete(rel)
	case err != nil:
		return Entry{}, false, fmt.Errorf("record %q: %w", rel, err)
	}
	old, had, err := t.Get(rel)
	if err != nil {
		return Entry{}, false, err
	}
	e = FromStat(&st)
	if had {
		e.Version = old.Version
		if old.IsDir() && !e.IsDir() {
			if err := t.Delete(rel); err != nil {
				return Entry{}, false, err
			}
		}
	}
	return e, true, t.Put(rel, e)
}

// Unchanged reports whether rel's current lstat, resolved beneath rootfd,
// is what the index holds: the same entry, or absent from both. An event
// for such a path is an echo of this agent's own receiver, or a change that
// was undone, and is not sent on.
func (t *Tx) Unchanged(rootfd int, rel string) (bool, error) {
	old, ok, err := t.Get(rel)
	if err != nil {
		return false, err
	}
	var st unix.Stat_t
	err = beneath.Lstat(rootfd, rel, &st)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return !ok, nil
	case err != nil:
		return false, fmt.Errorf("lstat %q: %w", rel, err)
	}
	if !ok {
		return false, nil
	}
	e := FromStat(&st)
	if e.IsDir() {
		return old.IsDir() && old.Mode == e.Mode && old.UID == e.UID && old.GID == e.GID, nil
	}
	return old.Matches(e), nil
}
