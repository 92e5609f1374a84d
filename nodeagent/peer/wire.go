package peer

import (
	"errors"
	"fmt"
)

// PathsRequest announces or confirms the paths of one run. Paths are bytes
// (base64 in JSON) so that names that are not UTF-8 arrive exactly.
type PathsRequest struct {
	Run string `json:"run"`
	// Boot, in an announcement, is the sender's client's life
	// (Client.Boot): its runs announced with another one are over, and
	// the receiver settles them (receiver.Receiver.Incoming). Omitted by
	// a sender that predates it.
	Boot  string   `json:"boot,omitempty"`
	Paths [][]byte `json:"paths"`
	// Over, in an announcement, are runs of the same life that the
	// sender announced to this receiver and that ended unconfirmed: their
	// confirmation failed, or their announcement or replay did (it may
	// have arrived all the same). Their rsync clients are gone. The
	// receiver settles them as it does the runs of an earlier life
	// (receiver.Receiver.Incoming). Each is named once, in the first
	// announcement that succeeds after it ended. Omitted by a sender that
	// predates it, and when there are none.
	Over []string `json:"over,omitempty"`
	// Replayed, in an announcement, is how far the sender had replayed
	// each member's rename log when it announced the run (its receiver's
	// replay positions): a path of the run below a name that the
	// receiver renamed (or replayed a rename of) later in a log than the
	// sender had replayed it was listed before that rename there, and
	// the receiver moves what lands under the old name on as the rename
	// did. Empty ([]) from a sender that replayed nothing yet; null, or
	// omitted by a sender that predates it: nothing is moved.
	Replayed []ReplayPos `json:"replayed"`
	// Deleted are the paths a confirmation says were deleted (Paths then
	// are those sent).
	Deleted [][]byte `json:"deleted,omitempty"`
	// States, in a confirmation, are what the sender sent of each of
	// Paths, in order (empty: not known).
	States []FileState `json:"states,omitempty"`
}

// HelloRequest tells a receiver that the sender's client started a life
// (Client.Boot), before it has anything to announce: the sender's runs
// announced with another boot are over, and the receiver settles them
// at once, not at the sender's next run, which may not come for long (a
// member that restarted and then writes nothing more).
type HelloRequest struct {
	Boot string `json:"boot"`
}

// FileState is what a sender sent of a regular file or a symlink: the
// receiver records the path as received only if it still is that (a local
// write, chmod, chown or new link between the run and its confirmation is
// the receiver's own change). Regular and Symlink false: not known, not
// checked.
type FileState struct {
	Regular bool  `json:"regular,omitempty"`
	Size    int64 `json:"size,omitempty"`
	MtimeNs int64 `json:"mtimeNs,omitempty"`
	// Mode is a regular file's st_mode (type and permission bits), UID and
	// GID its numeric owner; Mode 0: not given (a sender before them).
	Mode uint32 `json:"mode,omitempty"`
	UID  uint32 `json:"uid,omitempty"`
	GID  uint32 `json:"gid,omitempty"`
	// Symlink: a symbolic link to Link (bytes, base64 in JSON).
	Symlink bool   `json:"symlink,omitempty"`
	Link    []byte `json:"link,omitempty"`
	// Dir: not a listed path but a directory above one that rsync made or
	// changed there (rsync.Result.Implied), now as the sender's: recorded
	// as it is where it is a directory, and never taken for a change of
	// the receiver's own. A receiver before it records it as a path sent.
	Dir bool `json:"dir,omitempty"`
	// ForDelete (with Dir): a directory rsync made there only for a
	// removal: to reach a path a delete removed below it (rsync.Result.Made
	// of a Delete), or as a directory pushed for its times after a removal
	// or rename took a name out of it. The receiver lacked it, having
	// renamed or removed it since the sender last looked. The receiver
	// removes it again where it is still an empty directory it does not
	// hold. A receiver before it records it as Dir says, and keeps it.
	ForDelete bool `json:"forDelete,omitempty"`
	// Unconfirmed: a path rsync itemized that the run did not confirm (it
	// broke off): the receiver records it as it is, and where it is gone
	// and was never held there, it was never put there either, and is no
	// change of the receiver's. A receiver before it takes it for a path
	// sent without a state.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// Unspoken: a path of a run cut short (a signal, a lost connection)
	// that rsync never spoke of: it may have made it there all the same (a
	// hard link, a directory, whose line was lost with the connection).
	// The receiver records it as it is where it exists, and leaves it
	// alone where it does not (that is no removal of the run's, nor one
	// that naming it shows: a change of the receiver's own has its own
	// event). A receiver before it takes it for a path sent without a
	// state.
	Unspoken bool `json:"unspoken,omitempty"`
	// Vanished: a path listed as a file that vanished at the sender before
	// rsync read it, without a line of its own: where the receiver held a
	// symlink or an empty directory there, rsync deleted it for the file
	// without a word. The receiver records it gone where it is gone and
	// the index held it as a directory or symlink, and leaves it alone
	// otherwise (a file there is untouched by such a run; a change of the
	// receiver's own has its own event). A receiver before it takes it
	// for a path sent without a state.
	Vanished bool `json:"vanished,omitempty"`
	// Replaced: not a listed path but a parent of listed ones that rsync
	// read as a file or a symlink and sent so (rsync.Result.NotDirs,
	// Unmade): a directory swapped with a file while rsync read the list.
	// The receiver's rsync deleted its directory there with everything in
	// it, and put the file there or stopped before it did. Whatever the
	// path holds now, there or gone, is the run's: recorded as it is. A
	// receiver before it takes it for a path sent without a state.
	Replaced bool `json:"replaced,omitempty"`
}

