package sender

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

func TestSender_laneOpen(t *testing.T) {
	now := time.Now()
	const laneBytes, laneAfter = 128 << 20, 250 * time.Millisecond
	short := flight{start: now.Add(-10 * time.Millisecond), bytes: 4 << 10}
	old := flight{start: now.Add(-laneAfter), bytes: 4 << 10}
	large := flight{start: now, bytes: laneBytes}
	oneLargeFile := flight{start: now, bytes: largeFileThreshold, large: true}
	settling := short
	settling.pushed = true
	tests := []struct {
		name    string
		flights []flight
		lanes   int
		pending int64 // the peer's pending files; 1 unless set
		open    bool
		opensAt time.Time // zero: no timer
	}{
		{name: "idle: the first run starts at once", open: true},
		{name: "a short run in flight holds the next", flights: []flight{short}, open: false, opensAt: short.start.Add(laneAfter)},
		{name: "a run that has taken LaneAfter lets the next start", flights: []flight{old}, open: true},
		{name: "a run carrying LaneBytes lets the next start", flights: []flight{large}, open: true},
		{name: "a run carrying a large file lets the next start", flights: []flight{oneLargeFile}, open: true},
		{name: "every run in flight must be long", flights: []flight{large, short}, lanes: 3, open: false, opensAt: short.start.Add(laneAfter)},
		{name: "never more than Lanes", flights: []flight{large, old}, open: false},
		{name: "a lone change does not wait for a run's confirmations", flights: []flight{settling}, open: true},
		{name: "nor for two", flights: []flight{settling, settling}, pending: gatherAfter - 1, open: true},
		{name: "a burst waits for the run to end", flights: []flight{settling}, pending: gatherAfter, open: false, opensAt: settling.start.Add(laneAfter)},
		{name: "a confirming run holds no lane beside a short one", flights: []flight{settling, short}, open: false, opensAt: short.start.Add(laneAfter)},
		{name: "a confirming run holds no lane beside a long one", flights: []flight{settling, large}, open: true},
		{name: "never more than twice Lanes in all", flights: []flight{settling, settling, settling, large}, open: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{Lanes: tc.lanes, LaneBytes: laneBytes, LaneAfter: laneAfter}
			s.defaults()
			for i, f := range tc.flights {
				s.flights[i] = f
			}
			pending := tc.pending
			if pending == 0 {
				pending = 1
			}
			if got := s.laneOpen(now, pending); got != tc.open {
				t.Errorf("laneOpen = %v, want %v", got, tc.open)
			}
			at, ok := s.nextLane(pending)
			if ok != !tc.opensAt.IsZero() || !at.Equal(tc.opensAt) {
				t.Errorf("nextLane = %v, %v; want %v", at, ok, tc.opensAt)
			}
		})
	}
}

