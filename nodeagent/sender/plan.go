// Package sender pushes one group's journaled changes to one peer: it takes
// the oldest pending entries that are not already in flight, sorts them into
// renames, sends and deletes by what is on disk now, runs them as batched
// rsync runs (at least two at a time, so that a large file does not hold
// back small ones), confirms each path from rsync's itemized output, and
// removes from the journal only what was confirmed and not changed since.
package sender

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// batch is the work of one run.
type batch struct {
	// renames are applied by the peer locally before the sends.
	renames []journal.Entry
	// oldNames are the renames whose old name is deleted on the peer by
	// this batch's deletes (the peer did not apply the rename): confirmed
	// only once that delete is.
	oldNames []journal.Entry
	// movedFrom maps the deletions of old names that oldNamesMovedOn
	// moved to the path each was made for: what the batch covered below
	// that path (covered) goes with it.
	movedFrom map[string]string
	// notRenamed are the new names of renames the peer did not apply (or
	// was not asked to): their content goes as any send's.
	notRenamed map[string]bool
	// applied says which of renames the peer applied (once asked).
	applied []bool
	// chained are, by the path of a rename, the renames it took the place
	// of (chainRenames): confirmed when it is; through are the new names
	// those had.
	chained map[string][]journal.Entry
	through map[string][]string
	// movedAlong are the paths of skipped entries that went with a rename
	// (movedWithARename).
	movedAlong map[string]bool
	// namesBelow, when set, returns the paths below a directory that the
	// index holds or the journal has pending (journal.Journal.NamesBelow).
	namesBelow func(dir string) []string
	// renamedOn maps the old names of the renames read for the plan (the
	// batch's, those that wait and those behind it) to the new name of
	// the first of each.
	renamedOn map[string]string
	// sends are paths that exist here: their content and attributes go.
	sends []journal.Entry
	// deletes are paths gone here, only the top-most of a removed tree.
	deletes []journal.Entry
	// covered are entries below a deleted directory (confirmed with it).
	covered []journal.Entry
	// underFile are removed paths below a path that is not a directory
	// here (a directory replaced by a file): rsync cannot list them
	// (ENOTDIR), and pushing that path, with --force, replaces the peer's
	// directory and everything in it. Each is confirmed once the run
	// confirms its fileAbove, sent in the same batch by its own entry, as
	// a non-directory on the peer (Sender.settleUnderFile).
	underFile []journal.Entry
	fileAbove map[string]string
	// forwarded are, by new name, the renames to a swap's temporary name,
	// gone here, asked as they were made (swapTemps), each with where its
	// object is now (the new name of the swap's last rename).
	forwarded map[string]string
	// renamedAlong are the new names, gone here, of renames asked because
	// later renames of directories above them moved them on
	// (movedOnBy): neither sent nor deleted by the run.
	renamedAlong map[string]bool
	// unrenamed are the renames among underFile entries that wait for the
	// file above them (Sender.settleUnderFile) while their old names'
	// deletions go: once those are done, they are journaled as removals
	// (journal.Journal.Unrenamed).
	unrenamed []journal.Entry
	// inFlight are the paths the batch put in flight (eachPath, when it
	// was taken), which Sender.finish takes out again. Read again at the
	// end, they were not all the same: a run rewrites its deletions where
	// the renames the peer applied put them (oldNamesMovedOn), and the
	// old name stayed in flight for good, holding every later entry at or
	// above it (the stress test, seed 32).
	inFlight []string
	// waiting are entries left out of the batch, to be planned again in a
	// moment (Sender.wait): their old name, or the file above them, is
	// in flight to the peer in another run, or not yet settled there.
	waiting []journal.Entry
	// waitsForLater are the renames among waiting that wait for later
	// renames away from directories above their old names (these), see
	// breaksCircle.
	waitsForLater map[entryKey][]string
	// unreadable are entries left out because their path could not be
	// looked at: held as failures (Sender.holdFailures, backing off).
	unreadable []Failure
	// replacedBefore are removed paths below a file that is a
	// non-directory on the peer already (journal.ReplacedOn): gone there
	// with the directory the file replaced; confirmed without a run.
	replacedBefore []journal.Entry
	// skipped are entries never listed, confirmed without a run: the
	// root itself, and paths that leave the root or cannot be read (a
	// later change or scan journals them again if they become sendable).
	skipped []journal.Entry
	// unlisted says why entries could not be listed, for the log.
	unlisted []string
	// bytes is the size of what sends carry.
	bytes int64
	// linked are the sent regular files with other names (st_nlink > 1).
	linked []linkedFile
	// state is what each sent regular file or symlink was when planned,
	// compared after the run (changedSince).
	state map[string]fileState
	// links are other names of linked files, listed in the push so that
	// rsync --hard-links makes them one inode on the peer as here. They
	// are not journal entries: announced and confirmed to the peer, and in
	// flight with the run, but nothing of them is removed from the journal.
	links []string
}

// fileState is what the re-check after a run compares.
type fileState struct {
	ino, size    int64
	mtime, ctime int64
	nlink        uint64
	mode         uint32
	uid, gid     uint32
	regular      bool
}

// sentStates are what the run sent of each of paths, for the peer's
// record (peer.FileState): a regular file's size, mtime, mode and owner as
// planned, a symlink's target (read now, and given only while the link is
// still the one planned: a link is replaced, never changed, so the same
// lstat after the read means the target read is the one sent). A file
// that changed while rsync read it (changed), or a link replaced since
// (after changedSince looked: the stress test's seed 24, a swap of a
// link between the push and the confirmation, read as its new target,
// made both receivers take the link they held for a change of their own
// and send it back), has no state: the peer holds some version of it,
// which it records as it finds it, received (the change that replaced it
// goes in its own run). Given the planned state, the peer would find its
// copy different, take it for a change of its own and send it on, over
// newer versions.
func (b *batch) sentStates(rootfd int, paths []string, changed map[string]bool) []peer.FileState {
	out := make([]peer.FileState, len(paths))
	for i, p := range paths {
		st, ok := b.state[p]
		switch {
		case !ok || changed[p]:
		case st.regular:
			out[i] = peer.FileState{Regular: true, Size: st.size, MtimeNs: st.mtime, Mode: st.mode, UID: st.uid, GID: st.gid}
		case st.mode&unix.S_IFMT == unix.S_IFLNK:
			target, err := beneath.Readlink(rootfd, p)
			var now unix.Stat_t
			if err == nil && beneath.Lstat(rootfd, p, &now) == nil && st.same(stateOf(&now)) {
				out[i] = peer.FileState{Symlink: true, Link: []byte(target)}
			}
		}
	}
	return out
}

func stateOf(st *unix.Stat_t) fileState {
	return fileState{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), nlink: uint64(st.Nlink),
		mode: uint32(st.Mode), uid: st.Uid, gid: st.Gid, regular: st.Mode&unix.S_IFMT == unix.S_IFREG}
}

// same reports whether a file is what it was. The ctime, which moves with
// any write or attribute change (even one that restores the mtime), counts
// only while the link count is unchanged: a link made or removed meanwhile
// moves the ctime too but changes nothing that was sent, and it has no
// event of its own under this path to release a hold. The mode and owner
// are compared themselves, for a chmod beside such a link (its moved
// ctime is then not read): the peer holds what rsync read, and a
// confirmation that gave the mode of the plan made the peer take the file
// for a change of its own (the stress test).
func (was fileState) same(now fileState) bool {
	if was.ino != now.ino || was.size != now.size || was.mtime != now.mtime ||
		was.mode != now.mode || was.uid != now.uid || was.gid != now.gid {
		return false
	}
	return was.ctime == now.ctime || was.nlink != now.nlink
}

// changedSince returns the paths of b's sends that are no longer what they
// were when b was planned: rsync read them while they changed, so the peer
// may hold a mix of two versions. Directories are not compared (entries
// made in them change their times; those entries are changes of their own).
func (b *batch) changedSince(rootfd int, paths []string) map[string]bool {
	var changed map[string]bool
	for _, p := range paths {
		was, ok := b.state[p]
		if !ok {
			continue
		}
		var st unix.Stat_t
		if err := beneath.Lstat(rootfd, p, &st); err == nil && was.same(stateOf(&st)) {
			continue
		}
		if changed == nil {
			changed = make(map[string]bool)
		}
		changed[p] = true
	}
	return changed
}

// backSince returns those of paths, deleted on the peer by a run, that
// exist here again. A path that cannot be looked at (outside the root by
// now, or unreadable) counts as gone: its next change or scan journals it.
func backSince(rootfd int, paths []string) map[string]bool {
	var back map[string]bool
	for _, p := range paths {
		var st unix.Stat_t
		if err := beneath.Lstat(rootfd, p, &st); err != nil {
			continue
		}
		if back == nil {
			back = make(map[string]bool)
		}
		back[p] = true
	}
	return back
}