func newPathsRequest(run string, paths []string) PathsRequest {
	return PathsRequest{Run: run, Paths: toBytes(paths)}
}

func (r PathsRequest) paths() []string { return toStrings(r.Paths) }

func toStrings(bs [][]byte) []string {
	ps := make([]string, len(bs))
	for i, p := range bs {
		ps[i] = string(p)
	}
	return ps
}

func toBytes(ps []string) [][]byte {
	bs := make([][]byte, len(ps))
	for i, p := range ps {
		bs[i] = []byte(p)
	}
	return bs
}

// Rename asks the receiver to rename Old to New locally: it does so only
// when its Old is the file the sender had (same size and mtime) and New
// does not exist, so that no content is lost; rsync then verifies New.
type Rename struct {
	Old     []byte `json:"old"`
	New     []byte `json:"new"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtimeNs"`
	Dir     bool   `json:"dir"`
	// After are the indices of earlier renames in the same request that
	// this one follows from: it is applied only if each of them was. Its
	// old name is, or lies below, one of theirs or their new name: once
	// one of those was refused, the peer's object there is not the one the
	// sender renamed (a swap refused, then the directory it put in place
	// renamed on, moved the peer's old tree there instead, for good).
	// Omitted when empty; a receiver that predates it applies the rename
	// as before.
	After []int `json:"after,omitempty"`
	// MakeParents makes the new name's missing directories first (a
	// replayed rename log: the writer had them when it renamed, and the
	// path entries bring their attributes).
	MakeParents bool `json:"makeParents,omitempty"`
	// AsHeld applies a file's rename where this member's old file is as
	// its index holds it (not changed here since it was last recorded),
	// whatever Size and MtimeNs say: the writer may have written it
	// before it renamed it, and the path entries bring the new content.
	AsHeld bool `json:"asHeld,omitempty"`
	// Remove removes Old (a tree: all of it) instead; New is empty. Dir,
	// Size and MtimeNs then say what the sender removed (the index's
	// record of it: a directory, or a file's or symlink's size and
	// mtime; all zero where not known, and from a sender that predates
	// them). A receiver with a change of its own pending at or below Old
	// keeps what it holds there unless it is what the sender removed
	// (RenameResult.Newer).
	Remove bool `json:"remove,omitempty"`
	// Seq is the rename's sequence number in the sender's journal
	// (ReplayRequest.Journal), for a replay: one at or below the last the
	// receiver applied from that journal was applied before, and is not
	// applied again.
	Seq uint64 `json:"seq,omitempty"`
}

// ReplayPos is a member's replay position in another member's rename
// log: the journal (ReplayRequest.Journal) and the last sequence number
// of it that the member replayed (applied or refused).
type ReplayPos struct {
	// Member is the node whose rename log it is.
	Member  string `json:"member"`
	Journal string `json:"journal"`
	Seq     uint64 `json:"seq"`
}

