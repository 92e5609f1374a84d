package rsync

import (
	"fmt"
	"strings"
	"time"
)

// Outcome is what one run did with one path.
type Outcome int

const (
	// Unconfirmed: the run ended before saying anything about the path
	// (it was cut short, or failed as a whole). Send it again.
	Unconfirmed Outcome = iota
	// Sent: the file's content went to the peer (new or changed).
	Sent
	// Updated: the path arrived without content data: a directory, symlink,
	// device or special file created, a hard link made, or only attributes
	// (mode, times, owner) changed.
	Updated
	// Unchanged: the peer already had it, identical.
	Unchanged
	// Deleted: the peer deleted it (rsync's "*deleting").
	Deleted
	// Absent: a Delete whose path the peer did not have: nothing to delete.
	Absent
	// Present: a Delete whose path exists here (or under a parent that is
	// not a directory here); it was not deleted. Push it instead. When
	// rsync read it there (made again after the check), it sent it, and
	// the peer holds it: Change is then rsync's itemized change.
	Present
	// Vanished: a Push whose path was gone here before or while rsync read
	// it. Not an error of the peer: the caller decides whether to delete it.
	Vanished
	// Failed: rsync named the path (or a path inside it) in an error line;
	// Reason holds the line.
	Failed
	// Dropped: refused before the run: the path leaves the data root or
	// passes through a symlink (rsync would follow it), or is not a clean
	// relative path.
	Dropped
)