func TestSender_shortRunPushing(t *testing.T) {
	now := time.Now()
	const laneBytes = 128 << 20
	short := flight{start: now, bytes: 4 << 10}
	settling := short
	settling.pushed = true
	large := flight{start: now, bytes: laneBytes}
	oneLargeFile := flight{start: now, bytes: largeFileThreshold, large: true}
	tests := []struct {
		name    string
		flights []flight
		want    bool // no client is prepared while true
	}{
		{name: "idle: a client is prepared", want: false},
		{name: "a short run pushing: not while it pushes", flights: []flight{short}, want: true},
		{name: "a short run confirming: prepared", flights: []flight{settling}, want: false},
		{name: "beside a run carrying LaneBytes: prepared", flights: []flight{large}, want: false},
		{name: "beside a large file: prepared", flights: []flight{oneLargeFile}, want: false},
		{name: "a short run beside a long one: not", flights: []flight{large, short}, want: true},
		{name: "confirming beside a long one: prepared", flights: []flight{settling, oneLargeFile}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{LaneBytes: laneBytes}
			s.defaults()
			for i, f := range tc.flights {
				s.flights[i] = f
			}
			if got := s.shortRunPushing(); got != tc.want {
				t.Errorf("shortRunPushing = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBatch_changedSince(t *testing.T) {
	root := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("steady", "same")
	write("rewritten", "first version")
	write("appended", "first")
	write("removed", "x")
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	names := []string{"steady", "rewritten", "appended", "removed", "dir"}
	var entries []journal.Entry
	for _, n := range names {
		entries = append(entries, journal.Entry{Path: n, Op: change.Write})
	}
	b := plan(rootfd, entries)

	// While "rsync reads them": a new file under an old name, an append,
	// a removal, and a new entry in the directory.
	if err := os.Rename(filepath.Join(root, "steady"), filepath.Join(root, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "tmp"), filepath.Join(root, "steady")); err != nil {
		t.Fatal(err)
	}
	write("rewritten.new", "second version")
	if err := os.Rename(filepath.Join(root, "rewritten.new"), filepath.Join(root, "rewritten")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(root, "appended"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(" and more")
	f.Close()
	if err := os.Remove(filepath.Join(root, "removed")); err != nil {
		t.Fatal(err)
	}
	write("dir/child", "new")

	got := b.changedSince(rootfd, names)
	// "steady" was renamed away and back: its ctime moved, so it counts as
	// changed too; a rename is a change a run may have raced with.
	want := map[string]bool{"steady": true, "rewritten": true, "appended": true, "removed": true}
	if !maps.Equal(got, want) {
		t.Errorf("changedSince = %v, want %v (directories are not compared)", got, want)
	}
	write("untouched", "u")
	write("linked", "l")
	write("chmodded", "c")
	write("linked-and-chmodded", "lc")
	sends := []string{"untouched", "linked", "chmodded", "linked-and-chmodded"}
	entries = nil
	for _, n := range sends {
		entries = append(entries, journal.Entry{Path: n})
	}
	b = plan(rootfd, entries)
	// A hard link made meanwhile moves the ctime but changes nothing sent;
	// a chmod is a change (it has its own event, which releases the hold),
	// also beside a new hard link, whose moved ctime hides it (the stress
	// test: the peer held the new mode, the sender's confirmation said the
	// old one, and the peer took the file for a change of its own).
	for _, n := range []string{"linked", "linked-and-chmodded"} {
		if err := os.Link(filepath.Join(root, n), filepath.Join(root, n+".other-name")); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"chmodded", "linked-and-chmodded"} {
		if err := os.Chmod(filepath.Join(root, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got = b.changedSince(rootfd, sends)
	if want := map[string]bool{"chmodded": true, "linked-and-chmodded": true}; !maps.Equal(got, want) {
		t.Errorf("changedSince = %v, want %v (unchanged, and a new hard link, are not changes)", got, want)
	}
}

func TestSender_skipHeld(t *testing.T) {
	s := &Sender{}
	s.defaults()
	rootfd := rootWithFiles(t, "held", "dir/file")
	// gone and dir/file/below (ENOTDIR) are not here: their removal, or a
	// rename above them, came after the run; nothing is written there.
	s.holdChanged(rootfd, []journal.Entry{{Path: "held", Seq: 7}, {Path: "gone", Seq: 9}, {Path: "dir/file/below", Seq: 10}})
	s.inflight.add("busy/dir")
	tests := []struct {
		name string
		e    journal.Entry
		skip bool
	}{
		{name: "a held entry whose change is not journaled yet", e: journal.Entry{Path: "held", Seq: 7}, skip: true},
		{name: "in flight below a directory in flight", e: journal.Entry{Path: "busy/dir/file", Seq: 1}, skip: true},
		{name: "the held file's change journaled (Seq moved on)", e: journal.Entry{Path: "held", Seq: 8}, skip: false},
		{name: "other paths", e: journal.Entry{Path: "free", Seq: 1}, skip: false},
		{name: "changed during its run and gone here since", e: journal.Entry{Path: "gone", Seq: 9}, skip: false},
		{name: "changed during its run and below a file here since", e: journal.Entry{Path: "dir/file/below", Seq: 10}, skip: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.skip(tc.e); got != tc.skip {
				t.Errorf("skip(%+v) = %v, want %v", tc.e, got, tc.skip)
			}
		})
	}
	// Once released by a new Seq, the hold is gone for good.
	if s.skip(journal.Entry{Path: "held", Seq: 7}) {
		t.Error("a released hold still holds")
	}
	// A hold ends after the coalescer's longest hold even without news,
	// and the sender's loop is woken then (nextRelease).
	if at, ok := s.nextRelease(time.Now()); ok {
		t.Errorf("nextRelease = %v with no hold left", at)
	}
	now := time.Now()
	s.held["stale"] = hold{seq: 3, until: now.Add(-time.Millisecond)}
	s.held["later"] = hold{seq: 4, until: now.Add(time.Minute)}
	s.held["sooner"] = hold{seq: 5, until: now.Add(time.Second)}
	if s.skip(journal.Entry{Path: "stale", Seq: 3}) {
		t.Error("an expired hold still holds")
	}
	s.held["stale"] = hold{seq: 3, until: now.Add(-time.Millisecond)}
	if at, ok := s.nextRelease(now); !ok || !at.Equal(now.Add(time.Second)) {
		t.Errorf("nextRelease = %v, %v; want the sooner hold's end", at, ok)
	}
	if _, ok := s.held["stale"]; ok {
		t.Error("nextRelease kept an ended hold")
	}
}

func TestSender_gathering(t *testing.T) {
	now := time.Now()
	const gather, quiet = 100 * time.Millisecond, 5 * time.Millisecond
	idle := now.Add(-10 * time.Millisecond) // the last run ended 10 ms ago
	tests := []struct {
		name     string
		idleFrom time.Time // zero: no run yet
		// activeFrom: the first wake after a pause of Gather or more
		activeFrom time.Time
		flights    int
		lastWake   time.Time
		since      uint64 // changes journaled since the last run started
		pending    int64
		bytes      int64 // pending
		// journaling: changes are being journaled (Sender.Journaling)
		journaling bool
		// writing: when the youngest write under way began (Sender.Writing)
		writing time.Time
		// coming: more changes are on their way to the journal (Sender.Coming)
		coming bool
		wait   bool
		until  time.Time
	}{
		{name: "the first run starts at once", lastWake: now, since: 5, pending: 5},
		{name: "at rest a lone file goes at once, even while more is journaled", idleFrom: now.Add(-time.Hour), activeFrom: now, lastWake: now, since: 1, pending: 1, journaling: true},
		{name: "at rest a few changes go at once", idleFrom: now.Add(-time.Hour), activeFrom: now, lastWake: now, since: gatherAfter - 1, pending: gatherAfter - 1, journaling: true},
		{name: "at rest a burst still being journaled waits for a pause", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-10 * time.Millisecond), lastWake: now, since: 200, pending: 200, journaling: true,
			wait: true, until: now.Add(quiet)},
		{name: "before any run, too", activeFrom: now, lastWake: now, since: 200, pending: 200, journaling: true, wait: true, until: now.Add(quiet)},
		{name: "at rest a burst that paused goes", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-20 * time.Millisecond), lastWake: now.Add(-quiet), since: 200, pending: 200},
		{name: "at rest a burst goes at Gather from its first change", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-gather), lastWake: now, since: 300, pending: 300, journaling: true},
		{name: "at rest the wait ends at Gather from its first change when that comes first", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-gather + time.Millisecond), lastWake: now,
			since: 300, pending: 300, journaling: true, wait: true, until: now.Add(time.Millisecond)},
		{name: "a lone file after a run goes at once", idleFrom: idle, lastWake: now, since: 1, pending: 1},
		{name: "a few changes after a run go at once", idleFrom: idle, lastWake: now, since: gatherAfter - 1, pending: gatherAfter - 1},
		{name: "a burst still arriving waits for a pause", idleFrom: idle, lastWake: now.Add(-time.Millisecond), since: 40, pending: 40, coming: true,
			wait: true, until: now.Add(-time.Millisecond).Add(quiet)},
		{name: "eight changes during the last run make a burst", idleFrom: idle, lastWake: now, since: gatherAfter, pending: gatherAfter, coming: true,
			wait: true, until: now.Add(quiet)},
		{name: "a burst with nothing more seen coming waits only burstOverQuiet", idleFrom: idle, lastWake: now, since: 40, pending: 40,
			wait: true, until: now.Add(burstOverQuiet)},
		{name: "a burst with nothing more seen coming goes after burstOverQuiet", idleFrom: idle, lastWake: now.Add(-burstOverQuiet), since: 40, pending: 40},
		{name: "at rest too, a burst with nothing more seen coming waits only burstOverQuiet", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-10 * time.Millisecond),
			lastWake: now, since: 200, pending: 200, wait: true, until: now.Add(burstOverQuiet)},
		{name: "a write under way keeps the pause at Quiet", idleFrom: idle, lastWake: now, since: 40, pending: 40, writing: now,
			wait: true, until: now.Add(quiet)},
		{name: "a burst that paused goes", idleFrom: idle, lastWake: now.Add(-quiet), since: 40, pending: 40},
		{name: "no pause while the journal still commits the burst", idleFrom: idle, lastWake: now.Add(-quiet), since: 40, pending: 40,
			journaling: true, wait: true, until: now.Add(quiet)},
		{name: "a lone file goes while other changes are journaled", idleFrom: idle, lastWake: now, since: 1, pending: 1, journaling: true},
		{name: "journaling never holds past Gather", idleFrom: now.Add(-gather), lastWake: now, since: 40, pending: 40, journaling: true},
		{name: "never longer than Gather after the last run", idleFrom: now.Add(-gather), lastWake: now, since: 40, pending: 40},
		{name: "the wait ends at Gather when that comes first", idleFrom: now.Add(-gather + time.Millisecond), lastWake: now, since: 40, pending: 40,
			wait: true, until: now.Add(time.Millisecond)},
		{name: "a full batch goes at once", idleFrom: idle, lastWake: now, since: 3000, pending: DefaultBatchFiles},
		{name: "with 16 MiB pending a fifth of the pause ends it", idleFrom: idle, lastWake: now.Add(-quiet / 10), since: 40, pending: 40, bytes: 16 << 20,
			wait: true, until: now.Add(-quiet / 10).Add(quiet / 5)},
		{name: "with 16 MiB pending, after a fifth of the pause it goes", idleFrom: idle, lastWake: now.Add(-quiet / 5), since: 40, pending: 40, bytes: 16 << 20},
		{name: "a run in flight: the lane rule decides", idleFrom: idle, flights: 1, lastWake: now, since: 40, pending: 40},
		{name: "at rest a lone file waits while the next one is written", idleFrom: now.Add(-time.Hour), activeFrom: now, lastWake: now, since: 1, pending: 1,
			writing: now.Add(-time.Millisecond), wait: true, until: now.Add(-time.Millisecond).Add(DefaultWriteWait)},
		{name: "before any run, a write holds too", activeFrom: now, lastWake: now, since: 1, pending: 1, writing: now, wait: true, until: now.Add(DefaultWriteWait)},
		{name: "at rest a write begun DefaultWriteWait ago holds nothing", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-DefaultWriteWait), lastWake: now, since: 1, pending: 1,
			writing: now.Add(-DefaultWriteWait)},
		{name: "at rest a write holds no longer than Gather from the first change", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-gather + time.Millisecond), lastWake: now,
			since: 3, pending: 3, writing: now, wait: true, until: now.Add(time.Millisecond)},
		{name: "at rest a burst under way gathers by its pauses", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-10 * time.Millisecond), lastWake: now.Add(-quiet), since: 200, pending: 200,
			writing: now},
		{name: "at rest with nothing pending a write holds nothing", idleFrom: now.Add(-time.Hour), activeFrom: now, lastWake: now, writing: now},
		{name: "a lone file after a run goes at once, beside a write too", idleFrom: idle, lastWake: now, since: 1, pending: 1, writing: now},
		{name: "a run in flight: no wait for a write", activeFrom: now, flights: 1, lastWake: now, since: 1, pending: 1, writing: now},
		{name: "at rest a burst's first few changes wait while more are coming", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-time.Millisecond), lastWake: now,
			since: 3, pending: 3, coming: true, wait: true, until: now.Add(-time.Millisecond).Add(DefaultWriteWait)},
		{name: "before any run, what is coming holds a lone file too", activeFrom: now, lastWake: now, since: 1, pending: 1, coming: true, wait: true, until: now.Add(DefaultWriteWait)},
		{name: "at rest what is coming holds no longer than DefaultWriteWait from the first change", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-DefaultWriteWait), lastWake: now,
			since: 3, pending: 3, coming: true},
		{name: "at rest with nothing more coming a few changes go at once", idleFrom: now.Add(-time.Hour), activeFrom: now, lastWake: now, since: 3, pending: 3},
		{name: "at rest with nothing pending what is coming holds nothing", idleFrom: now.Add(-time.Hour), activeFrom: now, lastWake: now, coming: true},
		{name: "a lone file after a run goes at once, while more is coming too", idleFrom: idle, lastWake: now, since: 1, pending: 1, coming: true},
		{name: "a run in flight: no wait for what is coming", activeFrom: now, flights: 1, lastWake: now, since: 1, pending: 1, coming: true},
		{name: "a write under way and more coming: the write's bound", idleFrom: now.Add(-time.Hour), activeFrom: now.Add(-5 * time.Millisecond), lastWake: now,
			since: 1, pending: 1, writing: now, coming: true, wait: true, until: now.Add(DefaultWriteWait)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{Gather: gather, Quiet: quiet, Journaling: func() bool { return tc.journaling }, Writing: func() time.Time { return tc.writing },
				Coming: func() bool { return tc.coming }}
			s.defaults()
			for i := range tc.flights {
				s.flights[i] = flight{start: now}
			}
			s.idleFrom, s.activeFrom, s.lastWake, s.startSeq = tc.idleFrom, tc.activeFrom, tc.lastWake, 100
			until, wait := s.gathering(now, 100+tc.since, tc.pending, tc.bytes)
			if wait != tc.wait || !until.Equal(tc.until) {
				t.Errorf("gathering = %v, %v; want %v, %v", until, wait, tc.until, tc.wait)
			}
		})
	}
}