// ReplayRequest carries a member's logged renames and removals, in the
// order they were made there, for the receiver to replay (each with its
// Seq, increasing). The receiver keeps, per member, the journal and the
// last sequence number it replayed in the commit that records them, so
// that a request sent again (the sender stopped between the receiver's
// answer and its own record of it) applies nothing twice: a swap replayed
// twice would undo itself.
type ReplayRequest struct {
	// Journal identifies the sender's journal (journal.Journal.ID):
	// another one (a member whose state directory was made anew) counts
	// its sequence numbers from the start again.
	Journal string `json:"journal"`
	// Run is the id of the sender's run whose announcement (Incoming)
	// carries the renames' names, and Live the ids of its other runs to
	// this receiver that are still under way. What the sender's other
	// runs announced, and never confirmed, left at those names is the
	// sender's: they died with it, or it gave up on them
	// (receiver.Receiver.Replay). Omitted by a sender that predates them:
	// the receiver compares those names with its index alone, as before.
	Run     string   `json:"run,omitempty"`
	Live    []string `json:"live,omitempty"`
	Renames []Rename `json:"renames"`
}

// Check reports what is wrong with a replay request: no journal, or
// sequence numbers that are not all set and increasing.
func (q ReplayRequest) Check() error {
	if q.Journal == "" {
		return errors.New("replay: no journal")
	}
	var last uint64
	for i, r := range q.Renames {
		if r.Seq <= last {
			return fmt.Errorf("replay: rename %d has sequence number %d, after %d: they must increase from 1", i, r.Seq, last)
		}
		last = r.Seq
	}
	return nil
}

// RenameResult says what happened to one rename.
type RenameResult struct {
	Applied bool   `json:"applied"`
	Reason  string `json:"reason,omitempty"`
	// Newer, on a removal refused: the receiver holds at Old a version
	// that the sender never had, a change of its own not sent yet (or,
	// for a directory, such a file or symlink below it). The sender must
	// not delete the path there by its path entry either: modify beats
	// delete, and the receiver's version comes to the sender by content,
	// as that change goes out. A receiver that predates it never says so,
	// and the path entry deletes the path as before.
	Newer bool `json:"newer,omitempty"`
}

// RenameResponse holds one result per requested rename.
type RenameResponse struct {
	Results []RenameResult `json:"results"`
	// Verify are names where the applied renames took what the sender's
	// runs that are over, and were never confirmed, had put here
	// (receiver.Receiver.Replay): such a run may have pushed an object
	// that a rename not yet applied here had already moved on the sender,
	// and the rename took this member's copy on to where the sender has
	// nothing of it. The sender brings each to its own state there (sends
	// it, or deletes it where it has none).
	Verify [][]byte `json:"verify,omitempty"`
}

// TreeRequest asks a member for the tree it holds (the anti-entropy
// compare, package antientropy): Digest is the asker's own tree's digest,
// which the member answers with its digest alone when its tree has the
// same (TreeResponse).
type TreeRequest struct {
	Digest string `json:"digest"`
}

// TreeResponse is a member's tree. Quiet false: the member is not quiet
// (something pending, a run or a replay under way, a change within its
// settle time, or a path its index does not hold as it is): nothing else
// is given, and the asker asks again later. Otherwise Digest is its tree's
// digest, and Entries the tree, every path of it, unless Digest is the
// asker's.
type TreeResponse struct {
	Quiet bool `json:"quiet"`
	// Reason says why the member is not quiet, for logs.
	Reason  string      `json:"reason,omitempty"`
	Digest  string      `json:"digest,omitempty"`
	Entries []TreeEntry `json:"entries,omitempty"`
	// Peers are the members this one compares with and sends to, and
	// KeepDeletes whether it keeps what a member removed (spec.deletes:
	// Keep). An asker leaves a path it would send a third member to the
	// lowest-named member that holds the path alike and lists that member
	// here (antientropy.Comparer), so that a member joining empty gets
	// each path once, not once from every member. Left empty (an older
	// agent), nothing is left to this member.
	Peers       []string `json:"peers,omitempty"`
	KeepDeletes bool     `json:"keepDeletes,omitempty"`
}

// TreeEntry is one path of a member's tree as its index holds it (and,
// for a directory or a symlink, as it is on disk: the index keeps no
// directory times nor link targets). The names are short: a tree of
// 100,000 paths is sent whole.
type TreeEntry struct {
	// Path is relative to the data root (bytes: base64 in JSON, names
	// that are not UTF-8 arrive exactly).
	Path []byte `json:"p"`
	// Mode is Go's fs.FileMode (type and permission bits), the same
	// numbers on every system.
	Mode    uint32 `json:"m"`
	Size    int64  `json:"s,omitempty"`
	MtimeNs int64  `json:"t"`
	UID     uint32 `json:"u,omitempty"`
	GID     uint32 `json:"g,omitempty"`
	// Link is a symlink's target (bytes).
	Link []byte `json:"l,omitempty"`
}
