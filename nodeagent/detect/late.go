package detect

import (
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// lateRenames are the renames the filter passed lately, oldest first. The
// journal records a rename, and moves its entries in the index to the new
// name, after the filter passed it: a change below the new name read in
// between finds no entry there. A removal of such a path (mv x d; rm d/s)
// or a rename out of it (mv d e; mv e/f e/g; mv e/g e/h: the middle link)
// then reads as a change made and undone before it shipped, both its
// names absent here and in the index, and was dropped: the peers kept d/s,
// or e/f, for good (stress seeds 22 and 25, the forty-first and
// forty-second sessions).
type lateRenames struct {
	rs []lateRename
}

type lateRename struct {
	old, new string
	at       time.Time
}

// lateRenameFor is how long a passed rename is kept: far longer than the
// journal takes to record it, even under load. maxLateRenames bounds the
// list (the oldest go first).
const (
	lateRenameFor  = 10 * time.Second
	maxLateRenames = 256
)

// add keeps the rename old -> new, passed at now.
func (l *lateRenames) add(old, new string, now time.Time) {
	l.expire(now)
	if len(l.rs) == maxLateRenames {
		l.rs = append(l.rs[:0], l.rs[1:]...)
	}
	l.rs = append(l.rs, lateRename{old: old, new: new, at: now})
}

func (l *lateRenames) expire(now time.Time) {
	i := 0
	for i < len(l.rs) && now.Sub(l.rs[i].at) > lateRenameFor {
		i++
	}
	if i > 0 {
		l.rs = append(l.rs[:0], l.rs[i:]...)
	}
}

// heldBefore reports whether c, which the index holds as it is (each of
// its names absent here, or as recorded), names a path gone here that the
// index holds under the name it had before a late rename: a real change,
// read before the journal moved that entry. The agent's own changes
// (Echo: a peer's renames it replayed and recorded) are the echoes they
// look like. A name that is a late rename's new name itself counts (mv x
// y; rm y, the removal read apart from the rename). A removal of a name a late rename had moved passes even where
// the writer made that name anew and removed it again since (the peers do
// not hold it either): one more deletion, never a lost one.
func (l *lateRenames) heldBefore(tx *index.Tx, rootfd int, c change.Change, now time.Time) bool {
	if c.Echo || len(l.rs) == 0 {
		return false
	}
	l.expire(now)
	names := []string{c.Path}
	if c.Op.Has(change.Rename) && c.OldPath != "" {
		names = append(names, c.OldPath)
	}
	for _, p := range names {
		var st unix.Stat_t
		if !index.IsGone(beneath.Lstat(rootfd, p, &st)) {
			continue
		}
		was := p
		for i := len(l.rs) - 1; i >= 0; i-- {
			r := l.rs[i]
			rest, ok := strings.CutPrefix(was, r.new)
			if !ok || rest != "" && rest[0] != '/' {
				continue
			}
			was = r.old + rest
			if _, held, err := tx.Get(was); err == nil && held {
				return true
			}
		}
	}
	return false
}