// inode identifies a file by its device and inode number.
type inode struct {
	dev, ino uint64
}

// linkedFile is a sent regular file with more than one name.
type linkedFile struct {
	path string
	id   inode
	size int64
}

// withOtherNames returns paths and the other names in b (sends and links)
// of those that are linked files (b.linked): same device and inode.
func (b *batch) withOtherNames(rootfd int, paths []string) []string {
	ids := make(map[inode]bool)
	for _, f := range b.linked {
		if slices.Contains(paths, f.path) {
			ids[f.id] = true
		}
	}
	if len(ids) == 0 {
		return paths
	}
	out := slices.Clone(paths)
	for _, f := range b.linked {
		if ids[f.id] && !slices.Contains(out, f.path) {
			out = append(out, f.path)
		}
	}
	for _, name := range b.links {
		var st unix.Stat_t
		if beneath.Lstat(rootfd, name, &st) == nil && ids[inode{dev: uint64(st.Dev), ino: uint64(st.Ino)}] {
			out = append(out, name)
		}
	}
	return out
}

// eachPath calls f for every path the batch puts in flight: its entries,
// the other names of its linked files, and its renames' old names (which
// the peer renames, or deletes).
func (b *batch) eachPath(f func(string)) {
	b.each(func(e journal.Entry) { f(e.Path) })
	for _, p := range b.links {
		f(p)
	}
	for _, p := range b.renamedFrom() {
		f(p)
	}
}

// renamedFrom are the names its renames leave on the peer: their old names,
// and the names a joined chain went through (chainRenames), which the run
// deletes there where the joined rename is not applied (notApplied). They
// are announced with the run, so that the peer holds its own events on
// them and takes a deletion there for the sender's, not for a change of
// its own to send on; and they are in flight, so that no other run to the
// peer sends a name made here again at one of them meanwhile.
func (b *batch) renamedFrom() []string {
	var out []string
	for _, e := range b.renames {
		out = append(append(out, e.OldPath), b.through[e.Path]...)
	}
	return out
}

// large reports whether the run carries a large file: one of 16 MiB or
// more, not many smaller ones that add up to as much (100 x 1 MiB in one
// run is not a long run by this rule, see Sender.Lanes). A file journaled
// as a large one goes alone; one that grew large after it was journaled
// is in a batch with others, which is then a large one too. Sizes are as
// planned; the sends are read as they are now (addLinks may have taken
// some out).
func (b *batch) large() bool {
	for _, e := range b.sends {
		if st, ok := b.state[e.Path]; ok && st.size >= largeFileThreshold {
			return true
		}
	}
	return false
}

func (b *batch) entries() []journal.Entry {
	return slices.Concat(b.renames, b.sends, b.deletes, b.covered, b.underFile, b.replacedBefore, b.skipped)
}

// each calls f for every entry of entries(), without collecting them.
func (b *batch) each(f func(journal.Entry)) {
	for _, es := range [][]journal.Entry{b.renames, b.sends, b.deletes, b.covered, b.underFile, b.replacedBefore, b.skipped} {
		for _, e := range es {
			f(e)
		}
	}
}

func (b *batch) empty() bool {
	return len(b.renames)+len(b.sends)+len(b.deletes)+len(b.covered)+len(b.underFile)+len(b.replacedBefore)+len(b.skipped) == 0
}

// plan sorts entries by what is on disk now (lstat beneath rootfd): a path
// that exists is sent, one that does not is deleted, once, at its top-most
// removed directory. A rename whose new name exists asks the peer to
// rename first (then the send verifies it without moving content). A
// rename whose new name is gone again (mv a b; rm b) deletes its old name
// on the peer as well, unless that exists here again (its own entry sends
// it): the rename's entry is the only record that the old name went.
//
// busy reports a path in flight to the peer in another run (or a path
// above or below one): an entry whose old name is busy waits (b.waiting),
// so that no path is in two runs to a peer at once. nil: nothing is.
//
// A run asks for its renames before it deletes. A deletion below a
// rename's old name (rm d/x; mv d e, in one batch) would then look for
// d/x on the peer after the peer moved it to e/x, and delete nothing: such
// a rename waits for the next run (b.waiting), and this one deletes d/x
// first. What changed after a rename that waits, for this or for a busy
// old name, and depends on it, waits with it (see holdBack).
//
// behind are the entries the journal holds behind these, for later runs:
// their renames count as waiting. The journal's order is that of each
// path's first pending change, so a file changed before and after its
// directory was renamed comes before the rename, and may be cut from it
// by the batch's bounds.
func plan(rootfd int, entries, behind []journal.Entry, busy func(string) bool, older func(dir string, seq uint64) bool, namesBelow func(dir string) []string) batch {
	// The renames read (this batch's and those behind): see renamesRead.
	read := renamesRead{from: make(map[string]string), at: make(map[string]uint64), atTo: make(map[string]string), away: make(map[string]uint64), onto: make(map[string]uint64)}
	for _, e := range slices.Concat(entries, behind) {
		if !e.Op.Has(change.Rename) || e.OldPath == "" {
			continue
		}
		if _, ok := read.from[e.OldPath]; !ok {
			read.from[e.OldPath] = e.Path
		}
		if e.Seq >= read.at[e.OldPath] {
			read.at[e.OldPath], read.atTo[e.OldPath] = e.Seq, e.Path
		}
		read.away[e.OldPath] = max(read.away[e.OldPath], renameOrder(e))
		read.onto[e.Path] = max(read.onto[e.Path], renameOrder(e))
	}
	// goes are the renames planned without waiting for a later rename
	// above their old name (oldDirsRenamedAfter), because that rename
	// waits itself, in this plan: see breaksCircle. Each added makes the
	// plan again from the start (what waited for it may go now).
	goes := make(map[entryKey]bool)
replan:
	waiting := make(map[entryKey]bool) // planOnce's own, and later
	wait := make(map[entryKey]bool)
	var later []journal.Entry
	waitToo := func(e journal.Entry) bool {
		k := keyOf(e)
		if waiting[k] {
			return false
		}
		waiting[k], wait[k] = true, true
		later = append(later, e)
		return true
	}
	waits := func(e journal.Entry) bool { return waiting[keyOf(e)] }
	w := renamesWaiting{to: make(map[string]uint64), from: make(map[string]uint64)}
	for _, e := range behind {
		if e.Op.Has(change.Rename) && e.OldPath != "" {
			w.add(e) // it goes in a later run
		}
	}
	rest := entries
	for {
		b := planOnce(rootfd, rest, busy, read, namesBelow, goes)
		for _, e := range b.waiting {
			waiting[keyOf(e)] = true
			if e.Op.Has(change.Rename) && e.OldPath != "" {
				w.add(e)
			}
		}
		n := len(later)
		for _, e := range slices.Concat(b.renamesAboveDeletes(), b.renamesAboveBehind(behind, older)) {
			waitToo(e)
			w.add(e)
		}
		b.holdBack(w, waits, waitToo)
		if len(later) == n {
			if b.breaksCircle(read, func(k entryKey) bool { return waiting[k] }, goes) {
				goto replan
			}
			// Stable: planned again without what waits, the batch may
			// have made new deletions of old names (oldNamesGone), or
			// lost the deletion a rename waited for.
			b.waiting = append(b.waiting, later...)
			return b
		}
		rest = slices.DeleteFunc(slices.Clone(entries), func(e journal.Entry) bool { return wait[keyOf(e)] })
	}
}

// renamesWaiting are the new names (to) and old names (from) of the
// renames that wait, each with the rename's Seq (the lowest, for an old
// name that two renames share).
type renamesWaiting struct{ to, from map[string]uint64 }

func (w renamesWaiting) add(e journal.Entry) {
	for _, n := range []struct {
		names map[string]uint64
		name  string
	}{{w.to, e.Path}, {w.from, e.OldPath}} {
		if s, ok := n.names[n.name]; !ok || e.Seq < s {
			n.names[n.name] = e.Seq
		}
	}
}

// changedBelow reports whether p lies below one of names and was changed
// (seq) after the rename that waits there.
func changedBelow(p string, seq uint64, names map[string]uint64) bool {
	for d := parent(p); d != ""; d = parent(d) {
		if s, ok := names[d]; ok && seq > s {
			return true
		}
	}
	return false
}

// changedAtOrBelow is changedBelow, or p is one of names.
func changedAtOrBelow(p string, seq uint64, names map[string]uint64) bool {
	if s, ok := names[p]; ok && seq > s {
		return true
	}
	return changedBelow(p, seq, names)
}

// holds reports whether p, changed (seq) after a rename that waits, lies
// below its new name or at or below its old name.
func (w renamesWaiting) holds(p string, seq uint64) bool {
	return changedBelow(p, seq, w.to) || changedAtOrBelow(p, seq, w.from)
}

