package auditpipe

import (
	"strings"

	"github.com/jailsync/jailsync/nodeagent/bsm"
	"github.com/jailsync/jailsync/nodeagent/change"
)

// DefaultMaxOpen bounds how many files opened for writing are tracked
// until their close. Past it the oldest is forgotten: its change was sent
// unfinished at the open and is reported again after the maximum hold time.
const DefaultMaxOpen = 65536

// Translator turns decoded audit records into changes under one root and
// ties each open for writing to its close, so that a file is ready the
// moment its writer closed it:
//
//   - an open for writing is reported unfinished and remembered by the
//     process and the descriptor it returned (the only key a created file
//     has: its record carries no vnode);
//   - a close of that descriptor by that process reports it finished;
//   - where no close record comes (exit, exec, dup2 and close_range close
//     implicitly), Reap reports the files of processes that are gone.
//
// A Translator is not safe for concurrent use.
type Translator struct {
	// Root is the data root (absolute, symlinks resolved).
	Root string
	// OwnAUID is the audit user id the agent's rsync receiver runs under;
	// its changes are marked Echo. bsm.AUIDUnset when there is none.
	OwnAUID uint32
	// OwnPID, when not nil, reports whether a process is the agent's own
	// (it applies peers' renames and removals under the operator's audit
	// user id); its changes are marked Echo too.
	OwnPID func(pid int32) bool
	// MaxOpen bounds the tracked opens; DefaultMaxOpen when 0.
	MaxOpen int

	open  map[openKey]*openFile
	order []tracked // tracking order, for eviction; stale entries skipped
	seq   uint64
}

type tracked struct {
	k   openKey
	seq uint64
}

type openKey struct {
	pid uint32
	fd  int32
}

type openFile struct {
	path string
	echo bool
	seq  uint64
}

// Translate reports the change that rec means, if any, through emit.
func (t *Translator) Translate(rec *bsm.Record, emit func(change.Change)) {
	fc, ok := rec.Change(t.Root)
	if !ok {
		return
	}
	c := fc.Change
	c.Echo = t.OwnAUID != bsm.AUIDUnset && fc.AUID == t.OwnAUID ||
		t.OwnPID != nil && t.OwnPID(int32(fc.PID))
	switch {
	case fc.Target == bsm.TargetUnknown:
		// The kernel could not build the path: something changed, we do
		// not know where.
		emit(change.Change{Path: ".", Op: change.Rescan, Time: c.Time})
	case fc.Close:
		if f, ok := t.forget(openKey{fc.PID, fc.FD}); ok && fc.HasFD {
			emit(change.Change{Path: f.path, Op: change.Write, Finished: true, Echo: f.echo, Time: c.Time})
		}
	case fc.Target == bsm.TargetFD:
		// fchmod, fchown, ftruncate, fsync: only a tracked descriptor
		// names the file; others are left to the next scan.
		if f, ok := t.lookup(openKey{fc.PID, fc.FD}); ok && fc.HasFD {
			emit(change.Change{Path: f.path, Op: c.Op, Finished: false, Echo: f.echo, Time: c.Time})
		}
	default:
		if c.Op.Has(change.Rename) && c.OldPath != "" {
			t.renamed(c.OldPath, c.Path)
		}
		if !c.Finished && fc.HasFD {
			t.track(openKey{fc.PID, fc.FD}, &openFile{path: c.Path, echo: c.Echo})
		}
		emit(c)
	}
}

// renamed moves the tracked opens of old (a file, or the files below a
// directory) to new: a file renamed while its writer keeps writing (a log
// rotated by rename) is closed under its new name, and its close must
// report that name, or what was written after the rename is never sent.
func (t *Translator) renamed(old, new string) {
	below := old + "/"
	for _, f := range t.open {
		if f.path == old {
			f.path = new
		} else if rest, ok := strings.CutPrefix(f.path, below); ok {
			f.path = new + "/" + rest
		}
	}
}

// Reap reports as finished the files whose process is gone (alive says),
// closed implicitly without a close record.
func (t *Translator) Reap(alive func(pid uint32) bool, emit func(change.Change)) {
	kept := t.order[:0]
	for _, tr := range t.order {
		f, ok := t.open[tr.k]
		if !ok || f.seq != tr.seq {
			continue
		}
		if alive(tr.k.pid) {
			kept = append(kept, tr)
			continue
		}
		delete(t.open, tr.k)
		emit(change.Change{Path: f.path, Op: change.Write, Finished: true, Echo: f.echo})
	}
	t.order = kept
}

// Open is the number of tracked files opened for writing.
func (t *Translator) Open() int { return len(t.open) }

func (t *Translator) track(k openKey, f *openFile) {
	if t.open == nil {
		t.open = make(map[openKey]*openFile)
	}
	t.seq++
	f.seq = t.seq
	t.open[k] = f
	t.order = append(t.order, tracked{k, f.seq})
	maxOpen := t.MaxOpen
	if maxOpen <= 0 {
		maxOpen = DefaultMaxOpen
	}
	for len(t.open) > maxOpen && len(t.order) > 0 {
		tr := t.order[0]
		t.order = t.order[1:]
		if f, ok := t.open[tr.k]; ok && f.seq == tr.seq {
			delete(t.open, tr.k)
		}
	}
	if len(t.order) > 2*len(t.open)+1024 {
		t.compact()
	}
}

// compact drops the order entries of files already closed.
func (t *Translator) compact() {
	kept := make([]tracked, 0, len(t.open))
	for _, tr := range t.order {
		if f, ok := t.open[tr.k]; ok && f.seq == tr.seq {
			kept = append(kept, tr)
		}
	}
	t.order = kept
}

func (t *Translator) lookup(k openKey) (*openFile, bool) {
	f, ok := t.open[k]
	return f, ok
}

func (t *Translator) forget(k openKey) (*openFile, bool) {
	f, ok := t.open[k]
	if ok {
		delete(t.open, k)
	}
	return f, ok
}
