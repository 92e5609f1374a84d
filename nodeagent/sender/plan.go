// Package sender pushes one group's journaled changes to one peer: it has
// the peer replay the renames made here, in their order (the rename log),
// takes the oldest pending entries that are not already in flight, sorts
// them into sends and deletes by what is on disk now, runs them as batched
// rsync runs (at least two at a time, so that a large file does not hold
// back small ones), confirms each path from rsync's itemized output, and
// removes from the journal only what was confirmed and not changed since.
package sender

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// batch is the work of one run.
type batch struct {
	// notRenamed are the new names of renames the peer did not apply
	// (Sender.replay): their content goes as any send's, checked by
	// content where rsync's quick check finds them unchanged.
	notRenamed map[string]bool
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
	// inFlight are the paths the batch put in flight (eachPath, when it
	// was taken), which Sender.finish takes out again: kept, as a run
	// may change its lists (addLinks, settleUnderFile), and a path left in
	// flight holds every later entry at or above it for good (the stress
	// test, seed 32).
	inFlight []string
	// waiting are entries left out of the batch, to be planned again in a
	// moment (Sender.wait): their old name, or the file above them, is
	// in flight to the peer in another run, or not yet settled there.
	waiting []journal.Entry
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
	// linkIDs is the file each of links is another name of (addLinks).
	linkIDs map[string]inode
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

// linkMates returns the other names, as planned (linked, links), of the
// files among changed that had other names, and marks changed the names
// links lists (not journal entries) that are another file now (their own
// change is journaled by the detector). rsync --hard-links sends a group of
// names as one inode, its content read through one of them (the last of
// the list, with rsync 3.5.0): when that name became another file during
// the run (written anew
// and renamed over, as editors save), the peer got the new file's content
// under every name of the group, while here the others still hold the old
// one. Confirmed with their planned state, they read on the peer as its
// own changes, went to every member, and the writer took them for crossing
// writes and lost its own (the stress test, seed 34, the forty-eighth
// session: D4/m3 written anew while a run sent m3, #hash1 and new\nline2,
// one file when planned). The mates go again, and the peer records what it
// holds meanwhile (no state). They did not change here: not held as
// changed (Sender.holdChanged waits for a change of their own).
func (b *batch) linkMates(rootfd int, changed map[string]bool) (_ map[string]bool, mates []string) {
	if len(b.linked) == 0 {
		return changed, nil
	}
	ids := make(map[inode]bool)
	for _, f := range b.linked {
		if changed[f.path] {
			ids[f.id] = true
		}
	}
	for _, name := range b.links {
		id := b.linkIDs[name]
		var st unix.Stat_t
		if beneath.Lstat(rootfd, name, &st) != nil || uint64(st.Dev) != id.dev || uint64(st.Ino) != id.ino {
			if changed == nil {
				changed = make(map[string]bool)
			}
			changed[name] = true
		}
		if changed[name] {
			ids[id] = true
		}
	}
	if len(ids) == 0 {
		return changed, nil
	}
	for _, f := range b.linked {
		if ids[f.id] && !changed[f.path] {
			mates = append(mates, f.path)
		}
	}
	for _, name := range b.links {
		if ids[b.linkIDs[name]] && !changed[name] {
			mates = append(mates, name)
		}
	}
	return changed, mates
}

// skewedBy returns a file among changed (the sent paths that changed while
// the run sent them) that had other names in the run's list when planned,
// or has other names now; "" when none did. rsync's file list then may
// have handed the peer other attributes than this member's for any path
// of the run, without a word: the list sends a file's mtime (in seconds),
// mode, owner and group only where they differ from the entry before it,
// and a hard link's entry, abbreviated to the index of the first name of
// its inode, sets the receiver's "entry before" to that first name's
// values while the sender's is what it read for the link itself
// (flist.c, send_file_entry and recv_file_entry, rsync 3.5.0). When the
// file changed between rsync's lstat of the two names (touch, chmod, a
// write), the two sides differ from there on: each later entry that
// repeats the sender's value gets the first name's on the peer. Ours:
// twenty files whose mtimes shared a second, listed after two names of a
// file touched meanwhile, got the seconds of its old mtime and kept their
// own nanoseconds, in 38 rsync runs of 200; a chmod did the same to their
// modes in 35 of 200. The peer then took them for its own changes and
// sent them to every member, the writer too (the stress test, seed 162,
// the fifty-first session).
func (b *batch) skewedBy(rootfd int, changed map[string]bool) string {
	if len(changed) == 0 {
		return ""
	}
	for _, f := range b.linked {
		if changed[f.path] {
			return f.path
		}
	}
	for _, name := range b.links {
		if changed[name] {
			return name
		}
	}
	// Made another name of a file during the run (ln), or a number
	// freed and taken again: rsync matches names by device and inode.
	for _, p := range slices.Sorted(maps.Keys(changed)) {
		var st unix.Stat_t
		if beneath.Lstat(rootfd, p, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			return p
		}
	}
	return ""
}

// withEvery returns mates with every path of lists added that is neither
// among them nor changed, once each.
func withEvery(mates []string, changed map[string]bool, lists ...[]string) []string {
	in := make(map[string]bool, len(mates))
	for _, p := range mates {
		in[p] = true
	}
	for _, l := range lists {
		for _, p := range l {
			if !in[p] && !changed[p] {
				in[p] = true
				mates = append(mates, p)
			}
		}
	}
	return mates
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

// eachPath calls f for every path the batch puts in flight: its entries
// and the other names of its linked files.
func (b *batch) eachPath(f func(string)) {
	b.each(func(e journal.Entry) { f(e.Path) })
	for _, p := range b.links {
		f(p)
	}
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
	return slices.Concat(b.sends, b.deletes, b.covered, b.underFile, b.replacedBefore, b.skipped)
}

// each calls f for every entry of entries(), without collecting them.
func (b *batch) each(f func(journal.Entry)) {
	for _, es := range [][]journal.Entry{b.sends, b.deletes, b.covered, b.underFile, b.replacedBefore, b.skipped} {
		for _, e := range es {
			f(e)
		}
	}
}

func (b *batch) empty() bool {
	return len(b.sends)+len(b.deletes)+len(b.covered)+len(b.underFile)+len(b.replacedBefore)+len(b.skipped) == 0
}

// plan sorts entries by what is on disk now (lstat beneath rootfd): a path
// that exists is sent, one that does not is deleted, once, at its top-most
// removed directory. Renames are not planned here: the peer replays them
// from the rename log before the run (Sender.replay), and each rename's
// entry is a path to bring to its state here like any other (asPaths).
func plan(rootfd int, entries []journal.Entry) batch {
	return planBy(rootfd, entries, func(e journal.Entry, st *unix.Stat_t) error {
		return beneath.Lstat(rootfd, e.Path, st)
	})
}

// planBy is plan with lstat as its look at each entry's path (Lstats.plan
// shares them among a group's senders).
func planBy(rootfd int, entries []journal.Entry, lstat func(journal.Entry, *unix.Stat_t) error) batch {
	// Sized up front: a burst's batch would grow them by doubling.
	b := batch{sends: make([]journal.Entry, 0, len(entries)), state: make(map[string]fileState, len(entries))}
	var gone []journal.Entry
	for _, e := range entries {
		if e.Path == "." {
			// Never listed: rsync's --dirs copies the contents of a listed
			// "." (the reserved directory among them). The root's own
			// attributes are each host's.
			b.skipped = append(b.skipped, e)
			continue
		}
		var st unix.Stat_t
		err := lstat(e, &st)
		switch {
		case err == nil:
			b.send(e, &st)
		case errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT):
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
			// it again if it becomes sendable.
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
	b.deletes, b.covered = topMost(gone)
	return b
}

// atOrBelow reports whether p is dir or lies below it.
func atOrBelow(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir) && p[len(dir)] == '/'
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
func topMost(gone []journal.Entry) (top, covered []journal.Entry) {
	return topMostBy(gone, func(e journal.Entry) string { return e.Path })
}

// topMostBy splits xs, sorted in place by path, into those whose path lies
// below no other's (top) and the others (covered: below one of them, or
// the same path again: of one path, the first is kept).
func topMostBy[T any](xs []T, path func(T) string) (top, covered []T) {
	// A parent sorts before its children ("a" < "a/..."), though not
	// always right before them ("a-b" sorts between "a" and "a/b").
	slices.SortFunc(xs, func(a, b T) int { return strings.Compare(path(a), path(b)) })
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

func (f *inflight) len() int {
	return len(f.paths)
}

// parent returns the parent of a root-relative path, "" for a top-level one.
func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}