// holdBack makes wait (waitToo, which reports whether e waits now) the
// entries of b that changed after a rename that waits (a greater Seq) and
// depend on it (w, which it extends):
//   - a rename out of its new name (mv d e; mv e/f g, with d in flight):
//     the peer holds e/f only once it applies d's rename; asked before,
//     it refuses, g goes as content and e/f as a deletion that finds
//     nothing there, and d's rename then brings e/f back on the peer,
//     where nothing removes it;
//   - a rename onto, or out of, its old name or a path below it (mv d e;
//     mv f d; mkdir -p d/s; mv d/s z): until the peer applies d's
//     rename, its d is the renamed tree, whose names the new one would
//     find taken, or move away;
//   - a rename that waits holds back what depends on it in turn: repeated
//     until none is added;
//   - a deletion below its new name (mv d e; rm e/x): it would find nothing
//     on the peer before the rename puts e/x there; so does the entry of a
//     rename whose new name is gone again, whose old name's deletion
//     (oldNamesGone, Seq 0) lies there (mv d e; mv e/f g; rm g);
//   - a send below its new name (mv d e; mkdir d, and the scan of e
//     journals e/z): sent first, it makes e on the peer, where the rename
//     then finds its new name taken; e goes as content, and the peer's d,
//     which exists here again, keeps the renamed tree's files, which
//     nothing here removes;
//   - a send or a deletion at or below its old name (mv d e; mkdir d, as
//     mv build build.old; mkdir build does): sent first, the new d went
//     with the peer's rename; deleted first, a path below d was the
//     renamed tree's there.
//
// Every wait so runs from a later change to an earlier one, and a rename
// waits for a deletion below its old name only when that came first
// (renamesAboveDeletes): no two entries can wait for each other. What
// changed before the rename is left to the order of a run (renames,
// sends, deletions), which suits it: rm d/x; mv d e deletes d/x in this
// run, and the rename goes in the next.
func (b *batch) holdBack(w renamesWaiting, waits, waitToo func(journal.Entry) bool) {
	if len(w.to) == 0 {
		return
	}
	for more := true; more; {
		more = false
		for _, e := range b.renames {
			if waits(e) {
				continue
			}
			if w.holds(e.OldPath, e.Seq) || changedAtOrBelow(e.Path, e.Seq, w.from) {
				if waitToo(e) {
					w.add(e)
					more = true
				}
			}
		}
	}
	var owners map[string][]journal.Entry // oldNames by old name
	for _, e := range slices.Concat(b.deletes, b.covered) {
		if e.Seq != 0 {
			if w.holds(e.Path, e.Seq) {
				waitToo(e)
			}
			continue
		}
		if owners == nil {
			owners = make(map[string][]journal.Entry, len(b.oldNames))
			for _, r := range b.oldNames {
				owners[r.OldPath] = append(owners[r.OldPath], r)
			}
		}
		for _, r := range owners[e.Path] {
			if w.holds(e.Path, r.Seq) {
				waitToo(r)
			}
		}
	}
	for _, e := range b.sends {
		if w.holds(e.Path, e.Seq) {
			waitToo(e)
		}
	}
}

// renamesAboveBehind returns b's renames whose old name is a directory
// above an entry journaled before the rename and left behind this batch by
// its bounds (a large file, the batch's size): most often a removal there
// (rm d/x; mv d e, with e's entry in the journal before them: rm e; rm
// d/x; mv d e, as the rename keeps e's place). Asked first, the peer
// moves d/x to e/x, and the deletion of d/x then finds nothing there: the
// peer kept e/x for good. The rename waits, and the entries below its old
// name go first (renamesAboveDeletes does the same within the batch).
// behind are the entries read past the batch; older, when not nil, asks
// the journal for those not read (it reports whether one below dir was
// journaled before seq, other than the batch's).
func (b *batch) renamesAboveBehind(behind []journal.Entry, older func(dir string, seq uint64) bool) []journal.Entry {
	if len(b.renames) == 0 {
		return nil
	}
	var out []journal.Entry
	for _, r := range b.renames {
		seq := b.firstSeq(r)
		if slices.ContainsFunc(behind, func(e journal.Entry) bool { return e.Seq < seq && strings.HasPrefix(e.Path, r.OldPath+"/") }) ||
			older != nil && older(r.OldPath, seq) {
			out = append(out, r)
		}
	}
	return out
}

// firstSeq is r's sequence number, or, for a rename that a chain was
// joined into (chainRenames), the first rename's: what was journaled
// between them (mv d t; mv t e, read after both, journals the removals of
// d's names after the first) came after the rename the peer is asked for.
func (b *batch) firstSeq(r journal.Entry) uint64 {
	seq := r.Seq
	for _, c := range b.chained[r.Path] {
		seq = min(seq, c.Seq)
	}
	return seq
}

// renamesAboveDeletes returns b's renames whose old name is a directory
// above one of b's deletions journaled before the rename (a later one is
// of what was made there since, and waits for the rename: holdBack). A
// deletion the batch made of another rename's old name (sequence 0, see
// b.oldNames) counts as journaled with that rename, as in holdBack. Taken
// as older than every rename, it made a rename wait for the deletion of a
// name that a later rename had moved out of its old name since (mv s d;
// mv t s; mv s/sub/x m; rm m: the deletion of s/sub/x), and that later
// rename then waited for the first (holdBack), so its deletion was never
// made: both waited at every plan, with every entry behind them, for good
// (the stress test: a writer with 193 entries pending and no run).
func (b *batch) renamesAboveDeletes() []journal.Entry {
	if len(b.renames) == 0 || len(b.deletes)+len(b.covered) == 0 {
		return nil
	}
	madeBy := make(map[string]uint64) // a deletion of sequence 0 -> its rename's
	for _, r := range b.oldNames {
		if s, ok := madeBy[r.OldPath]; !ok || r.Seq < s {
			madeBy[r.OldPath] = r.Seq
		}
	}
	seqOf := func(d journal.Entry) uint64 {
		if d.Seq == 0 {
			return madeBy[d.Path]
		}
		return d.Seq
	}
	var out []journal.Entry
	for _, r := range b.renames {
		seq := b.firstSeq(r)
		// Or at it, where an earlier rename's old name is deleted
		// (oldNamesGone): mv a/b a/f1; rm -r a/f1; ...; mv a/b a/m34,
		// a/b made again between. Asked first, the rename moved the
		// peer's old a/b, the tree removed here, to a/m34, and the
		// deletion found nothing (the sender's random operations test).
		below := func(d journal.Entry) bool {
			return seqOf(d) < seq && atOrBelow(d.Path, r.OldPath)
		}
		if slices.ContainsFunc(b.deletes, below) || slices.ContainsFunc(b.covered, below) {
			out = append(out, r)
		}
	}
	return out
}

// renamesRead are the renames read for a plan (its batch's and those
// behind), by name.
type renamesRead struct {
	// from holds each old name with the new name of its first rename
	// read; at with the latest Seq of a rename from it, which
	// breaksCircle looks the rename up by (oldDirsRenamedAfter reads
	// away).
	from map[string]string
	at   map[string]uint64
	// atTo holds each old name with the new name of the rename that at
	// holds the Seq of.
	atTo map[string]string
	// away and onto hold each old name, and each new name, with when the
	// latest rename from it, and onto it, was made (renameOrder).
	away, onto map[string]uint64
}

// movedWithARename reports whether e, gone here, is a change of a
// directory's attributes (or its making) at or below the old name of a
// rename that was read: it went with the rename. Deleted on
// the peer, it took the directory's whole tree there, which the rename
// then could not move, and every file of it went again as content (a
// chmod d, or of d/sub, before mv d e). Confirmed without a run instead:
// the peer applies the rename, and the scan of the renamed directory,
// which journals its tree under the new name, brings the attributes. A
// write is not taken so: one that kept the size and mtime is seen only as
// a write, and a file goes alone.
//
// Not where a rename read onto e's path, or onto a directory above it,
// was made after the latest rename away: the peer holds there what that
// rename brought, which is gone here and is deleted (swap a/b c twice,
// the journal keeping the second swap's renames onto a/b and c alone: the
// peer kept the first swap's a/b/d, the sender's random operations test).
func movedWithARename(e journal.Entry, read renamesRead) bool {
	if len(read.from) == 0 || e.Op&^(change.Attrib|change.Mkdir|change.Found|change.Subtree) != 0 {
		return false
	}
	var away, onto uint64
	for d := e.Path; d != ""; d = parent(d) {
		away, onto = max(away, read.away[d]), max(onto, read.onto[d])
	}
	return away > onto
}

