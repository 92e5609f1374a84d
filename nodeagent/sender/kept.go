package sender

import (
	"sync"

	"github.com/jailsync/jailsync/nodeagent/journal"
)

// maxKept bounds the removals a sender remembers as kept by its peer
// (keptThere); past it, the path entry of a removal the peer refused
// deletes the path there, as before.
const maxKept = 100_000

// keptThere are the removals the peer refused to replay because it holds a
// version of the path that this member never had (peer.RenameResult.Newer),
// each with its sequence number in the rename log. The path entry of such
// a removal (its Seq at or below that number: no change of the path here
// since) is done without deleting the path there: modify beats delete, and
// the peer's version comes here by content. Left to the path entry, rsync
// (--delete-missing-args) deleted it all the same, and the peer's write
// was lost on every member (the sixty-fourth session's stress test, Kill9
// seed 282; TestStandalone_RemovalCrossingAWriteKeepsTheWrite). A removal
// is replayed before its path entry deletes it (the run replays the log
// first), in the same run or an earlier one, so it is remembered here,
// across runs, for the runs that hold its entry already; the entry itself
// is done at once, durably, when the peer answers (Sender.doneKept).
type keptThere struct {
	mu  sync.Mutex
	seq map[string]uint64
}

// add remembers the removal of path, logged at seq, as refused by the peer.
func (k *keptThere) add(path string, seq uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seq == nil {
		k.seq = make(map[string]uint64)
	}
	if _, ok := k.seq[path]; !ok && len(k.seq) >= maxKept {
		return
	}
	k.seq[path] = max(k.seq[path], seq)
}

// take returns the entries of deletes whose removal the peer refused as
// newer there, and the others, and forgets each path it finds: the entry
// of its removal, or a later one (a change here since, which goes as it is).
func (k *keptThere) take(deletes []journal.Entry) (kept, others []journal.Entry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.seq) == 0 {
		return nil, deletes
	}
	for _, e := range deletes {
		seq, ok := k.seq[e.Path]
		if ok {
			delete(k.seq, e.Path)
		}
		if ok && e.Seq <= seq {
			kept = append(kept, e)
		} else {
			others = append(others, e)
		}
	}
	return kept, others
}
