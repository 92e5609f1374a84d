package sender

import (
	"maps"
	"strings"
	"testing"
	"time"

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
