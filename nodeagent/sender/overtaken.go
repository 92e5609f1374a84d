package sender

import (
	"sync"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

// overtakenGrace is how long after a run has pushed a rename may still be
// logged that happened before rsync read the run's files: the source
// reads events late on a busy host, and the journal commits them after
// that (see overtaken).
const overtakenGrace = time.Second

// maxOvertaken bounds the paths that overtaken remembers for one peer
// (the oldest runs' are forgotten first).
const maxOvertaken = 1 << 16

// overtaken remembers the paths of runs that pushed while renames were
// being made here that the peer had not applied yet, and tells a later
// replay where those renames took them on the peer, so that the paths
// there are brought to their state here.
//
// rsync reads a run's files by name while it sends them: a rename made
// here after the run was planned and before rsync read the file (a swap
// of two directories: mv d t; mv e d; mv t e) has the run carry the
// renamed object under its old path, into the peer's tree that still
// has the rename ahead of it. The rename, replayed once the run is over,
// then takes that copy along to where nothing of it is here. The run's
// re-check sends the path itself again, but the copy the rename moved
// stayed on the peer for good: the stress test, seed 7, the forty-seventh
// session, a file of the swapped d sent into the peer's e, which then
// held it under the swapped-in name on that peer alone.
//
// A run's paths count for the renames logged after it read the rename
// log (it replayed the older ones before it pushed) and up to
// overtakenGrace after it pushed. The applied ones of those take them on
// (a removal drops them); the names they end at are journaled again for
// the peer (journal.Journal.Again): the sender sends them where they are
// here and deletes them where they are not. A path that changed while
// its run sent it goes as written (change.Write): rsync took its size and
// mtime from one object and may have read another's content, so only
// the content tells the copy from what is here. The others are compared
// by rsync's quick check (change.Attrib), so that nothing is sent where
// the peer's copy is right already: a directory renamed just after its
// files were sent costs a quick check of their new names, which the scan
// of the new tree journals anyway.
type overtaken struct {
	mu   sync.Mutex
	runs []*overtakenRun
	n    int // paths in runs
	// asked is the last rename replayed: two runs that read the log at
	// once both replay it (the peer applies nothing twice), and the
	// second must not take the paths on again.
	asked uint64
}

type overtakenRun struct {
	paths []string
	op    change.Op // what the names the renames take paths to go as
	// after: renames logged after this sequence number were not
	// replayed before the run pushed.
	after uint64
	// until: the journal's sequence number overtakenGrace after the run
	// pushed, 0 until then; no rename logged past it counts.
	until uint64
}

// add remembers paths, pushed by a run that replayed the renames logged
// up to after, their new names to go as op; seq reads the journal's
// sequence number (once, grace after now). paths is the overtaken's from
// then on.
func (o *overtaken) add(paths []string, op change.Op, after uint64, grace time.Duration, seq func() uint64) {
	if len(paths) == 0 {
		return
	}
	r := &overtakenRun{paths: paths, op: op, after: after}
	o.mu.Lock()
	o.runs = append(o.runs, r)
	o.n += len(paths)
	for o.n > maxOvertaken && len(o.runs) > 1 {
		o.n -= len(o.runs[0].paths)
		o.runs[0] = nil
		o.runs = o.runs[1:]
	}
	o.mu.Unlock()
	time.AfterFunc(grace, func() {
		s := seq()
		o.mu.Lock()
		r.until = s
		o.mu.Unlock()
	})
}

// replayed takes the renames of a replay, in their order, with whether
// the peer applied each, and the last sequence number it asked for. It
// returns the names that the applied renames counting for a remembered
// run (see overtaken) took its paths to, by what they go as, and forgets
// the runs whose renames have all been asked.
func (o *overtaken) replayed(log []journal.LoggedRename, applied []bool, last uint64) map[change.Op][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out map[change.Op][]string
	keep := o.runs[:0]
	var counting []journal.LoggedRename
	for _, r := range o.runs {
		// The renames that count for r, in order: most runs have none,
		// and their paths are not looked at.
		counting = counting[:0]
		for k, lr := range log {
			if applied[k] && lr.Seq > o.asked && lr.Seq > r.after && (r.until == 0 || lr.Seq <= r.until) {
				counting = append(counting, lr)
			}
		}
		for i, p := range r.paths {
			if len(counting) == 0 {
				break // nothing moves r's paths
			}
			at := p
			for _, lr := range counting {
				if !atOrBelow(at, lr.Old) {
					continue
				}
				if lr.New == "" {
					at = "" // removed there: nothing of it is left
					break
				}
				at = lr.New + at[len(lr.Old):]
			}
			if at != p {
				r.paths[i] = at
				if at != "" {
					if out == nil {
						out = make(map[change.Op][]string)
					}
					out[r.op] = append(out[r.op], at)
				}
			}
		}
		if r.until != 0 && last >= r.until {
			o.n -= len(r.paths)
			continue
		}
		keep = append(keep, r)
	}
	clear(o.runs[len(keep):])
	o.runs = keep
	o.asked = max(o.asked, last)
	return out
}