// chainRenames joins renames that follow each other (mv d e; mv e f, both
// pending): the peer, which holds d, is asked for d -> f, and the rename
// to e, whose new name is gone here, is confirmed with it (chained, by the
// later rename's path). Asked as they were, the peer refused e -> f (it
// has no e), d was deleted there as the old name of a rename whose new
// name is gone, and every file went again as content. It returns entries
// with those renames' old names set so, and without the ones joined; and,
// by the later rename's path, the names it went through (e), which the
// peer may hold instead of d (it applied d -> e, whose confirmation did
// not arrive): deleted there where the joined rename is not applied
// (batch.notApplied).
//
// Only a rename that is all its entry holds (no removal, no write of its
// new name), journaled before the first change of the later one, and
// whose new name no other rename moved on is joined: mv e f; mv d e; rm e
// (the later rename first) would otherwise bring d's content to f and
// leave e on the peer.
//
// Renames out of names that apart others (swapTemps) are not joined; a
// rename onto such a name takes in those before it: mv a/f1 t1; mv a/b
// a/f1; mv t1 a/b; mv a/b t2 (the journal keeping a/f1 -> t1 and t1 -> t2,
// movedOnFrom), then a swap through t2: not joined, the rename to t1,
// whose new name is gone here, deleted the peer's a/f1, and t1 -> t2 was
// refused (the sender's random operations test).
func chainRenames(rootfd int, entries []journal.Entry, apart map[string]string) ([]journal.Entry, map[string][]journal.Entry, map[string][]string) {
	byOld := make(map[string]int)
	shared := make(map[string]bool)
	for i, e := range entries {
		if _, ok := apart[e.OldPath]; ok {
			continue
		}
		if e.Op.Has(change.Rename) && e.OldPath != "" {
			if _, ok := byOld[e.OldPath]; ok {
				shared[e.OldPath] = true
			}
			byOld[e.OldPath] = i
		}
	}
	for p := range shared {
		delete(byOld, p) // two renames of one old name: which came first is not known
	}
	if len(byOld) < 2 {
		return entries, nil, nil
	}
	var chained map[string][]journal.Entry
	var through map[string][]string
	joined := make(map[int]bool)
	// left is, by entry, when it left its old name, where a join set that
	// name (the joined rename's); for the others, the first change of the
	// entry is taken. A rename onto x's path journaled after the rename
	// that left it (mv d/x t; mv e d/x; mv t e: t's rename, joined, left d/x
	// before e's rename made it) is not the rename that left it: joined,
	// the peer was asked for e -> e, and refused.
	left := make(map[int]uint64)
	leftAt := func(i int) uint64 {
		if s, ok := left[i]; ok {
			return s
		}
		return entries[i].Order
	}
	for i := range entries {
		x := entries[i] // re-read: an earlier join may have set its old name
		if x.Op&^(change.Rename|change.Subtree|change.Found) != 0 || !x.Op.Has(change.Rename) || x.OldPath == "" || joined[i] {
			continue
		}
		j, ok := byOld[x.Path]
		if !ok || j == i || joined[j] || leftAt(j) <= x.Seq {
			continue
		}
		// Gone here: no such name, or a file where a directory on its way
		// was (mv a d/x; mv d/x c; then d a file): not joined, the peer
		// was asked for d/x -> c, which it refused, and kept a.
		var st unix.Stat_t
		if err := beneath.Lstat(rootfd, x.Path, &st); !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if chained == nil {
			entries = slices.Clone(entries)
			chained = make(map[string][]journal.Entry)
			through = make(map[string][]string)
		}
		y := &entries[j]
		delete(byOld, y.OldPath)
		y.OldPath = x.OldPath
		if s, ok := left[i]; ok {
			left[j] = s
		} else {
			left[j] = x.Seq
		}
		byOld[y.OldPath] = j
		chained[y.Path] = append(append(chained[y.Path], x), chained[x.Path]...)
		through[y.Path] = append(append(through[y.Path], x.Path), through[x.Path]...)
		delete(chained, x.Path)
		delete(through, x.Path)
		joined[i] = true
	}
	if len(joined) == 0 {
		return entries, nil, nil
	}
	out := make([]journal.Entry, 0, len(entries)-len(joined))
	for i, e := range entries {
		if !joined[i] {
			out = append(out, e)
		}
	}
	return out, chained, through
}

// withChained adds to done the renames chained to those of done's entries
// (chainRenames).
func (b *batch) withChained(done []journal.Entry) []journal.Entry {
	if len(b.chained) == 0 {
		return done
	}
	for _, e := range done {
		done = append(done, b.chained[e.Path]...)
	}
	return done
}

func planOnce(rootfd int, entries []journal.Entry, busy func(string) bool, read renamesRead, namesBelow func(dir string) []string, goes map[entryKey]bool) batch {
	// Sized up front: a burst's batch would grow them by doubling.
	b := batch{sends: make([]journal.Entry, 0, len(entries)), state: make(map[string]fileState, len(entries)), namesBelow: namesBelow, renamedOn: read.from}
	b.forwarded = swapTemps(rootfd, entries)
	// The renames as made, before chainRenames joins them, and as the
	// batch asks them: what movedOnBy and foundMovedOn read, once per
	// path gone here (the renames alone: a burst's other entries would
	// make each read as long as the batch).
	made := renamesIn(entries)
	entries, b.chained, b.through = chainRenames(rootfd, entries, b.forwarded)
	asked := renamesIn(entries)
	var gone, olds []journal.Entry
	for _, e := range entries {
		if e.Path == "." {
			// Never listed: rsync's --dirs copies the contents of a listed
			// "." (the reserved directory among them). The root's own
			// attributes are each host's.
			b.skipped = append(b.skipped, e)
			continue
		}
		renamed := e.Op.Has(change.Rename) && e.OldPath != ""
		if renamed && busy != nil && busy(e.OldPath) {
			b.waiting = append(b.waiting, e)
			continue
		}
		var st unix.Stat_t
		err := beneath.Lstat(rootfd, e.Path, &st)
		switch {
		case err == nil:
			if renamed {
				b.renames = append(b.renames, e)
			}
			b.send(e, &st)
		case errors.Is(err, unix.ENOENT) && !renamed && movedWithARename(e, read),
			!renamed && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)) && foundMovedOn(rootfd, made, e):
			b.skipped = append(b.skipped, e)
			if b.movedAlong == nil {
				b.movedAlong = make(map[string]bool)
			}
			b.movedAlong[e.Path] = true
		case errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT):
			if renamed && b.forwarded[e.Path] == "" {
				if now := movedOnBy(asked, e.Path, renameOrder(e)); now != e.Path && beneath.Lstat(rootfd, now, &st) == nil {
					if b.forwarded == nil {
						b.forwarded = make(map[string]string)
					}
					b.forwarded[e.Path] = now
				}
			}
			if _, ok := b.forwarded[e.Path]; ok && renamed {
				b.renames = append(b.renames, e)
				if b.renamedAlong == nil {
					b.renamedAlong = make(map[string]bool)
				}
				b.renamedAlong[e.Path] = true
				continue
			}
			if renamed && !goes[keyOf(e)] {
				if dirs := oldDirsRenamedAfter(rootfd, e, read.away); len(dirs) > 0 {
					b.waiting = append(b.waiting, e)
					if b.waitsForLater == nil {
						b.waitsForLater = make(map[entryKey][]string)
					}
					b.waitsForLater[keyOf(e)] = dirs
					continue
				}
			}
			if renamed {
				olds = append(olds, e)
			}
			if errors.Is(err, unix.ENOTDIR) {
				if above := fileAbove(rootfd, e.Path); above != "" {
					b.underFile = append(b.underFile, e)
					if b.fileAbove == nil {
						b.fileAbove = make(map[string]string)
					}
					b.fileAbove[e.Path] = above
					continue
				}
			}
			gone = append(gone, e)
		case errors.Is(err, beneath.ErrOutside), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENAMETOOLONG):
			// Outside the root (through a symlink), or a name no call
			// takes: never listed, and confirmed so that it cannot hold
			// back the entries behind it. A later change or scan journals
			// it again if it becomes sendable. A rename's old name is
			// deleted on the peer where it is gone here, as for a new
			// name that is gone (mv a d/m; mv d e; ln -s e d: the peer
			// kept a, the stress test); the new name, through a symlink
			// here and perhaps there, is not.
			if renamed {
				olds = append(olds, e)
			}
			b.skipped = append(b.skipped, e)
			b.unlisted = append(b.unlisted, e.Path+": "+err.Error())
		default:
			// Cannot be looked at now (out of descriptors or memory, an
			// I/O error, no permission): it stays pending and is planned
			// again after the peer's backoff for a failing path, which
			// grows while the error lasts. Confirmed, it would be lost:
			// the index holds its new state, so no scan would journal it
			// again.
			b.unreadable = append(b.unreadable, Failure{Entry: e, Reason: "look at it: " + err.Error()})
			b.unlisted = append(b.unlisted, e.Path+": "+err.Error()+" (tried again later)")
		}
	}
	// Asked in the order they were made here: the journal's is that of
	// each path's first pending change, which for a name written, renamed
	// away and renamed onto again (mv f m; mv m t; mv c m, m's entry
	// taking the place of the first) put the rename of c before one made
	// before it (mv c/x a), whose old name it moved away on the peer
	// first: refused there, and its old name, below a file here, could
	// not be deleted (the sender's random operations test).
	// A joined chain (chainRenames) goes where its first rename was made:
	// its old name is the peer's only until what came after moves it.
	order := func(e journal.Entry) uint64 {
		if _, ok := b.chained[e.Path]; ok {
			return b.firstSeq(e)
		}
		return renameOrder(e)
	}
	slices.SortStableFunc(b.renames, func(x, y journal.Entry) int { return cmp.Compare(order(x), order(y)) })
	// A rename out of a joined chain's middle name is asked from where
	// the chain, asked before it, puts its old name on the peer
	// (alongChain): mv a m; mv m/b/f m/x; mv m/x y; mv m n, asked as a ->
	// n and m/b/f -> y. Asked at m/b/f, it was refused (the peer holds
	// n/b/f by then), y went as content, the deletion of m/b/f found
	// nothing, and the peer kept n/b/f (the sender's random operations
	// test). Refused, its old name is deleted there (notApplied).
	for i, e := range b.renames {
		if p, ok := b.alongChain(e); ok {
			b.renames[i].OldPath = p
		}
	}
	gone = append(gone, b.oldNamesGone(rootfd, olds, gone)...)
	var covered []journal.Entry
	b.deletes, covered = topMost(gone)
	b.covered = append(b.covered, covered...)
	return b
}