// String names the outcome for logs.
func (o Outcome) String() string {
	names := [...]string{"unconfirmed", "sent", "updated", "unchanged", "deleted", "absent", "present", "vanished", "failed", "dropped"}
	if o >= 0 && int(o) < len(names) {
		return names[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Done reports whether the peer now holds the path as it is here (sent,
// updated, unchanged) or no longer holds it (deleted, absent).
func (o Outcome) Done() bool {
	switch o {
	case Sent, Updated, Unchanged, Deleted, Absent:
		return true
	}
	return false
}

// PathResult is one path's outcome.
type PathResult struct {
	// Path is the root-relative path as the caller gave it.
	Path string
	// Outcome is what happened to it.
	Outcome Outcome
	// Reason says why for Failed, Dropped, Vanished, Present: rsync's
	// error line, decoded, or this package's check.
	Reason string
	// Change is rsync's itemized change string (%i, such as "<f+++++++++"
	// or "*deleting  "), empty when rsync printed none for the path.
	Change string
	// Size is the length rsync reported for it (%l); Transferred the bytes
	// it transferred for it (%b).
	Size, Transferred int64
}

// Result is what one run did.
type Result struct {
	// Paths has one entry per distinct path given, in the caller's order.
	Paths []PathResult
	// Other counts itemized names that were not listed: the parent
	// directories rsync created (--relative), the root ".", the contents
	// of a deleted directory.
	Other int
	// Implied are the directories above listed paths that rsync made or
	// changed on the receiver (--relative sends each listed path's parents
	// with their mode, owner and times): they are the sender's now, though
	// nobody listed them. In the order rsync itemized them.
	Implied []string
	// Made are those of Implied that rsync created there (itemized
	// "+++++++++"): in a Delete, directories made only to reach a deleted
	// path below them, which the peer did not have (rsync --relative sends
	// a listed path's parents even for a deletion; without them it would
	// delete through a symlink in their place).
	Made []string
	// Removed are the paths rsync deleted on the receiver ("*deleting"),
	// listed or not, in the order itemized: in a Push, a directory that a
	// listed file replaced there, with its contents (--force), which goes
	// even when the file itself then vanished here and never arrived.
	Removed []string
	// NotDirs are the unlisted paths rsync sent as something other than a
	// directory. Nothing is sent unlisted but the parents of listed paths
	// (--relative), read as rsync lists each path (flist.c,
	// send_implied_dirs, with copy_links on): one that was a file or a
	// symlink by then, most often a directory swapped with a file while
	// rsync read the list, went as that. The receiver replaced its
	// directory there (--force, its contents in Removed), and aborts the
	// run if a listed path below it comes next ("ABORTING due to invalid
	// path from sender", exit 2). Shown with rsync 3.5.0: a delete of
	// h/d/x while another process swaps h/d with a file, 39 times in 300.
	// Left unnamed, the peer took what the run did there for a change of
	// its own (the stress test, seed 340 of the fifty-second session).
	NotDirs []string
	// Unmade are such parents where the receiver removed its directory
	// (with its contents, in Removed) and then stopped at the listed path
	// below ("%s/%s", the parent and the name): the file may be there or
	// not, as the receiving process got to it before the abort or not.
	// rsync itemizes neither the file nor the directory's own removal
	// then; its abort names the parent.
	Unmade []string
	// Args is the argument vector rsync ran with (after the program name);
	// nil when nothing was run.
	Args []string
	// Exited says that an rsync process ran and exited, so that Code is
	// its exit status; false when nothing was run or rsync could not start.
	Exited bool
	// Code is rsync's exit code (-1 when it was killed by a signal); Class
	// is what to do about it (Classify, refined by the errors seen).
	Code  int
	Class Class
	// Stderr is the end of rsync's standard error, as printed.
	Stderr string
	// BytesSent and BytesReceived are the totals on the wire (--stats).
	BytesSent, BytesReceived int64
	// Duration is the run's wall time.
	Duration time.Duration
}

// Count returns how many paths had the outcome o.
func (r Result) Count(o Outcome) int {
	n := 0
	for _, p := range r.Paths {
		if p.Outcome == o {
			n++
		}
	}
	return n
}

// ExitError is returned with the Result when rsync exits non-zero.
type ExitError struct {
	Code  int
	Class Class
	// Stderr is the end of rsync's standard error.
	Stderr string
}

func (e *ExitError) Error() string {
	last := strings.TrimSpace(e.Stderr)
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	return fmt.Sprintf("rsync exit %d, %s (%s): %s", e.Code, Describe(e.Code), e.Class, last)
}

// settle turns what rsync said of the i-th listed path of a run of mode m
// into its outcome (r, whose Reason is empty until then).
//
// unattributed says that rsync printed errors that named no listed path:
// in a run that ended with 23 (some files failed), a file the client
// logged as sent may be one the receiver discarded (a temp file it could
// not make names only the temp file), and an attribute it logged may be
// one it failed to set, so nothing itemized is confirmed then but
// deletions and unchanged files.
func (out *output) settle(r *PathResult, i int, m mode) {
	it, hasItem := out.items[i]
	pe, hasErr := out.errs[i]
	var said Outcome // what the itemized line says, if any
	if hasItem {
		r.Change, r.Size, r.Transferred = it.change, it.size, it.transferred
		said = itemOutcome(it.change)
	}
	if m == modeDelete && hasErr && pe.vanished {
		// A deletion's path is gone here: that is its premise, not a
		// failure. rsync says a listed directory "vanished" when it reads
		// it as the missing parent of another listed path (flist.c,
		// send_implied_dirs), and deletes it all the same.
		hasErr = false
	}
	switch {
	case m == modeDelete && hasItem && said != Deleted:
		// Made again here between the check and rsync's read of it:
		// --delete-missing-args sends what exists (flist.c), and the peer
		// holds it now, not nothing.
		r.Outcome, r.Reason = Present, "made again here while the run read it: rsync sent it instead of deleting it"
	case hasErr && pe.vanished:
		r.Outcome, r.Reason = Vanished, pe.reason
	case hasErr:
		r.Outcome, r.Reason = Failed, pe.reason
	case hasItem:
		r.Outcome, r.Reason = itemized(it.change, said, out.code, out.unattributed > 0)
	default:
		r.Outcome, r.Reason = notItemized(m, out.code)
	}
}

// itemized is the outcome of a path that rsync itemized (change, which
// says said) with no error of its own, in a run that exited with code.
func itemized(change string, said Outcome, code int, unattributed bool) (Outcome, string) {
	switch {
	case said != Deleted && said != Unchanged && code == 23 && unattributed:
		// Sent, its attributes set, a directory made: the error that
		// names no path may be its own (rsync itemizes before it sets
		// attributes, generator.c; a name may make a line read as two).
		return Unconfirmed, "itemized, but the run ended with errors that name no path (exit 23): not known to have been done"
	case (said == Sent || isDir(change)) && !ranToTheEnd(code):
		// The client logs a sent file when it has sent the data, before
		// the receiver has checked it and put it in place; a run cut
		// short (signal, connection lost, timeout) may have lost it on
		// the way. A directory is itemized before the generator makes it,
		// and its times are set only at the end of the run (generator.c,
		// touch_up_dirs). What the peer's side reported of other paths
		// (unchanged, attributes, links, deletions) it did before saying
		// so, and stands.
		return Unconfirmed, fmt.Sprintf("itemized, but the run ended early (exit %d) before the peer confirmed it", code)
	}
	return said, ""
}

// notItemized is the outcome of a path that rsync neither itemized nor
// named in an error, in a run of mode m that exited with code.
func notItemized(m mode, code int) (Outcome, string) {
	switch {
	case code != 0 && code != 24:
		return Unconfirmed, ""
	case m == modeDelete:
		// --delete-missing-args itemizes nothing for a name the peer
		// does not have.
		return Absent, ""
	}
	// -ii itemizes every name in the file list, unchanged ones too;
	// --ignore-missing-args leaves out a name gone before it was read.
	return Vanished, "gone before rsync read it"
}

// Deleting reports whether rsync itemized the path as deleted on the
// receiver ("*deleting"), whatever else it said of it.
func (r PathResult) Deleting() bool { return itemOutcome(r.Change) == Deleted }

// IsDir reports whether rsync itemized the path as a directory.
func (r PathResult) IsDir() bool { return isDir(r.Change) }

// isDir reports an itemized directory (%i's second column).
func isDir(change string) bool { return len(change) > 1 && change[1] == 'd' && change[0] != '*' }

// NotDir reports whether rsync itemized the path as a file, a symlink or
// a device, not a directory or a deletion.
func (p PathResult) NotDir() bool {
	return len(p.Change) > 1 && p.Change[0] != '*' && p.Change[1] != 'd'
}

// Created reports whether rsync made the path there (itemized
// "+++++++++").
func (p PathResult) Created() bool { return created(p.Change) }

// created reports whether an itemized change made its name ("+++++++++"
// after the update type and file type).
func created(change string) bool {
	return len(change) > 2 && strings.Trim(change[2:], "+") == ""
}

// CutShort reports whether rsync ran and exited before its last phase (a
// signal, a lost connection, a protocol error: not 0, 23 or 24), so that
// what it did to a path it never itemized is not known.
func (r Result) CutShort() bool { return r.Exited && !ranToTheEnd(r.Code) }

// ranToTheEnd reports whether an rsync exit code ends a run that went
// through its last phase, so that every file the client logged as sent
// was received and put in place, or named in an error: 0, 23 (some files
// failed, each named) and 24 (some vanished). Every other code cuts the
// run short (errcode.h).
func ranToTheEnd(code int) bool { return code == 0 || code == 23 || code == 24 }

// itemOutcome reads rsync's %i (rsync(1), --itemize-changes): '*' a
// message ("*deleting"), '<' or '>' content sent, 'c' created or changed
// locally, 'h' a hard link, '.' no content sent, with the attribute
// columns saying whether anything changed.
func itemOutcome(change string) Outcome {
	switch {
	case strings.HasPrefix(change, "*deleting"):
		return Deleted
	case change == "":
		return Unconfirmed
	}
	switch change[0] {
	case '<', '>':
		return Sent
	case 'c', 'h':
		return Updated
	}
	if strings.Trim(change[2:], ". ") != "" {
		return Updated
	}
	return Unchanged
}
