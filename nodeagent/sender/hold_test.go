package sender

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// TestHoldFailures: a path that failed on the peer waits its own backoff,
// doubled at each failure; a path that raced here (gone before a send, back
// before a delete) waits the first backoff only, however often it raced,
// and leaves the path's backoff as it was.
func TestHoldFailures(t *testing.T) {
	const first, limit = 100 * time.Millisecond, time.Second
	tests := []struct {
		name    string
		raced   []bool // one failure of the path per element, in order
		hold    time.Duration
		backoff time.Duration // the path's backoff after them; 0: none
	}{
		{name: "one failure", raced: []bool{false}, hold: first, backoff: first},
		{name: "doubled", raced: []bool{false, false, false}, hold: 4 * first, backoff: 4 * first},
		{name: "capped", raced: []bool{false, false, false, false, false, false}, hold: limit, backoff: limit},
		{name: "raced once", raced: []bool{true}, hold: first},
		{name: "raced often", raced: []bool{true, true, true, true, true, true, true}, hold: first},
		{name: "raced after failures", raced: []bool{false, false, true}, hold: first, backoff: 2 * first},
		{name: "failed after races", raced: []bool{true, true, false}, hold: first, backoff: first},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{Backoff: first, BackoffCap: limit}
			s.defaults()
			now := time.Unix(1000, 0)
			for i, raced := range tc.raced {
				s.holdFailures([]Failure{{Entry: journal.Entry{Path: "p", Seq: uint64(i + 1)}, Raced: raced}}, now)
			}
			h, ok := s.held["p"]
			if !ok {
				t.Fatal("not held")
			}
			if got := h.until.Sub(now); got != tc.hold {
				t.Errorf("held for %s, want %s", got, tc.hold)
			}
			if got := s.failing["p"].wait; got != tc.backoff {
				t.Errorf("backoff %s, want %s", got, tc.backoff)
			}
		})
	}
}

// TestAccountRaced: the outcomes of a path that changed here under the run
// mark its failure raced; the peer's refusals do not.
func TestAccountRaced(t *testing.T) {
	res := rsync.Result{Paths: []rsync.PathResult{
		{Path: "gone", Outcome: rsync.Vanished},
		{Path: "back", Outcome: rsync.Present},
		{Path: "refused", Outcome: rsync.Failed},
		{Path: "cut", Outcome: rsync.Unconfirmed},
		{Path: "sent", Outcome: rsync.Sent},
	}}
	var s Sender
	var r Run
	s.account(&r, res, nil)
	var entries []journal.Entry
	for i, p := range res.Paths {
		entries = append(entries, journal.Entry{Path: p.Path, Seq: uint64(i + 1)})
	}
	got := map[string]bool{}
	for _, f := range failures(entries, entries[4:], nil, r.reasons, r.raced) {
		got[f.Entry.Path] = f.Raced
	}
	want := map[string]bool{"gone": true, "back": true, "refused": false, "cut": false}
	if len(got) != len(want) {
		t.Fatalf("failures %v, want %v", got, want)
	}
	for p, raced := range want {
		if got[p] != raced {
			t.Errorf("%s: raced %v, want %v", p, got[p], raced)
		}
	}
}

// TestCrossing: a path counts as crossing when a peer's run carries the
// path itself; one below a directory that a peer's run carries (its times,
// changed by a file the peer made there) does not, nor one found changed
// already (kept as it was).
func TestCrossing(t *testing.T) {
	announced := map[string]bool{"f": true, "d": true}
	s := &Sender{
		Incoming: func(p string) bool { return announced[p] || announced[p[:max(strings.IndexByte(p, '/'), 0)]] },
		Carrying: func(p string) bool { return announced[p] },
	}
	got := s.crossing(map[string]bool{"changed": true}, []string{"f", "d/x", "g", "changed"})
	want := map[string]bool{"changed": true, "f": true}
	if !maps.Equal(got, want) {
		t.Errorf("crossing %v, want %v", got, want)
	}
	if got := (&Sender{}).crossing(nil, []string{"f"}); got != nil {
		t.Errorf("crossing without Carrying %v, want none", got)
	}
}

// TestSender_releaseCrossed_settled: a file that changed while its run
// sent it, and that nothing journals again, goes again to the peer once it
// has stayed as it is while nothing is written here; not while a write is
// under way or changes are on their way, not while it changes, not while
// a peer's run of it is announced, and not when the index holds it as it
// is (a peer's version: that one goes to every peer, Crossed).
func TestSender_releaseCrossed_settled(t *testing.T) {
	// linkedAndUnlinked moves the file's ctime and leaves its link count:
	// a name of it made and removed elsewhere during the run.
	linkedAndUnlinked := func(t *testing.T, root string) {
		if err := os.Link(filepath.Join(root, "f"), filepath.Join(root, "h")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(root, "h")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		changed  func(t *testing.T, root string) // after f is journaled, before the hold; nil: nothing
		between  func(t *testing.T, root string) // between the looks
		writing  bool                            // a write under way here
		coming   bool                            // changes on their way to the journal
		incoming bool                            // a peer's run of f announced
		released bool                            // to go again to this peer
		crossed  bool                            // handed to Crossed
	}{
		{name: "a link made and removed during the run", changed: linkedAndUnlinked, released: true},
		{name: "a write under way here", changed: linkedAndUnlinked, writing: true},
		{name: "changes on their way to the journal", changed: linkedAndUnlinked, coming: true},
		{name: "a peer's run of it announced", changed: linkedAndUnlinked, incoming: true},
		{name: "still changing between the looks", changed: linkedAndUnlinked, between: func(t *testing.T, root string) {
			if err := os.Chmod(filepath.Join(root, "f"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "as the index holds it: a peer's version", crossed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "f"), []byte("y"), 0o644); err != nil {
				t.Fatal(err)
			}
			rootfd, j := openJournal(t, root)
			if err := j.Record(rootfd, []string{"peer"}, []change.Change{{Path: "f", Op: change.Create | change.Write, Finished: true}}); err != nil {
				t.Fatal(err)
			}
			e, ok, err := j.Entry("peer", "f")
			if err != nil || !ok {
				t.Fatalf("f not journaled: %v", err)
			}
			if tc.changed != nil {
				tc.changed(t, root)
			}
			var crossed []string
			s := &Sender{
				Peer: "peer", Journal: j, Log: testr.New(t),
				Writing:  func() time.Time { return map[bool]time.Time{true: time.Unix(1, 0)}[tc.writing] },
				Coming:   func() bool { return tc.coming },
				Incoming: func(string) bool { return tc.incoming },
				Crossed:  func(paths []string) error { crossed = append(crossed, paths...); return nil },
			}
			s.defaults()
			s.holdChanged(rootfd, []journal.Entry{e})
			start := s.held["f"].checkAt
			for i := range 4 { // 0, 100, 200 and 300 ms: past settledAfter
				if i == 2 && tc.between != nil {
					tc.between(t, root)
				}
				s.releaseCrossed(rootfd, start.Add(time.Duration(i)*crossedCheck))
			}
			h, held := s.held["f"]
			if released := !held; released != tc.released {
				t.Errorf("released to go again: %v, want %v (hold %+v)", released, tc.released, h)
			}
			if got := slices.Equal(crossed, []string{"f"}); got != tc.crossed {
				t.Errorf("handed to Crossed: %v, want %v", crossed, tc.crossed)
			}
		})
	}
}