// follows returns the indices of the renames before b.renames[i] whose
// new or old name its old name is, or lies below (peer.Rename.After): the
// peer applies it only if it applied each of them. mv a/f1 t; mv a/b
// a/f1; mv t a/b (a swap, both refused on the peer: the new names are
// taken there), then mv a/b a/m34: the peer's a/b was still its old tree,
// which the last rename moved to a/m34, where it stayed beside what was
// pushed (the sender's random operations test). Refused, the rename's
// new name is pushed as content and its old name deleted, as for any.
func (b *batch) follows(i int) []int {
	var out []int
	old := b.renames[i].OldPath
	for j, r := range b.renames[:i] {
		if atOrBelow(old, r.Path) || atOrBelow(old, r.OldPath) {
			out = append(out, j)
		}
	}
	return out
}

// atOrBelow reports whether p is dir or lies below it.
func atOrBelow(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}

// renamedTo returns where the rename r puts p: at or below its old name,
// p is at or below its new name then.
func renamedTo(r journal.Entry, p string) (string, bool) {
	if !atOrBelow(p, r.OldPath) {
		return p, false
	}
	return r.Path + p[len(r.OldPath):], true
}

// swapTemps returns, by new name, the renames to a temporary name of a
// swap (mv a t; mv b a; mv t b) among entries, each with the name its
// object has now (b), which exists here. Joined (chainRenames) into a -> b
// and asked before b -> a, as the first rename was made, the peer
// refused both (each new name taken there), every file of both went again
// as content, and a directory's old tree stayed on the peer under the
// name it kept (the sender's random operations test). Each is asked as it
// was made instead, to its temporary name, whose rename on (t -> b) the
// same run asks for after the one that frees its new name (b -> a): the
// object's size, mtime and type are read where it is now. A rename out of
// the new name of the later one, made between the two, tells a swap.
//
// A name may be renamed out of more than once (swap a/b c; mv c a/m31:
// the swap's b -> a, then a -> m31): the rename out of it that tells the
// swap is the one made between the swap's first and last (renameOut).
func swapTemps(rootfd int, entries []journal.Entry) map[string]string {
	var byOld map[string][]int
	renames := 0
	for i, e := range entries {
		if e.Op.Has(change.Rename) && e.OldPath != "" {
			if byOld == nil {
				byOld = make(map[string][]int)
			}
			byOld[e.OldPath] = append(byOld[e.OldPath], i)
			renames++
		}
	}
	if renames < 3 {
		return nil
	}
	// renameOut returns the first rename out of old made after lo and
	// before hi.
	renameOut := func(old string, lo, hi uint64) (journal.Entry, bool) {
		var out journal.Entry
		found := false
		for _, i := range byOld[old] {
			e := entries[i]
			if o := renameOrder(e); o > lo && o < hi && (!found || o < renameOrder(out)) {
				out, found = e, true
			}
		}
		return out, found
	}
	var out map[string]string
	for _, x := range entries {
		if x.Op&^(change.Rename|change.Subtree|change.Found) != 0 || !x.Op.Has(change.Rename) || x.OldPath == "" {
			continue
		}
		z, ok := renameOut(x.Path, renameOrder(x), math.MaxUint64)
		if !ok {
			continue
		}
		y, ok := renameOut(z.Path, renameOrder(x), renameOrder(z))
		if !ok {
			continue
		}
		var st unix.Stat_t
		if beneath.Lstat(rootfd, x.Path, &st) == nil {
			continue
		}
		now := movedOnBy(entries, z.Path, renameOrder(z))
		if beneath.Lstat(rootfd, now, &st) != nil {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[x.Path] = now
		if now != z.Path {
			// The swap's last rename too: its new name, gone here, went on
			// with a directory above it.
			out[z.Path] = now
		}
		if beneath.Lstat(rootfd, y.Path, &st) != nil {
			// And its middle one, whose new name went on so (swap a/b
			// c/d; mv c m18; mv f5 m36; swap m36 a: a/b is m36/b now).
			if now := movedOnBy(entries, y.Path, renameOrder(y)); now != y.Path && beneath.Lstat(rootfd, now, &st) == nil {
				out[y.Path] = now
			}
		}
	}
	return out
}

// renamesIn returns the renames among entries (an old name given).
func renamesIn(entries []journal.Entry) []journal.Entry {
	var out []journal.Entry
	for _, e := range entries {
		if e.Op.Has(change.Rename) && e.OldPath != "" {
			out = append(out, e)
		}
	}
	return out
}

// movedOnBy returns where p, a name as it was when the rename made at
// order at was made, is now: followed through the renames among entries
// made after it out of p or a directory above it (swap a/b c/f3; swap c
// f5: the first swap's c/f3 is f5/f3 now), as far as the entries tell:
// the caller checks that the name it returns exists here.
func movedOnBy(entries []journal.Entry, p string, at uint64) string {
	for range len(entries) { // each step takes a later rename
		next, nextAt, found := "", uint64(0), false
		for _, r := range entries {
			if !r.Op.Has(change.Rename) || r.OldPath == "" || renameOrder(r) <= at || found && renameOrder(r) >= nextAt {
				continue
			}
			if to, ok := renamedTo(r, p); ok {
				next, nextAt, found = to, renameOrder(r), true
			}
		}
		if !found {
			return p
		}
		p, at = next, nextAt
	}
	return p
}

// foundMovedOn reports whether e, a change that made or wrote its path
// (no removal), gone here, is gone only because renames among entries of
// directories above it moved it on: its name is where they put it, and
// exists. Its entry there sends it (the journal put what was pending
// below a renamed directory behind the rename, under the new name); the
// peer's copy moves with those renames, or, where one is refused, goes
// with its old tree (notApplied). Taken as gone, it was deleted on the
// peer before them, and a rename of a directory above it waited for that
// deletion (renamesAboveDeletes): planned again without that rename, the
// batch lost the rename chain a swap was told by (seed 119, c/d/f2 found
// by the scan of the first swap's tree, c then renamed on to m36).
func foundMovedOn(rootfd int, entries []journal.Entry, e journal.Entry) bool {
	if e.Op&(change.Remove|change.Rmdir) != 0 || !e.Op.Has(change.Found) {
		return false
	}
	// Followed from the latest rename that put it in place (onto it or a
	// directory above it) before its entry: a rename out of that
	// directory made before then moved another object.
	at := uint64(0)
	for _, r := range entries {
		if o := renameOrder(r); r.Op.Has(change.Rename) && r.OldPath != "" && o <= e.Order && o > at && atOrBelow(e.Path, r.Path) {
			at = o
		}
	}
	if at == 0 {
		// No such rename read: the entry's name may date from before
		// renames that the journal no longer holds (swap a/b c twice:
		// c/f2, found in the first swap's tree, is gone with it, not
		// moved on by the second's a/b <- c).
		return false
	}
	now := movedOnBy(entries, e.Path, at)
	var st unix.Stat_t
	return now != e.Path && beneath.Lstat(rootfd, now, &st) == nil
}

// renameOrder is when e's rename was made here: its RenameSeq, or, for an
// entry journaled before the journal kept that, its first change.
func renameOrder(e journal.Entry) uint64 {
	if e.RenameSeq != 0 {
		return e.RenameSeq
	}
	return e.Order
}

// oldDirsRenamedAfter reports whether e, a rename whose new name is gone
// here, has an old name below a file here (ENOTDIR) and below a directory
// that a rename read for the plan, made after e left its old name, moved
// away (renamedAt: renamesRead.away): mv d/d/m n/m; mv n f; mv d g; mv h
// d, the peer holding d/d/m. The old name is then not gone with the
// directory that the file replaces on the peer, as oldNamesGone takes it:
// that rename moves it there first (to g/d/m), and nothing removed it
// (the stress test). e waits for that rename, which goes first (it does
// not wait for e: every wait runs from a later change to an earlier one,
// see holdBack); once the peer applied it, the journal has e's old name
// where it moved (journal.Journal.MovedOn), a name gone here that e's
// next plan deletes. Both are dated by renameOrder: e's Seq is that of a
// removal of its new name where there was one, made after the renames in
// between, which then did not count (random seed 178: mv c/f3 c/m11; mv
// c/d/f4 a/m13; swap c/m11 c/d; rm a/m13, the peer keeping c/m11/f4).
//
// It returns those directories, none when e does not wait.
func oldDirsRenamedAfter(rootfd int, e journal.Entry, renamedAt map[string]uint64) []string {
	if len(renamedAt) == 0 {
		return nil
	}
	var st unix.Stat_t
	if !errors.Is(beneath.Lstat(rootfd, e.OldPath, &st), unix.ENOTDIR) {
		return nil
	}
	var dirs []string
	for d := parent(e.OldPath); d != ""; d = parent(d) {
		if renamedAt[d] > renameOrder(e) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// entryKey identifies one journaled change: its path and Seq.
type entryKey struct {
	path string
	seq  uint64
}

func keyOf(e journal.Entry) entryKey { return entryKey{e.Path, e.Seq} }

// breaksCircle adds to goes the renames of b that wait for later renames
// above their old name (oldDirsRenamedAfter) when each of those waits
// itself in the same plan (waits), and reports whether it added one, for
// the plan to be made again. Every other wait runs from a later change to
// an earlier one (see holdBack); this one alone runs the other way, and a
// later rename that waits, most often for the earlier rename itself (its
// new name, or a deletion, lies below the earlier one's new name), closed
// a circle in which both waited for good (RANDOM_OPS_LIVE seed 59: c/d ->
// a/b/m12 waiting for a/b/m12/f4 <- c, which waited for it). The earlier
// rename then goes as it would without a later one: the later one, held
// back, does not move the directory first.
func (b *batch) breaksCircle(read renamesRead, waits func(entryKey) bool, goes map[entryKey]bool) bool {
	added := false
	for k, dirs := range b.waitsForLater {
		if goes[k] {
			continue
		}
		all := true
		for _, d := range dirs {
			if !waits(entryKey{read.atTo[d], read.at[d]}) {
				all = false
				break
			}
		}
		if all {
			goes[k], added = true, true
		}
	}
	return added
}

// oldNamesGone returns deletions (of sequence 0, which the journal never
// holds) for the old names of renamed entries whose new name is gone
// here, and records those entries in b.oldNames, so that each is confirmed
// only once its old name's delete is. An old name that exists here again,
// or that the batch lists already, is left to its own entry; one below a
// file here (ENOTDIR) to that file's, which replaces the peer's directory.
func (b *batch) oldNamesGone(rootfd int, renamed, gone []journal.Entry) []journal.Entry {
	if len(renamed) == 0 {
		return nil
	}
	listed := make(map[string]bool)
	b.each(func(e journal.Entry) {
		// One confirmed as gone with a rename (movedAlong) is not there
		// to delete the old name: that rename is this one, which never
		// reaches the peer (chmod a; mv a d/b; rm -r d: the peer kept a,
		// the stress test).
		if !b.movedAlong[e.Path] && !b.renamedAlong[e.Path] {
			listed[e.Path] = true
		}
	})
	// A name that the batch deletes for an entry of its own (gone) is
	// deleted once more as the old name: the old names' deletions are the
	// ones that go before the renames, or move on with them
	// (oldNamesFirst, oldNamesMovedOn), and topMost keeps this one (of
	// sequence 0) and covers the entry's with it. A scan's entry at the
	// old name, left there when the file was renamed away (journal: a
	// Found entry keeps no removal), was deleted where it stood, after a
	// swap had moved the peer's file on (random seed 1068: mv m16/d/f4
	// m16/m20; swap m16/d m16/f3; rm m16/m20, the peer keeping
	// m16/f3/f4).
	deletedOwn := make(map[string]bool, len(gone))
	for _, e := range gone {
		if !listed[e.Path] {
			deletedOwn[e.Path] = true
		}
		listed[e.Path] = true
	}
	var out []journal.Entry
	for _, e := range renamed {
		out = append(out, b.throughGone(rootfd, e, listed)...)
		var st unix.Stat_t
		err := beneath.Lstat(rootfd, e.OldPath, &st)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// The peer never gets the rename, and its old tree stays there
			// under a name that is a directory here again.
			out = append(out, b.oldTreeLeft(rootfd, e, gone, listed)...)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			continue
		}
		p := e.OldPath
		if q, ok := b.alongChain(e); ok {
			// Where the peer holds it, whatever the batch lists under
			// the chain's middle name (a deletion there finds nothing).
			p = q
		}
		if listed[p] && !deletedOwn[p] {
			continue
		}
		listed[p], deletedOwn[p] = true, false
		out = append(out, b.deleteOldName(e, p))
	}
	return out
}

// alongChain returns where the peer holds e's old name once the batch's
// renames are applied, when that name lies below a name that a joined
// chain of the batch went through (chainRenames) and e was made while the
// chain's tree had that name: mv c m; mv m/f m/d/x; mv m n, with m/d/x
// gone since. The peer is asked for c -> n, so its m/f is n/f by the
// time the run deletes; deleted at m/f, it found nothing, and n/f stayed
// there for good (the sender's random operations test). If the peer
// refuses the chain, its old name goes whole (notApplied), and n/f is
// nothing there.
func (b *batch) alongChain(e journal.Entry) (string, bool) {
	if len(b.through) == 0 {
		return "", false // no chain joined: not a loop over the renames per rename
	}
	for _, y := range b.renames {
		links := b.chained[y.Path]
		for i, name := range b.through[y.Path] {
			rest, ok := strings.CutPrefix(e.OldPath, name+"/")
			if ok && i < len(links) && links[i].Path == name && links[i].Seq < e.Seq && e.Seq < y.Seq {
				return y.Path + "/" + rest, true
			}
		}
	}
	return "", false
}

// throughGone returns deletions (of sequence 0) for the names that the
// joined chain e went through (chainRenames) and that are gone here, and
// records each in b.oldNames (with the deletion as its old name), so that
// e is confirmed only once they are deleted. Whether the peer applied the
// joined rename, refused it, or is never asked (its new name is gone
// here), it may hold one of them: instead of the first old name (it
// applied mv d e, whose confirmation did not arrive), or beside it, made
// by files changed below the middle name and sent as content before the
// chain (mv d e; write e/x; mv e f), or a name whose own rename it refused
// and kept. Left, the peer kept such a name for good (the stress test).
// Names in listed, when not nil, are left out, and those returned are
// added to it.
func (b *batch) throughGone(rootfd int, e journal.Entry, listed map[string]bool) []journal.Entry {
	var out []journal.Entry
	for _, n := range b.through[e.Path] {
		var st unix.Stat_t
		if listed[n] || !errors.Is(beneath.Lstat(rootfd, n, &st), unix.ENOENT) {
			continue
		}
		if listed != nil {
			listed[n] = true
		}
		out = append(out, b.deleteOldName(e, n))
	}
	return out
}

// deleteOldName returns the deletion (of sequence 0, which the journal
// never holds) of p, a name that the rename e leaves on the peer, and
// records it in b.oldNames (e with p as its old name), so that e is
// confirmed only once p is deleted.
func (b *batch) deleteOldName(e journal.Entry, p string) journal.Entry {
	p = b.throughApplied(e, p)
	r := e
	r.OldPath = p
	b.oldNames = append(b.oldNames, r)
	return journal.Entry{Path: p}
}

// throughApplied returns where p, a name that the rename e leaves on the
// peer, is there once the renames it applied after e in this run are
// done: a name below the old name of one is below its new name. The run
// deletes after its renames, so an old name left by a refused rename (mv
// d/f g, refused, then mv d e, applied) is deleted where the peer holds it
// by then (e/f); deleted at d/f, it found nothing, and the peer kept e/f
// for good (the stress test). Renames applied before e are not followed:
// what they moved is not what e left (mv d e; mkdir d; mv d f, the second
// refused: d is gone there, and e is the first rename's).
func (b *batch) throughApplied(e journal.Entry, p string) string {
	i := slices.IndexFunc(b.renames, func(r journal.Entry) bool { return r.Path == e.Path && r.Seq == e.Seq })
	if i < 0 {
		return p
	}
	return b.afterApplied(i+1, p)
}

// oldNamesFirst returns the deletions of old names that b made for renames
// it does not ask (oldNamesGone: their new names are gone here) that go
// to the peer before the renames it asks: each below the old name of one
// made after the name was left (which would carry it away), above the old
// name of none (which would find nothing to move), and where no rename
// made before it was left touches it (at, above or below either name of
// the rename: the peer holds it as it was left only once those are
// applied). Deleted after the renames, as other deletions are, such a
// name is deleted where they put it (oldNamesMovedOn), but not where the
// batch has made that name here anew: write a/f19; mkdir a/d22; swap c/d
// a/d22; swap a/b c; swap a/f19 a/d22 leaves c/d as a removal (its tree
// went on to names made here since, sent as content), and the swap of c
// took the peer's c/d, f4 in it, to a/b/d, a directory here again (a/d22
// went there through c/d); the peer kept a/b/d/f4 (the random operations
// minimizer). Deleted first, it goes from where the rename left it. The
// deletion stays in b.deletes too, and finds nothing after the renames.
func (b *batch) oldNamesFirst() []string {
	if len(b.renames) == 0 || len(b.oldNames) == 0 {
		return nil
	}
	touches := func(x journal.Entry, p string) bool {
		return atOrBelow(p, x.OldPath) || atOrBelow(x.OldPath, p) || atOrBelow(p, x.Path) || atOrBelow(x.Path, p)
	}
	var out []string
	for _, r := range b.oldNames {
		p := r.OldPath
		// A deletion of its own, or one covered by a directory the batch
		// deletes: that is deleted after the renames too, and a rename
		// that carries the name away moves it out of that directory
		// first (random seed 178: mv c/d/f4 a/m13; swap c/m11 c/d; rm
		// a/m13; rm c/d, the file c/d covering c/d/f4, and the peer
		// keeping c/m11/f4).
		ownAt := func(d journal.Entry) bool { return d.Seq == 0 && d.Path == p }
		if slices.Contains(out, p) || !slices.ContainsFunc(b.deletes, ownAt) && !slices.ContainsFunc(b.covered, ownAt) {
			continue
		}
		left := b.oldNameLeftAt(r)
		carried, held := false, false
		for _, x := range b.renames {
			if atOrBelow(x.OldPath, p) {
				held = true // it moves the name, or a name below it
				break
			}
			for _, c := range b.chained[x.Path] {
				held = held || renameOrder(c) < left && touches(c, p)
			}
			held = held || renameOrder(x) < left && touches(x, p)
			// One made before the name was left touches it: held.
			carried = carried || atOrBelow(p, x.OldPath)
		}
		if carried && !held {
			out = append(out, p)
		}
	}
	return out
}

// oldNameLeftAt is when r's rename left r.OldPath (r being one of
// b.oldNames): for a chain joined into r (chainRenames), whose names the
// batch deletes each (throughGone), the link that left that name.
func (b *batch) oldNameLeftAt(r journal.Entry) uint64 {
	for _, c := range b.chained[r.Path] {
		if c.OldPath == r.OldPath {
			return renameOrder(c)
		}
	}
	return renameOrder(r)
}

// oldNamesMovedOn moves the deletions of old names that b made for renames
// it does not ask (oldNamesGone: their new names are gone here) to where
// the renames the peer applied in this run, made after each such rename
// left its old name, put them: mv c/d/f4 m1; mv c x; rm m1 asks c -> x and
// deletes m1's old name c/d/f4, which the peer, once it applied the
// rename, holds at x/d/f4 (the run deletes after its renames); deleted at
// c/d/f4, it found nothing, and the peer kept x/d/f4 (the stress test,
// seed 23). Where a moved name exists here, the deletion stays as it was
// (rsync.Delete would refuse it). The rename's entry is confirmed once
// the moved name is deleted (b.oldNames).
func (b *batch) oldNamesMovedOn(rootfd int) {
	if len(b.applied) != len(b.renames) || len(b.oldNames) == 0 {
		return
	}
	asked := make(map[entryKey]bool, len(b.renames))
	made := make([]uint64, len(b.renames)) // when each rename was made
	for i, r := range b.renames {
		asked[keyOf(r)] = true
		made[i] = renameOrder(r)
		for _, c := range b.chained[r.Path] {
			made[i] = min(made[i], renameOrder(c))
		}
	}
	for i := range b.oldNames {
		r := &b.oldNames[i]
		if asked[keyOf(*r)] {
			continue // asked, and refused: throughApplied followed it
		}
		left := renameOrder(*r)
		from := slices.IndexFunc(made, func(m uint64) bool { return m > left })
		if from < 0 {
			continue
		}
		p := b.afterApplied(from, r.OldPath)
		var st unix.Stat_t
		if p == r.OldPath || !errors.Is(beneath.Lstat(rootfd, p, &st), unix.ENOENT) {
			continue
		}
		// Only a deletion of its own in the run: one covered by a deleted
		// directory's (b.covered) goes with it, and moved, the rename's
		// entry would wait for a deletion never made.
		moved := false
		for j := range b.deletes {
			if b.deletes[j].Seq == 0 && b.deletes[j].Path == r.OldPath {
				b.deletes[j].Path, moved = p, true
			}
		}
		if moved {
			if b.movedFrom == nil {
				b.movedFrom = make(map[string]string)
			}
			b.movedFrom[p] = r.OldPath
			r.OldPath = p
		}
	}
}

// movedDeleted returns, for each of deleted that oldNamesMovedOn moved,
// a deletion of the path it was made for (of sequence 0): what the batch
// covered below that path is confirmed with it (coveredBy).
func (b *batch) movedDeleted(deleted []journal.Entry) []journal.Entry {
	var out []journal.Entry
	for _, d := range deleted {
		if from, ok := b.movedFrom[d.Path]; ok && d.Seq == 0 {
			out = append(out, journal.Entry{Path: from})
		}
	}
	return out
}

// afterApplied returns where p is on the peer once the renames it applied
// from b.renames[from] on are done: at or below the old name of one, it
// is at or below its new name.
func (b *batch) afterApplied(from int, p string) string {
	if len(b.applied) != len(b.renames) {
		return p
	}
	for i := from; i < len(b.renames); i++ {
		a := b.renames[i]
		if !b.applied[i] {
			continue
		}
		if to, ok := renamedTo(a, p); ok {
			p = to
		}
	}
	return p
}

// maxOldTreeNames bounds the names oldTreeLeft reads of a renamed tree
// here; beyond, those not read may stay on the peer (logged).
const maxOldTreeNames = 100_000

// oldTreeLeft returns deletions (of sequence 0) for what the peer still
// holds of a renamed tree under the rename's old name, where the rename
// was not applied there (refused, or never asked: its new name is gone
// here) and the old name is a directory here again (mv d e; mkdir d, as
// mv build build.old; mkdir build does; a swap of two directories). The
// peer's old directory is then pushed with --dirs, which removes nothing
// below it, and the members ended apart for good. They are the names of
// the tree under the new name here and of gone's removals below it (gone
// from it since the rename), each taken under the old name, that nothing
// here holds: the top-most of each (--delete-missing-args takes a
// directory with its contents). A name that exists there here again goes
// as its own entry; one below a file here, with the file that replaces the
// peer's directory. Names the old tree lost before the rename went in
// their own deletions. Where the new name is gone here and the batch
// renames it on (a swap: mv d t; mv e d; mv t e), the tree is read where
// that rename put it. Each is recorded in b.oldNames (with the deletion
// as its old name), so that the rename is confirmed only once its
// deletions are. listed are the paths the batch lists already, which it
// extends.
func (b *batch) oldTreeLeft(rootfd int, e journal.Entry, gone []journal.Entry, listed map[string]bool) []journal.Entry {
	// The tree went on from a new name gone here with a rename of that
	// name (mv d t; mv e d; mv t e, a swap): followed along, through the
	// batch's renames or, where none is, one read but not in the batch
	// (it waits, or is behind it: the stress test's swap, whose last
	// rename waited for its old name, in flight).
	names := []string{e.Path}
	for n := e.Path; len(names) <= len(b.renames)+len(b.renamedOn); {
		var st unix.Stat_t
		if beneath.Lstat(rootfd, n, &st) == nil {
			break
		}
		if i := slices.IndexFunc(b.renames, func(r journal.Entry) bool { return r.OldPath == n }); i >= 0 {
			n = b.renames[i].Path
		} else if to, ok := b.renamedOn[n]; ok {
			n = to
		} else {
			break
		}
		names = append(names, n)
	}
	rels := make(map[string]bool)
	for _, name := range names {
		for _, g := range gone {
			if rel, ok := strings.CutPrefix(g.Path, name+"/"); ok {
				rels[rel] = true
			}
		}
	}
	if last := names[len(names)-1]; !treeNames(rootfd, last, maxOldTreeNames, func(rel string) { rels[rel] = true }) {
		b.unlisted = append(b.unlisted, fmt.Sprintf("%s: more than %d names below it; those not read may stay on the peer under %s", last, maxOldTreeNames, e.OldPath))
	}
	// And what the index still holds there, or the journal has pending:
	// a tree removed here whose removals are not in this batch (not read
	// yet, when the run is planned, or past its bounds).
	if b.namesBelow != nil {
		for _, name := range names {
			for _, p := range b.namesBelow(name) {
				if rel, ok := strings.CutPrefix(p, name+"/"); ok {
					rels[rel] = true
				}
			}
		}
	}
	ends := make(map[string]bool) // names missing here, or files here
	var out []journal.Entry
	for _, rel := range slices.Sorted(maps.Keys(rels)) { // a parent before the names below it
		if underAny(parent(rel), ends) {
			continue
		}
		p := e.OldPath + "/" + rel
		var st unix.Stat_t
		switch err := beneath.Lstat(rootfd, p, &st); {
		case errors.Is(err, unix.ENOENT):
			ends[rel] = true
			if listed[p] {
				continue
			}
			listed[p] = true
			out = append(out, b.deleteOldName(e, p))
		case err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR:
			ends[rel] = true
		}
	}
	return out
}

// treeNames calls f with the path, relative to dir, of every name below
// the directory dir (relative to rootfd), at most limit of them; it
// reports false when it stopped at the limit. What cannot be read is left
// out.
func treeNames(rootfd int, dir string, limit int, f func(rel string)) bool {
	fd, err := beneath.Open(rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	n := 0
	var walk func(fd int, rel string) bool
	walk = func(fd int, rel string) bool {
		d := os.NewFile(uintptr(fd), dir)
		defer d.Close()
		ents, _ := d.ReadDir(-1)
		for _, ent := range ents {
			if n >= limit {
				return false
			}
			n++
			name := ent.Name()
			if rel != "" {
				name = rel + "/" + name
			}
			f(name)
			if !ent.IsDir() {
				continue
			}
			cfd, err := unix.Openat(fd, ent.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			if !walk(cfd, name) {
				return false
			}
		}
		return true
	}
	return walk(fd, "")
}

// dirsAboveRenames returns the directories that b sends (made or changed
// here) and that hold a rename's new name, parents first.
func (b *batch) dirsAboveRenames() []string {
	if len(b.renames) == 0 {
		return nil
	}
	dirs := make(map[string]bool)
	for _, e := range b.sends {
		if _, notDir := b.state[e.Path]; !notDir {
			dirs[e.Path] = true
		}
	}
	// Not one at or below a name that a rename of the batch moves: made
	// before the renames, it is made where the peer's tree is then, and
	// the renames take it elsewhere (mv a/b t; mv c a/b; mv t c, then
	// mv a/b/d/f t2: a/b/d, sent with c's tree found at a/b, made in the
	// peer's old a/b, went with it to c, where it stayed; the sender's
	// random operations test). The renames bring such a directory there.
	moved := make(map[string]bool, 2*len(b.renames))
	for _, e := range b.renames {
		moved[e.Path], moved[e.OldPath] = true, true
	}
	var out []string
	seen := make(map[string]bool)
	for _, e := range b.renames {
		for d := parent(e.Path); d != ""; d = parent(d) {
			if dirs[d] && !seen[d] && !underAny(d, moved) {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(strings.Count(a, "/"), strings.Count(b, "/")) })
	return out
}

// send adds e, which exists here as st says, to b's sends (b is plan's:
// its state map is made).
func (b *batch) send(e journal.Entry, st *unix.Stat_t) {
	b.sends = append(b.sends, e)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		b.state[e.Path] = stateOf(st)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		b.bytes += st.Size
		if st.Nlink > 1 {
			b.linked = append(b.linked, linkedFile{path: e.Path, id: inode{dev: uint64(st.Dev), ino: uint64(st.Ino)}, size: st.Size})
		}
	}
}

// fileAbove returns the nearest parent of p that exists here and is not a
// directory, or "" if there is none (any more).
func fileAbove(rootfd int, p string) string {
	for d := parent(p); d != ""; d = parent(d) {
		var st unix.Stat_t
		if err := beneath.Lstat(rootfd, d, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return d // the parents above it are directories
		}
	}
	return ""
}

// confirmedUnderFiles are the underFile entries whose file above the run
// confirmed on the peer as itemized non-directory: whatever the peer held
// below it is gone there.
func (b *batch) confirmedUnderFiles(res rsync.Result) []journal.Entry {
	if len(b.underFile) == 0 {
		return nil
	}
	replaced := make(map[string]bool)
	for _, p := range res.Paths {
		if p.Outcome.Done() && !p.IsDir() {
			replaced[p.Path] = true
		}
	}
	var out []journal.Entry
	for _, e := range b.underFile {
		if replaced[b.fileAbove[e.Path]] {
			out = append(out, e)
		}
	}
	return out
}

// topMost splits removed paths into the top-most ones (to delete) and those
// below another removed path in the same batch (deleted with it).
// Of entries of one path, the one of the lowest Seq is kept: a deletion
// of an old name (sequence 0, oldNamesGone) covers an entry's own.
func topMost(gone []journal.Entry) (top, covered []journal.Entry) {
	return topMostBy(gone, func(e journal.Entry) string { return e.Path }, func(a, b journal.Entry) int { return cmp.Compare(a.Seq, b.Seq) })
}

// topMostBy splits xs, sorted in place by path and, of one path, by tie
// (nil: in any order), into those whose path lies below no other's (top)
// and the others (covered: below one of them, or the same path again: of
// one path, the first is kept).
func topMostBy[T any](xs []T, path func(T) string, tie func(a, b T) int) (top, covered []T) {
	// A parent sorts before its children ("a" < "a/..."), though not
	// always right before them ("a-b" sorts between "a" and "a/b").
	slices.SortFunc(xs, func(a, b T) int {
		if c := strings.Compare(path(a), path(b)); c != 0 || tie == nil {
			return c
		}
		return tie(a, b)
	})
	tops := make(map[string]bool)
	for _, x := range xs {
		if underAny(path(x), tops) {
			covered = append(covered, x)
			continue
		}
		tops[path(x)] = true
		top = append(top, x)
	}
	return top, covered
}

// underAny reports whether p or one of its parents is in set.
func underAny[V any](p string, set map[string]V) bool {
	for d := p; d != ""; d = parent(d) {
		if _, ok := set[d]; ok {
			return true
		}
	}
	return false
}

// inflight is the set of paths in runs to one peer. A path overlaps an
// in-flight one when it is the same, below it, or above it (a directory
// operation covers its ancestors and descendants); each test costs the
// path's depth.
type inflight struct {
	paths map[string]int // path -> runs holding it
	below map[string]int // directory -> in-flight paths below it
}

func newInflight() *inflight {
	return &inflight{paths: make(map[string]int), below: make(map[string]int)}
}

func (f *inflight) overlaps(p string) bool {
	if f.paths[p] > 0 || f.below[p] > 0 {
		return true
	}
	for d := parent(p); d != ""; d = parent(d) {
		if f.paths[d] > 0 {
			return true
		}
	}
	return false
}

func (f *inflight) add(p string) {
	f.paths[p]++
	for d := parent(p); d != ""; d = parent(d) {
		f.below[d]++
	}
}

func (f *inflight) remove(p string) {
	if f.paths[p]--; f.paths[p] <= 0 {
		delete(f.paths, p)
	}
	for d := parent(p); d != ""; d = parent(d) {
		if f.below[d]--; f.below[d] <= 0 {
			delete(f.below, d)
		}
	}
}

func (f *inflight) len() int { return len(f.paths) }

// parent returns the parent of a root-relative path, "" for a top-level one.
func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// forwardedRenames are b's renames to a swap's temporary name (swapTemps):
// no push lists their new name, gone here. Applied, the swap's last
// rename moved them on, and its push checks them; refused, their old
// name is deleted as for any (notApplied), or its own entry sends it.
func (b *batch) forwardedRenames() []journal.Entry {
	if len(b.forwarded) == 0 {
		return nil
	}
	var out []journal.Entry
	for _, e := range b.renames {
		if _, ok := b.forwarded[e.Path]; ok {
			out = append(out, e)
		}
	}
	return out
}