func TestNextBackoff(t *testing.T) {
	const first, limit = 100 * time.Millisecond, time.Second
	tests := []struct {
		name       string
		prev, want time.Duration
	}{
		{name: "the first failure waits first", prev: 0, want: first},
		{name: "doubles", prev: first, want: 2 * first},
		{name: "doubles again", prev: 4 * first, want: 8 * first},
		{name: "capped", prev: 8 * first, want: limit},
		{name: "stays at the cap", prev: limit, want: limit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextBackoff(tc.prev, first, limit); got != tc.want {
				t.Errorf("nextBackoff(%v) = %v, want %v", tc.prev, got, tc.want)
			}
		})
	}
	// A long outage: the waits double up to the cap and stay there.
	var w time.Duration
	for range 100 {
		w = nextBackoff(w, first, limit)
		if w > limit {
			t.Fatalf("backoff %v above the cap %v", w, limit)
		}
	}
	if w != limit {
		t.Errorf("after 100 failures the wait is %v, want the cap %v", w, limit)
	}
}

// TestLeftUnconfirmed: what rsync made or changed on the peer without
// confirming it is named unconfirmed; what it deleted there is not (it goes
// as removed).
func TestLeftUnconfirmed(t *testing.T) {
	tests := []struct {
		name  string
		paths []rsync.PathResult
		want  []string
	}{
		{name: "a directory made by a run that broke off", paths: []rsync.PathResult{{Path: "d", Change: "cd+++++++++", Outcome: rsync.Unconfirmed}}, want: []string{"d"}},
		{name: "a file itemized, then named in an error", paths: []rsync.PathResult{{Path: "f", Change: ">f+++++++++", Outcome: rsync.Failed}}, want: []string{"f"}},
		{name: "nothing itemized", paths: []rsync.PathResult{{Path: "f", Outcome: rsync.Unconfirmed}, {Path: "g", Outcome: rsync.Failed}}},
		{name: "confirmed", paths: []rsync.PathResult{{Path: "f", Change: ">f+++++++++", Outcome: rsync.Sent}}},
		// A directory that the listed file d replaced took d/x along
		// (--force), and d/x failed here (link_stat: not a directory);
		// the file d itself vanished here (stress seed 29, exit 23).
		{name: "deleted with a directory a file replaced, and failed here", paths: []rsync.PathResult{
			{Path: "d", Outcome: rsync.Unconfirmed},
			{Path: "d/x", Change: "*deleting  ", Outcome: rsync.Failed},
			{Path: "d/y", Change: "*deleting  ", Outcome: rsync.Unconfirmed},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := leftUnconfirmed(rsync.Result{Paths: tt.paths, Exited: true, Code: 12}); !slices.Equal(got, tt.want) {
				t.Errorf("leftUnconfirmed = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUnspoken: a run cut short names the paths rsync never spoke of
// (it may have made them on the peer); a run that went to its end, or
// that never ran, names none.
func TestUnspoken(t *testing.T) {
	paths := []rsync.PathResult{
		{Path: "a", Change: ">f+++++++++", Outcome: rsync.Unconfirmed},
		{Path: "h", Outcome: rsync.Unconfirmed},
		{Path: "v", Outcome: rsync.Vanished},
		{Path: "x", Outcome: rsync.Failed},
	}
	tests := []struct {
		name   string
		exited bool
		code   int // rsync's exit code
		want   []string
	}{
		// A hard link rsync made before the run broke off, never
		// itemized; a path named in an error was not made.
		{name: "a run cut short (exit 2)", exited: true, code: 2, want: []string{"h"}},
		{name: "a connection lost (exit 10)", exited: true, code: 10, want: []string{"h"}},
		{name: "killed by a signal", exited: true, code: -1, want: []string{"h"}},
		// Exit 23 and 24 ran to the end: a path never spoken of vanished
		// here before rsync read it (--ignore-missing-args).
		{name: "a run that went to its end (exit 23)", exited: true, code: 23},
		{name: "a run that went to its end (exit 24)", exited: true, code: 24},
		{name: "no rsync ran", exited: false, code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unspoken(rsync.Result{Paths: paths, Exited: tt.exited, Code: tt.code}); !slices.Equal(got, tt.want) {
				t.Errorf("unspoken = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSplitVanished_replaced: a listed file that vanished here after rsync
// had deleted the peer's directory there (its tree itemized "*deleting",
// the directory itself never) is named as removed by the push; nothing
// else is.
func TestSplitVanished_replaced(t *testing.T) {
	tests := []struct {
		name    string
		paths   []rsync.PathResult
		removed []string
		want    []string
	}{
		{name: "a directory's tree deleted for a file that vanished",
			paths:   []rsync.PathResult{{Path: "d/D1", Outcome: rsync.Vanished}, {Path: "d/D1/f28", Outcome: rsync.Failed}},
			removed: []string{"d/D1/sub/x", "d/D1/sub", "d/D1/f28"}, want: []string{"d/D1"}},
		{name: "a file that vanished with nothing deleted below it",
			paths: []rsync.PathResult{{Path: "d/D1", Outcome: rsync.Vanished}}, removed: []string{"d/other/x"}},
		{name: "the file arrived (its own line)",
			paths:   []rsync.PathResult{{Path: "d/D1", Change: ">f+++++++++", Outcome: rsync.Sent}},
			removed: []string{"d/D1/f28"}},
		{name: "a sibling whose name starts with the path's",
			paths: []rsync.PathResult{{Path: "d/D1", Outcome: rsync.Vanished}}, removed: []string{"d/D12/x", "d/D1x"}},
		{name: "a listed path deleted with its own line",
			paths:   []rsync.PathResult{{Path: "d/D1", Change: "*deleting", Outcome: rsync.Deleted}},
			removed: []string{"d/D1/x", "d/D1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := splitVanished(rsync.Result{Paths: tt.paths, Removed: tt.removed}); !slices.Equal(got, tt.want) {
				t.Errorf("splitVanished's replaced = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSplitVanished_unsaid: a listed path that vanished here with no line of its
// own is named as vanished, unless deletions were itemized below it (it
// goes as removed: splitVanished's replaced).
func TestSplitVanished_unsaid(t *testing.T) {
	res := rsync.Result{
		Paths: []rsync.PathResult{
			{Path: "tree", Outcome: rsync.Vanished},
			{Path: "v", Outcome: rsync.Vanished},
			{Path: "s", Change: ">f+++++++++", Outcome: rsync.Sent},
			{Path: "f", Outcome: rsync.Failed},
		},
		Removed: []string{"tree/x"},
	}
	if _, got := splitVanished(res); !slices.Equal(got, []string{"v"}) {
		t.Errorf("splitVanished's unsaid = %q, want [\"v\"]", got)
	}
}

// TestConfirmationOf: what a run tells its peer, each path once, states
// in step with the sent paths.
func TestConfirmationOf(t *testing.T) {
	file := peer.FileState{Regular: true, Size: 1}
	dir := peer.FileState{Dir: true}
	tests := []struct {
		name   string
		sent   []string
		states []peer.FileState
		gone   []string
		named  named
		want   confirmation
	}{
		{name: "sent and deleted only", sent: []string{"a"}, states: []peer.FileState{file}, gone: []string{"b"},
			want: confirmation{sent: []string{"a"}, states: []peer.FileState{file}, gone: []string{"b"}}},
		{name: "a path a delete sent instead, without a state, before the implied directories", sent: []string{"a"}, states: []peer.FileState{file},
			named: named{sentInstead: []string{"back"}, implied: []string{"d"}},
			want:  confirmation{sent: []string{"a", "back", "d"}, states: []peer.FileState{file, {}, dir}}},
		{name: "a path itemized and not confirmed, marked so", sent: []string{"a"}, states: []peer.FileState{file},
			named: named{sentInstead: []string{"back"}, unconfirmed: []string{"big", "a"}},
			want:  confirmation{sent: []string{"a", "back", "big"}, states: []peer.FileState{file, {}, {Unconfirmed: true}}}},
		{name: "a path a cut run never spoke of, marked so, and not when unconfirmed", sent: []string{"a"}, states: []peer.FileState{file},
			named: named{unconfirmed: []string{"big"}, unspoken: []string{"h", "big", "a"}},
			want:  confirmation{sent: []string{"a", "big", "h"}, states: []peer.FileState{file, {Unconfirmed: true}, {Unspoken: true}}}},
		{name: "an implied directory named once, and not when sent", sent: []string{"d/x", "e"}, states: []peer.FileState{file, {}},
			named: named{implied: []string{"d", "e", "d"}},
			want:  confirmation{sent: []string{"d/x", "e", "d"}, states: []peer.FileState{file, {}, dir}}},
		{name: "what a push removed: top-most, and not when sent or deleted", sent: []string{"c3"}, states: []peer.FileState{file},
			gone: []string{"old"}, named: named{removed: []string{"t/x", "c3/f", "t", "old", "c3", "u/y"}},
			want: confirmation{sent: []string{"c3"}, states: []peer.FileState{file}, gone: []string{"old", "t", "u/y"}}},
		{name: "a directory removed by a push whose file then vanished (never sent)", named: named{removed: []string{"c3/a", "c3/b", "c3"}},
			want: confirmation{gone: []string{"c3"}}},
		{name: "a directory rsync made for another path, which vanished itself: implied", sent: []string{"d/x"}, states: []peer.FileState{file},
			named: named{vanished: []string{"d", "v"}, unspoken: []string{"e"}, unconfirmed: []string{"f"}, implied: []string{"d", "e", "f"}},
			want:  confirmation{sent: []string{"d/x", "d", "e", "f", "v"}, states: []peer.FileState{file, dir, dir, dir, {Vanished: true}}}},
		{name: "a file that vanished without a line, marked so, and not when sent", sent: []string{"a"}, states: []peer.FileState{file},
			named: named{vanished: []string{"v", "a"}},
			want:  confirmation{sent: []string{"a", "v"}, states: []peer.FileState{file, {Vanished: true}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := confirmationOf(tt.sent, tt.states, tt.gone, tt.named)
			if !slices.Equal(got.sent, tt.want.sent) || !slices.EqualFunc(got.states, tt.want.states, func(a, b peer.FileState) bool {
				return a.Regular == b.Regular && a.Size == b.Size && a.Dir == b.Dir && a.Unconfirmed == b.Unconfirmed && a.Unspoken == b.Unspoken && a.Vanished == b.Vanished
			}) || !slices.Equal(got.gone, tt.want.gone) {
				t.Errorf("got sent %q states %v gone %q\nwant sent %q states %v gone %q", got.sent, got.states, got.gone, tt.want.sent, tt.want.states, tt.want.gone)
			}
		})
	}
}

// TestNamed_push_parentsSentAsFiles: a parent of listed paths that rsync
// read as a file (a directory swapped with one while it read the list)
// replaced the peer's directory: the peer is told to record what it holds
// there, the file or nothing (the run may have stopped before it put the
// file there), and what went with the directory.
func TestNamed_push_parentsSentAsFiles(t *testing.T) {
	tests := []struct {
		name string
		res  rsync.Result
		want confirmation
	}{
		{name: "the file put there", res: rsync.Result{NotDirs: []string{"h/d"}, Removed: []string{"h/d/x", "h/d/kept"}},
			want: confirmation{sent: []string{"h/d"}, states: []peer.FileState{{Replaced: true}}, gone: []string{"h/d/kept", "h/d/x"}}},
		{name: "the peer stopped at a path below it", res: rsync.Result{Unmade: []string{"h/d"}, Removed: []string{"h/d/x/below", "h/d/x", "h/d/kept"}},
			want: confirmation{sent: []string{"h/d"}, states: []peer.FileState{{Replaced: true}}, gone: []string{"h/d/kept", "h/d/x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n named
			n.push(tt.res)
			got := confirmationOf(nil, nil, nil, n)
			if !slices.Equal(got.sent, tt.want.sent) || !slices.EqualFunc(got.states, tt.want.states, func(a, b peer.FileState) bool {
				return reflect.DeepEqual(a, b)
			}) || !slices.Equal(got.gone, tt.want.gone) {
				t.Errorf("got sent %q states %v gone %q\nwant sent %q states %v gone %q", got.sent, got.states, got.gone, tt.want.sent, tt.want.states, tt.want.gone)
			}
		})
	}
}
