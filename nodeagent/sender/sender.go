package sender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// Defaults of a Sender.
const (
	DefaultLanes      = 2
	DefaultBatchFiles = 2000
	DefaultBatchBytes = 256 << 20
	DefaultBackoff    = 100 * time.Millisecond
	DefaultBackoffCap = 30 * time.Second
	// DefaultLaneBytes and DefaultLaneAfter say when a run in flight is a
	// long one, which lets the next run start beside it (Lanes).
	DefaultLaneBytes = 128 << 20
	DefaultLaneAfter = 250 * time.Millisecond
	// DefaultGather and DefaultQuiet batch a burst (Sender.Gather). A
	// pause of 5 ms in the journal's wakes came often on two busy cores
	// (the writer preempted) and ended the gathering with a third run per
	// peer; 50 ms keeps the burst to the lone file's run and one more
	// (docs/benchmarks.md, the seventeenth session: burst 0.884 against
	// 0.930 s, 100 x 1 MiB 0.580 against 0.644 s, 9 interleaved runs);
	// 20 ms, with the journal's Journaling signal, was still slower on
	// the burst (the sixty-eighth session: 0.645 against 0.609 s, 7 of 7).
	// Gather is 300 ms, not 100: the bench's 2,000 writes take 200-330 ms
	// beside the agents on two cores, and a 100 ms bound cut them into
	// three or four runs per peer; with Journaling they go in one (the
	// nineteenth session). A change that comes alone never waits for it.
	DefaultGather = 300 * time.Millisecond
	DefaultQuiet  = 50 * time.Millisecond
	// DefaultWriteWait is how long at most a change at rest waits for a
	// write under way beside it (Sender.Writing), from that write's start:
	// a 1 MiB file takes about 1 ms to write here, its commit 2-4 ms more.
	DefaultWriteWait = 20 * time.Millisecond
	// gatherAfter is how many changes journaled during a run make a
	// burst. A lone file journals two or three (the file, its directory's
	// times), and must never wait.
	gatherAfter = 8
	// maxConfirmWait bounds how long a burst's run waits for the other
	// peers' pushes before it confirms (Pushing.othersPushed).
	maxConfirmWait = time.Second
	// burstOverQuiet is the pause that ends a gathering once nothing more
	// is seen coming (Sender.nothingMoreSeen), instead of Quiet: the
	// wait for Quiet alone came after every burst but one of exactly
	// BatchFiles files (a 1,990-file burst's runs started 58-73 ms after
	// its last commit, a 2,000-file burst's 9-27 ms after; docs/
	// benchmarks.md, the seventy-sixth session). It outlasts the gap
	// between one file's close and the next one's first event, so a
	// writer that goes on at once is still gathered.
	burstOverQuiet = 3 * time.Millisecond
	// quickGatherBytes is the pending size from which a fifth of Quiet
	// ends the gathering.
	quickGatherBytes   = 16 << 20
	largeFileThreshold = 16 << 20
	// DefaultReannounceEvery is Sender.ReannounceEvery's default, a third
	// of the peer's hold (detect.DefaultIncomingTTL).
	DefaultReannounceEvery = 200 * time.Second
	// MaxLinkNames bounds the other names of hard-linked files that one
	// run adds to its journaled paths, past its first linked file, whose
	// names all go (see addLinks).
	MaxLinkNames = 1000
)

// Sender pushes one group's journal to one peer.
type Sender struct {
	// Group is the group's name (the peer's daemon module and endpoint group).
	Group string
	// Peer is the peer's node name; its journal entries are this sender's.
	Peer string
	// Root is the data root.
	Root string
	// Journal holds the pending entries.
	Journal *journal.Journal
	// Target is the peer's rsync daemon module.
	Target rsync.Target
	// Options tune the rsync runs.
	Options rsync.Options
	// Endpoint is the peer's agent-to-agent endpoint; Client calls it.
	// Without a Client no run is announced and no rename is replayed.
	Endpoint netip.AddrPort
	Client   *peer.Client
	// Replayed, when set, returns this member's replay positions in the
	// other members' rename logs (receiver.ReplayPositions), read when a
	// run is announced, after its list was made: the peer moves what the
	// run puts under a name that a rename the peer made, and this member
	// had not replayed yet, took away (peer.PathsRequest.Replayed).
	Replayed func() []peer.ReplayPos
	// KeepDeletes leaves the peer's copies of paths deleted here
	// (spec.deletes: Keep): their entries are confirmed without a run.
	KeepDeletes bool
	// Lanes is how many runs may be in flight at once (at least 2). The
	// first run starts whenever there is work; another starts beside the
	// runs in flight only when each of them is a long one: it carries a
	// large file (16 MiB or more; such a file goes alone), or LaneBytes in
	// all, or has been running for LaneAfter. So a large file does not hold
	// back small ones, while a burst of small files goes in few runs: every
	// run costs an rsync process, a connection and the daemon's fork and
	// chroot (about 13 ms of CPU on the two hosts, measured on loopback),
	// and on a busy host that CPU is what the transfer waits for (100 x 1
	// MiB: 1.28-1.36x of the lower bound with LaneBytes at 16 MiB,
	// 1.13-1.17x at 128 MiB, in the same runs).
	//
	// A run that has pushed and only waits for its confirmations (the
	// peer's record of what arrived, the journal's commit: 4-5 ms on a
	// busy host) holds no lane while the peer has fewer than eight changes
	// pending, so a lone change does not wait for the previous one's
	// bookkeeping; at most 2 x Lanes runs are in flight in all. With more
	// pending it holds its lane to the end, so that a burst still gathers
	// into few runs.
	Lanes int
	// LaneBytes and LaneAfter say when a run is a long one.
	LaneBytes int64
	LaneAfter time.Duration
	// Gather and Quiet make a burst go in few runs. The first run starts
	// as soon as there is work, so a lone file goes out at once; a burst
	// that brings eight changes or more before its first run starts waits
	// as below, for at most Gather from its first change. When a run
	// ends with none in flight and changes are still being journaled (eight
	// or more since that run started, the last less than Quiet ago), the
	// next run waits until they pause for Quiet (for 3 ms once nothing
	// more is seen coming: burstOverQuiet), for at most Gather after the
	// run ended, or until a full batch (BatchFiles) is pending. Every
	// run costs about 13 ms of CPU on the two hosts; on a host that a
	// burst keeps busy, fewer runs finish sooner (see docs/benchmarks.md).
	// A second lane beside a long run (Lanes) does not wait.
	Gather, Quiet time.Duration
	// Journaling, when set, reports whether changes are being journaled
	// at this moment (taken from the detector and not yet committed, or
	// more waiting behind them). The gathering counts no pause while it
	// does: the journal wakes the senders only as each commit ends, and
	// during a burst a commit of a few hundred changes takes longer than
	// Quiet on a busy host, so the gaps between wakes read as pauses and
	// split the burst into more runs (docs/benchmarks.md, the nineteenth
	// session).
	Journaling func() bool
	// Writing, when set, returns when the youngest write under way in the
	// root began (a file a writer still holds, whose first change came
	// lately: detect.Detector.Writing), or zero. At rest, a change that
	// would go alone waits while the next file is being written, for at
	// most WriteWait from that write's start, so that files written one
	// after another go in one run, not the first alone and the rest in a
	// second (100 x 1 MiB: the first file's run, in the middle of the
	// writes, took a connection on both hosts and used up the prepared
	// client that the rest's run then lacked; docs/benchmarks.md, the
	// twenty-fifth session). A lone file, with no other write under
	// way, still goes at once. WriteWait bounds the wait for one write
	// (DefaultWriteWait); while new writes keep starting, it lasts at
	// most Gather from the first change.
	Writing   func() time.Time
	WriteWait time.Duration
	// Coming, when set, reports whether more changes are on their way to
	// the journal: changes the detector has not reported yet
	// (detect.Detector.Coming), or changes the journal has not committed
	// (the agent adds Journaling to it). At rest, a few changes
	// that would go alone wait while more are coming, for at most
	// WriteWait from the first change, and the next commit decides again:
	// a burst's first commit often holds one to six files (the detector
	// read the first events as they came), and sent alone they took a run
	// per peer beside the writes, about 0.1 s of a 2,000-file burst, in a
	// third of the bursts (docs/benchmarks.md, the twenty-sixth session).
	// A lone file has nothing more coming and goes at once.
	Coming func() bool
	// Rescan, when set, asks the detector to compare a path with the
	// index (detect.Detector.Rescan): a file above removed paths that the
	// index holds no state of (settleUnderFile).
	Rescan func(path string)
	// BatchFiles and BatchBytes bound one run.
	BatchFiles int
	BatchBytes int64
	// Backoff is the first wait after a failed run, doubled up to BackoffCap.
	Backoff, BackoffCap time.Duration
	// Links returns up to limit names (root-relative) last recorded with
	// inode ino (index.Index.Links); nil when names are not looked up.
	// Every sent regular file with more than one link takes those of its
	// other names that are still that file into the same run, so that the
	// peer links them as here (rsync keeps a hard link only between names
	// of one run). Errors are the function's to log; it returns none then.
	Links func(ino uint64, limit int) []string
	// Report receives the outcome of every run (status, metrics); may be nil.
	Report func(Run)
	// ReannounceEvery is how often a run that lasts is announced to the
	// peer again (DefaultReannounceEvery when 0): well within the peer's
	// hold of announced paths.
	ReannounceEvery time.Duration
	// Lstats, shared by a group's senders, lets one sender's plan of a
	// journal entry serve the others' plans of it; nil: each looks for
	// itself.
	Lstats *Lstats
	// Pushing, shared by a group's senders, holds back every sender's
	// next prepared client while any of them still pushes a short run;
	// nil: this sender's own runs only.
	Pushing *Pushing
	// Crossed, when set, journals paths again for every peer of the group
	// (and wakes their senders). A file that changed while a run sent it,
	// and that the index now holds as it is (the receiver recorded a
	// peer's version of it: two members wrote it at once), is handed to
	// it, so that every peer gets the version this member ended with: the
	// runs that carried this member's own version to other peers may have
	// ended before the other version arrived here, and left them with the
	// version that lost here. Nil: such a file goes again to this peer
	// alone, once the coalescer's longest hold has passed.
	Crossed func(paths []string) error
	// CrossedAfter is how long such a file must stay as the index holds it,
	// with no peer's run of it announced here (Incoming), before it goes to
	// Crossed: the agent staggers it by the member's place in the group, so
	// that two members that swapped their versions do not both send back
	// the version they received, at once, and swap them again.
	CrossedAfter time.Duration
	// Incoming reports whether a peer's run of path is announced here and
	// not yet confirmed (detect.Incoming.Has); nil: never.
	Incoming func(path string) bool
	// Carrying is Incoming for path itself, not a directory above it
	// (detect.Incoming.Carries); nil: never. See crossing.
	Carrying func(path string) bool
	// Log receives what the sender does.
	Log logr.Logger

	// Wake is signalled when entries were journaled; the engine owns it.
	// Start makes one when it is nil, in its own goroutine: whoever
	// signals it makes it before Start.
	Wake chan struct{}
	// RunContext, when set, is the context of the runs themselves: Start
	// stops taking work when its own context ends, and waits for the runs
	// in flight, which end with RunContext (the agent gives them a few
	// seconds to drain on SIGTERM).
	RunContext context.Context

	// dir is where rsync's clients run: the root held open (rsyncDir),
	// set by Start.
	dir string
	// transferring is what the runs in flight that report progress have
	// carried so far (Transferring).
	transferring atomic.Int64
	// implied orders the runs' file lists for the directories rsync sets
	// as implied parents.
	implied impliedDirs
	// overtaken are the paths of recent runs that renames logged while
	// they pushed may have taken elsewhere on the peer.
	overtaken overtaken
	// kept are the removals the peer refused as newer there.
	kept keptThere

	mu       sync.Mutex
	inflight *inflight
	// pushing are the paths of the runs past their replay (replayOrWait);
	// the runs' goroutines change it, under replayMu.
	pushing  *inflight
	replayMu sync.Mutex
	// live are the ids of the runs under way, from before their
	// announcement until they return, under replayMu: a replay names
	// them to the peer (peer.ReplayRequest.Live), which takes what
	// other unconfirmed runs of this member left there for this
	// member's.
	live map[string]bool
	// ended are the runs announced to the peer that ended unconfirmed and
	// that no announcement the peer took has named yet (endUnconfirmed),
	// under replayMu.
	ended    []string
	flights  map[int]flight // runs in flight by id (len: how many)
	flightID int
	held     map[string]hold // sends that changed during their run, and failing paths
	// scanAsked: when settleUnderFile last asked a scan of a file above
	// removed paths (askScanAbove).
	scanAsked map[string]time.Time
	failing   map[string]failure
	// The gate of Gather: when a Wake last came, when the first Wake after
	// a pause of Gather or more came, when the last run ended with none in
	// flight, and the journal's Seq when the last run started.
	lastWake, activeFrom, idleFrom time.Time
	startSeq                       uint64
}

// hold keeps an entry whose file changed while a run read it out of the
// next runs until the change is journaled (its Seq moves on: the writer
// closed it, and the detector found it finished) or until the coalescer's
// longest hold has passed, so that a file still being written is not sent
// again and again half-written.
type hold struct {
	seq   uint64
	until time.Time
	// changed: the file changed while a run sent it (holdChanged); it is
	// looked at again at checkAt, and crossedFrom is when it was first
	// found holding a peer's version (see releaseCrossed).
	changed              bool
	checkAt, crossedFrom time.Time
	// seen is what the file was at the last look, and quietFrom since
	// when it has been so, for a change that nothing journals (see
	// Sender.settled).
	seen      fileState
	quietFrom time.Time
}

// flight is one run in flight, for the lane rule.
type flight struct {
	start  time.Time
	bytes  int64
	large  bool // it carries a large file
	pushed bool // its rsync runs are over; it confirms and journals
	// pushing: the run's id in Sender.Pushing until it has pushed (0: not
	// counted).
	pushing int
}

// shortRunPushing reports whether a run that is not a long one is still
// in its rsync runs. The next run's client is prepared only once none is:
// its start (an rsync exec, a connection, the daemon's fork and
// authentication) costs the CPU the short run's own transfer waits for on
// a busy host. Beside a long run it is prepared at once, or a lone change
// would wait for a client's start while the large file goes.
func (s *Sender) shortRunPushing() bool {
	for _, f := range s.flights {
		if !f.pushed && !f.long(s.LaneBytes) {
			return true
		}
	}
	return false
}

// uncount takes a run out of Pushing once it has pushed (or ended).
func (s *Sender) uncount(f *flight) {
	if f.pushing != 0 {
		s.Pushing.end(f.pushing)
		f.pushing = 0
	}
}

// long reports whether the run is a long one by what it carries.
func (f flight) long(laneBytes int64) bool { return f.large || f.bytes >= laneBytes }

// Run is what one run did, for status and metrics.
type Run struct {
	Peer string
	Sent []journal.Entry // confirmed on the peer
	// Changed are sends that rsync confirmed but whose files changed while
	// the run read them, and deletions it confirmed whose paths are here
	// again: not confirmed, and held until their change is journaled or
	// found to be a peer's version (Sender.holdChanged).
	Changed []journal.Entry
	// Failures are the entries the run took and did not confirm (and that
	// did not change meanwhile), with rsync's reason where it gave one.
	Failures []Failure
	// Failing is how many paths this sender holds back after they failed
	// on the peer (see Sender.holdFailures), after this run.
	Failing int
	// Problems names up to 10 paths the run did not confirm, with why, and
	// the end of rsync's standard error when it failed.
	Problems []string
	// Exited says that an rsync process of the run exited; Code is then
	// the exit code of its worst (by Class). False when the run failed
	// before any rsync ran, or needed none (renames, kept deletes).
	Exited    bool
	Code      int
	Class     rsync.Class
	Err       error
	Bytes     int64
	Duration  time.Duration
	Remaining journal.PeerStats

	// peerFailed: a part of the run failed for the peer as a whole (it
	// could not be reached, refused us, or the run broke off: Retry or
	// FatalPeer with an error), so no run to it starts before the peer's
	// backoff. A run that went through but for some paths (fatal-file,
	// partial, or paths rsync did not confirm) is no failure of the peer:
	// only those paths wait (holdFailures), so that one file the peer
	// cannot take never holds back the others (lsyncd #678).
	peerFailed bool
	// reasons are rsync's outcome and message per unconfirmed path.
	reasons map[string]string
	// raced are the unconfirmed paths that changed here between the plan
	// and rsync's look at them (see Failure.Raced).
	raced map[string]bool
}

// rsyncRoot is where rsync's clients run: dir once Start has set it.
func (s *Sender) rsyncRoot() string {
	if s.dir != "" {
		return s.dir
	}
	return s.Root
}

// Start runs the sender until ctx ends.
func (s *Sender) Start(ctx context.Context) error {
	s.defaults()
	rootfd, err := beneath.OpenRoot(s.Root)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	s.dir = rsyncDir(s.Root, rootfd)
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.Client != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.hello(ctx)
		}()
	}
	l := newStartLoop(s.maxRuns())
	defer l.close()
	defer func() { // the other senders' prepared clients do not wait for these runs
		for _, f := range s.flights {
			s.uncount(&f)
		}
	}()
	for {
		var t turn
		s.releaseCrossed(rootfd, time.Now())
		pending := s.startRuns(ctx, rootfd, &wg, l, &t)
		s.prepareNext(l, &t, pending)
		if at, ok := s.nextLane(pending); ok {
			l.lane.Reset(time.Until(at))
			t.lane = l.lane.C
		}
		if at, ok := s.nextRelease(time.Now()); ok {
			l.holds.Reset(time.Until(at))
			t.hold = l.holds.C
		}
		if !s.await(ctx, rootfd, l, &t) {
			return nil
		}
	}
}

// startLoop is what Start keeps from one turn of its loop to the next.
type startLoop struct {
	// done and pushed are buffered for every run that may be in flight
	// (maxRuns), so that none blocks on done once Start stops reading; a
	// run never blocks on pushed.
	done    chan runDone
	pushed  chan int
	backoff time.Duration
	retry   <-chan time.Time // the peer's backoff after a failed run; nil when none
	warm    warmPool
	// The timers of a turn's waits (turn).
	lane, holds, gate, others *time.Timer
}

func newStartLoop(maxRuns int) *startLoop {
	return &startLoop{
		done:   make(chan runDone, maxRuns),
		pushed: make(chan int, maxRuns),
		lane:   time.NewTimer(time.Hour),
		holds:  time.NewTimer(time.Hour),
		gate:   time.NewTimer(time.Hour),
		others: time.NewTimer(time.Hour),
	}
}

// close stops l's timers and closes its prepared client.
func (l *startLoop) close() {
	l.others.Stop()
	l.gate.Stop()
	l.holds.Stop()
	l.lane.Stop()
	l.warm.close()
}

// turn is what one turn of Start's loop waits for, besides its runs and
// ctx: nil where it does not.
type turn struct {
	gate       <-chan time.Time // a gathering ends (Sender.gathering)
	idle       <-chan struct{}  // the other senders' short runs stop pushing (Pushing.busy)
	others     <-chan time.Time // ... or the longest they may take
	lane, hold <-chan time.Time // a lane opens (nextLane), a hold ends (nextRelease)
}

// startRuns starts a run for every batch that a lane is open for and that
// no gathering holds back (t.gate then), and returns how many files are
// pending for the peer after them.
func (s *Sender) startRuns(ctx context.Context, rootfd int, wg *sync.WaitGroup, l *startLoop, t *turn) (pending int64) {
	stats := s.Journal.Stats(s.Peer)
	pending = stats.Files
	for l.retry == nil && s.laneOpen(time.Now(), pending) {
		seq := s.Journal.Seq()
		if at, wait := s.gathering(time.Now(), seq, pending, stats.Bytes); wait {
			l.gate.Reset(time.Until(at))
			t.gate = l.gate.C
			break
		}
		b, ok := s.next(rootfd)
		if !ok {
			break
		}
		s.startRun(ctx, rootfd, wg, l, b, seq)
		stats = s.Journal.Stats(s.Peer)
		pending = stats.Files
	}
	return pending
}

// startRun starts a run of b, planned at the journal's seq, in flight
// until it reports on l.done.
func (s *Sender) startRun(ctx context.Context, rootfd int, wg *sync.WaitGroup, l *startLoop, b batch, seq uint64) {
	s.startSeq = seq
	s.flightID++
	id := s.flightID
	large := b.large()
	f := flight{start: time.Now(), bytes: b.bytes, large: large}
	if s.Pushing != nil {
		f.pushing = s.Pushing.begin(f.start, !f.long(s.LaneBytes))
	}
	s.flights[id] = f
	runCtx := ctx
	if s.RunContext != nil {
		runCtx = s.RunContext
	}
	var w *rsync.Warm
	if len(b.sends) > 0 && !large {
		w = l.warm.take()
	}
	hasPushed := func() {
		select {
		case l.pushed <- id:
		default: // full of ids that Start no longer reads: the run keeps its lane
		}
	}
	pushing := f.pushing
	wg.Go(func() { l.done <- runDone{id: id, b: b, r: s.run(runCtx, rootfd, b, w, hasPushed, pushing)} })
}

// prepareNext prepares a client for the next run when none is and no work
// is coming, unless the other senders' short runs are pushing: then the
// turn waits for them (t.idle, t.others).
func (s *Sender) prepareNext(l *startLoop, t *turn, pending int64) {
	if l.retry == nil && l.warm.w == nil && !s.shortRunPushing() && !s.workComing(pending) {
		now := time.Now()
		if c, until, busy := s.Pushing.busy(now, s.LaneAfter); busy {
			t.idle = c
			l.others.Reset(until.Sub(now))
			t.others = l.others.C
		} else {
			l.warm.prepare(s) // for the next run
		}
	}
}

// await waits for what the turn t waits for, a run's progress or end, a
// wake-up, or ctx's end, and takes it; false when ctx ended.
func (s *Sender) await(ctx context.Context, rootfd int, l *startLoop, t *turn) bool {
	select {
	case <-ctx.Done():
		return false
	case <-s.Wake:
		now := time.Now()
		if now.Sub(s.lastWake) >= s.Gather {
			s.activeFrom = now
		}
		s.lastWake = now
	case <-t.gate:
	case <-t.lane:
	case <-t.hold:
	case <-l.retry:
		l.retry = nil
	case <-t.idle:
	case <-t.others:
	case <-l.warm.expired():
		l.warm.close()
	case id := <-l.pushed:
		if f, ok := s.flights[id]; ok {
			f.pushed = true
			s.uncount(&f)
			s.flights[id] = f
		}
	case d := <-l.done:
		if f, ok := s.flights[d.id]; ok {
			s.uncount(&f)
		}
		delete(s.flights, d.id)
		if len(s.flights) == 0 {
			s.idleFrom = time.Now()
		}
		if l.backoff = s.runEnded(rootfd, d, l.backoff); d.r.peerFailed {
			l.retry = time.After(l.backoff)
		}
	}
	return true
}

// runEnded takes the outcome of a run that ended, d: its batch is finished,
// what changed while it ran is held, and its failures are held or
// forgotten. It returns the backoff before the next run: the next step of
// backoff when the peer failed the run (d.r.peerFailed), else 0.
func (s *Sender) runEnded(rootfd int, d runDone, backoff time.Duration) time.Duration {
	s.finish(d.b)
	s.holdChanged(rootfd, d.r.Changed)
	s.forgetFailures(d.r.Sent)
	if d.r.peerFailed {
		backoff = nextBackoff(backoff, s.Backoff, s.BackoffCap)
		s.Log.Info("run to peer failed; backing off", "exit", d.r.Code, "class", d.r.Class.String(), "wait", backoff.String(),
			"error", d.r.Err, "paths", d.r.Problems)
	} else {
		backoff = 0
		if len(d.r.Failures) > 0 {
			s.holdFailures(d.r.Failures, time.Now())
			s.Log.Info("paths failed on the peer; each is retried with its own backoff, the others go on",
				"exit", d.r.Code, "class", d.r.Class.String(), "failed", len(d.r.Failures), "failing", len(s.failing),
				"error", d.r.Err, "paths", d.r.Problems)
		}
		s.Log.V(1).Info("run done", "files", len(d.r.Sent), "bytes", d.r.Bytes, "took", d.r.Duration.String())
	}
	d.r.Failing = len(s.failing)
	if s.Report != nil {
		d.r.Remaining = s.Journal.Stats(s.Peer)
		s.Report(d.r)
	}
	return backoff
}

// workComing reports whether a run is about to take work: changes are
// still being journaled (a burst), or entries wait that are neither in a
// run nor held back by their failures' backoff. No client is prepared
// then: a burst's run starts a client of its own (until the twenty-ninth
// session it read its list on the peer), and a prepared client started
// during the writes took CPU
// that the writes and the burst's first run waited for, to wait itself
// until the burst was over (perf record -a over a burst: 3 prepared
// clients and their daemons' forks, docs/benchmarks.md, the twentieth
// session). The next client is prepared once the work is taken.
func (s *Sender) workComing(pending int64) bool {
	if s.Journaling != nil && s.Journaling() {
		return true
	}
	return pending-int64(s.inflight.len())-int64(len(s.failing)) > 0
}

// Failure is an entry a run did not confirm.
type Failure struct {
	Entry  journal.Entry
	Reason string // rsync's outcome and message for the path; empty when it named none
	// Raced: the path changed here between the plan and rsync's look at
	// it: a send found it gone (rsync.Vanished), a delete found it there
	// again (rsync.Present). No fault of the peer's, and nothing that
	// waiting longer mends: the next plan sorts it by what is here then.
	Raced bool
}

// failure is a path that failed on the peer, held back with its own
// backoff: wait doubles with each failure, from Backoff up to BackoffCap.
type failure struct {
	wait time.Duration
}

type runDone struct {
	id int
	b  batch
	r  Run
}

// skip is the journal filter of next: paths in flight and held entries.
func (s *Sender) skip(e journal.Entry) bool {
	if s.inflight.overlaps(e.Path) {
		return true
	}
	h, ok := s.held[e.Path]
	if !ok {
		return false
	}
	if h.seq == e.Seq && time.Now().Before(h.until) {
		return true
	}
	delete(s.held, e.Path)
	return false
}

// holdChanged holds the entries of a run whose files changed while it ran
// (Run.Changed), until their change is journaled or found to be a peer's
// version. One whose path is gone here, and that no peer is sending here
// (Incoming: its version would land here), is not held: it went with a
// rename or removal of a directory above it, which journals nothing under
// its own path to end the hold, and nothing is being written there. Held, it
// stayed pending for the whole hold (RANDOM_OPS_LIVE seeds 47 and 74: the
// file sent, then its directory renamed away); planned again now, it is
// deleted on the peer or found moved with that rename.
func (s *Sender) holdChanged(rootfd int, changed []journal.Entry) {
	now := time.Now()
	until := now.Add(change.DefaultMaxHold)
	for _, e := range changed {
		if goneHere(rootfd, e.Path) && (s.Incoming == nil || !s.Incoming(e.Path)) {
			continue
		}
		s.held[e.Path] = hold{seq: e.Seq, until: until, changed: true, checkAt: now}
	}
}

// goneHere reports whether p does not exist here (ENOENT, or ENOTDIR: a
// file above it).
func goneHere(rootfd int, p string) bool {
	var st unix.Stat_t
	err := beneath.Lstat(rootfd, p, &st)
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// crossedCheck is how often a held file that changed during its run is
// looked at for a peer's version (releaseCrossed).
const crossedCheck = 100 * time.Millisecond

// releaseCrossed hands to Crossed the held files that changed during their
// run and that the index now holds as they are, their entries not
// journaled again since: no change of this member's own is on its way (a
// write journaled moves the entry's Seq on, and one not journaled yet
// differs from the index), so what changed them was a peer's version,
// which the receiver recorded. Each goes once it has stayed so, with no
// peer's run of it announced here, for CrossedAfter. Its hold then ends
// with the entry that Crossed journals (a new Seq). A held file that the
// index does not hold as it is, and that has settled with nothing
// journaled (Sender.settled), is released to go again to this peer.
func (s *Sender) releaseCrossed(rootfd int, now time.Time) {
	if s.Crossed == nil {
		return
	}
	var ready, settled []string
	for p, h := range s.held {
		if !h.changed || now.Before(h.checkAt) || !now.Before(h.until) {
			continue
		}
		switch s.lookCrossed(rootfd, p, &h, now) {
		case crossedSettled:
			delete(s.held, p)
			settled = append(settled, p)
			continue
		case crossedReady:
			ready = append(ready, p)
		}
		s.held[p] = h
	}
	if len(settled) > 0 {
		slices.Sort(settled)
		s.Log.V(1).Info("files that changed while they were sent are settled with no change journaled; they go again", "paths", settled[:min(len(settled), 20)])
	}
	if len(ready) == 0 {
		return
	}
	slices.Sort(ready)
	if err := s.Crossed(ready); err != nil {
		s.Log.Error(err, "cannot journal files written here and by a peer at once for every peer; they go to this peer once their hold ends", "paths", len(ready))
		return
	}
	s.Log.Info("files written here and by a peer at once hold the peer's version here now; it goes to every peer", "paths", ready)
}

// crossedVerdict is what lookCrossed makes of a held file.
type crossedVerdict int

const (
	crossedHeld    crossedVerdict = iota // held on (h says when to look again)
	crossedSettled                       // released to go again to this peer
	crossedReady                         // the peer's version, for Crossed
)

// lookCrossed looks at p, a held file that changed during its run (h, which
// it updates), for releaseCrossed.
func (s *Sender) lookCrossed(rootfd int, p string, h *hold, now time.Time) crossedVerdict {
	h.checkAt = now.Add(crossedCheck)
	if e, ok, err := s.Journal.Entry(s.Peer, p); err == nil && (!ok || e.Seq != h.seq) {
		// Journaled since (a write of this member's own, which goes
		// to every peer), or confirmed: nothing crossed.
		h.changed = false
		return crossedHeld
	}
	recorded, err := s.Journal.Recorded(rootfd, p)
	incoming := s.Incoming != nil && s.Incoming(p)
	if err == nil && !recorded && !incoming && s.settled(rootfd, p, h, now) {
		return crossedSettled
	}
	switch {
	case err != nil || !recorded || incoming:
		h.crossedFrom = time.Time{}
	case h.crossedFrom.IsZero():
		h.crossedFrom = now
		h.checkAt = now.Add(min(s.CrossedAfter, crossedCheck))
	}
	if !h.crossedFrom.IsZero() && !now.Before(h.crossedFrom.Add(s.CrossedAfter)) {
		h.changed = false // journaled again, or held to its end
		return crossedReady
	}
	return crossedHeld
}

// settledAfter is how long a held file that changed during its run must
// stay as it is, with no write under way here, before it goes again
// although nothing journaled its change (Sender.settled).
const settledAfter = 2 * crossedCheck

// settled reports whether p, held as changed during its run (h), has stayed
// as it is for settledAfter and nothing is being written here now (no write
// under way, nothing on its way to the journal: writingHere, asked only
// then), and notes what it is now in h. Such a change
// is one no event of p's own journals, and its hold would last until
// change.DefaultMaxHold: a name of the file made and removed again
// elsewhere (ln f h; rm h) during the run moves its ctime and leaves its
// link count as it was (fileState.same), and the journal records h, not f.
// Held, f stayed pending for 30 s, and the receiver refused every replayed
// removal of a directory above it meanwhile, as a change of this member's
// own not sent yet (journal.Journal.PendingAt): a tree the writer removed
// stayed on this member for good (the stress test, seed 326 of the
// fifty-second session: f29 linked and the link removed while a run sent
// it, the next phase's writer removing d0 five seconds later). Released,
// it goes again at once: what it holds is this member's.
//
// It is the caller's to check that the index does not hold p as it is (a
// peer's version, which releaseCrossed hands on) and that no peer's run
// of it is announced.
func (s *Sender) settled(rootfd int, p string, h *hold, now time.Time) bool {
	var st unix.Stat_t
	if beneath.Lstat(rootfd, p, &st) != nil {
		h.quietFrom = time.Time{} // its removal, or a rename above it, is journaled
		return false
	}
	if f := stateOf(&st); h.quietFrom.IsZero() || f != h.seen {
		h.seen, h.quietFrom = f, now
		return false
	}
	return !now.Before(h.quietFrom.Add(settledAfter)) && !s.writingHere()
}

// writingHere reports whether a write is under way here (Writing) or
// changes are on their way to the journal (Coming).
func (s *Sender) writingHere() bool {
	return s.Writing != nil && !s.Writing().IsZero() || s.Coming != nil && s.Coming()
}

// nextBackoff is the wait after another failure: first, then doubled at
// each failure, never above limit (a peer down for an hour is tried again
// at least every limit, and catches up within one limit of its return).
func nextBackoff(prev, first, limit time.Duration) time.Duration {
	return min(max(prev*2, first), limit)
}

// holdFailures holds each failed entry back for its own backoff, doubled
// at each failure of its path from Backoff up to BackoffCap. A new change
// of the path (its Seq moves on) releases it at once.
//
// A raced entry (Failure.Raced) is held for Backoff only, however often
// its path raced before, and its path's backoff stays as it was. Its path
// changed here under the run, and not always by a change of this member's
// own, which would release it: a peer's version that arrived (the receiver
// journals nothing for it), or a peer's deletion. Doubled, a path that
// crossed a few times in a burst of writes from every member waited 13 s
// or more before its next run, while the peer kept a file that every other
// member had removed (TestStandalone_MixedChangesCrossingEndIdentical).
func (s *Sender) holdFailures(fs []Failure, now time.Time) {
	for _, f := range fs {
		p := f.Entry.Path
		if f.Raced {
			s.held[p] = hold{seq: f.Entry.Seq, until: now.Add(s.Backoff)}
			continue
		}
		wait := nextBackoff(s.failing[p].wait, s.Backoff, s.BackoffCap)
		s.failing[p] = failure{wait: wait}
		s.held[p] = hold{seq: f.Entry.Seq, until: now.Add(wait)}
	}
}

// forgetFailures clears the backoff of paths that went through.
func (s *Sender) forgetFailures(sent []journal.Entry) {
	if len(s.failing) == 0 {
		return
	}
	for _, e := range sent {
		delete(s.failing, e.Path)
	}
}

// nextRelease returns when the first hold ends by time, and forgets the
// holds that ended (their entries are taken again by next).
func (s *Sender) nextRelease(now time.Time) (time.Time, bool) {
	var first time.Time
	for p, h := range s.held {
		at := h.until
		if h.changed && s.Crossed != nil && h.checkAt.Before(at) {
			at = h.checkAt
		}
		switch {
		case !h.until.After(now):
			delete(s.held, p)
		case first.IsZero() || at.Before(first):
			first = at
		}
	}
	return first, !first.IsZero()
}

// laneOpen reports whether a run may start now (see Lanes); pending is
// the peer's pending files.
func (s *Sender) laneOpen(now time.Time, pending int64) bool {
	lanes, shortUntil := s.lanes(pending)
	return lanes < s.Lanes && len(s.flights) < s.maxRuns() && !shortUntil.After(now)
}

// nextLane returns when a closed lane opens by time alone: when the last
// of the short runs that hold a lane becomes a long one.
func (s *Sender) nextLane(pending int64) (time.Time, bool) {
	lanes, shortUntil := s.lanes(pending)
	if lanes == 0 || lanes >= s.Lanes || len(s.flights) >= s.maxRuns() || !shortUntil.After(time.Now()) {
		return time.Time{}, false // open already, no short run, or only a run's end opens it
	}
	return shortUntil, true
}

// lanes returns how many runs in flight hold a lane, and until when the
// youngest short one among them stays short (zero without one).
func (s *Sender) lanes(pending int64) (n int, shortUntil time.Time) {
	for _, f := range s.flights {
		if !f.holdsLane(pending) {
			continue
		}
		n++
		if !f.long(s.LaneBytes) {
			shortUntil = later(shortUntil, f.start.Add(s.LaneAfter))
		}
	}
	return n, shortUntil
}

// maxRuns bounds the runs in flight, those that only confirm included.
func (s *Sender) maxRuns() int { return 2 * s.Lanes }

// holdsLane reports whether the run keeps another from starting beside
// it (see Lanes).
func (f flight) holdsLane(pending int64) bool { return !f.pushed || pending >= gatherAfter }

// gathering reports whether the next run waits for more of a burst (see
// Gather), and until when at most; seq is the journal's Seq, pending and
// pendingBytes the peer's pending files and their bytes now.
//
// A burst that comes at rest (no run has ended since its first change,
// which came Gather or more after the wake before it: activeFrom) waits
// in the same way once gatherAfter changes or more are pending, for at
// most Gather from that first change: its first changes went in a run of
// their own, whose connections, confirmation and commits took the CPU
// that the writes and the burst's run waited for (docs/benchmarks.md, the
// twenty-second session). A change that comes alone still goes at once.
func (s *Sender) gathering(now time.Time, seq uint64, pending, pendingBytes int64) (time.Time, bool) {
	if len(s.flights) > 0 {
		return time.Time{}, false
	}
	var end time.Time
	if !s.idleFrom.IsZero() && s.idleFrom.After(s.activeFrom) {
		if seq-s.startSeq < gatherAfter {
			return time.Time{}, false
		}
		end = s.idleFrom.Add(s.Gather)
	} else {
		if pending < gatherAfter {
			return s.moreComing(now, pending)
		}
		end = s.activeFrom.Add(s.Gather)
	}
	journaling := s.Journaling != nil && s.Journaling()
	last := s.lastWake
	if journaling {
		last = now
	}
	quiet := last.Add(s.pauseThatEnds(journaling, pendingBytes))
	if !now.Before(end) || !now.Before(quiet) || pending >= int64(s.BatchFiles) {
		return time.Time{}, false
	}
	if quiet.Before(end) {
		end = quiet
	}
	return end, true
}

// pauseThatEnds is how long the journal must be quiet to end a gathering:
// Quiet; a fifth of it once the transfer's bytes, not its connections,
// take the time (pendingBytes of 16 MiB or more; 100 x 1 MiB: the writes
// end and the run starts 10 ms later, not 50); burstOverQuiet at most
// once the burst is over as far as this host can see (nothingMoreSeen,
// with nothing being journaled): the pause need only outlast the gap
// between one file's close and the next one's first event.
func (s *Sender) pauseThatEnds(journaling bool, pendingBytes int64) time.Duration {
	q := s.Quiet
	if pendingBytes >= quickGatherBytes {
		q /= 5
	}
	if !journaling && s.nothingMoreSeen() {
		q = min(q, burstOverQuiet)
	}
	return q
}

// nothingMoreSeen reports that no change is on its way to the journal and
// no write is under way here (Coming, Writing): a burst is over as far as
// this host can see. False where either is not known.
func (s *Sender) nothingMoreSeen() bool {
	if s.Coming == nil || s.Writing == nil {
		return false
	}
	return !s.Coming() && s.Writing().IsZero()
}

// moreComing reports whether a few changes at rest wait for more, and
// until when at most: a write under way (writeUnderWay), or changes on
// their way to the journal (Coming), for WriteWait from the first change;
// never past Gather from it.
func (s *Sender) moreComing(now time.Time, pending int64) (time.Time, bool) {
	if pending == 0 {
		return time.Time{}, false
	}
	if at, wait := s.writeUnderWay(now); wait {
		return at, true
	}
	if s.Coming == nil || !s.Coming() {
		return time.Time{}, false
	}
	return s.atRestUntil(now, s.activeFrom.Add(s.WriteWait))
}

// writeUnderWay reports whether a write under way keeps a few changes at
// rest from going (see Writing), and until when at most: WriteWait from
// the write's start, and never past Gather from the first change.
func (s *Sender) writeUnderWay(now time.Time) (time.Time, bool) {
	if s.Writing == nil {
		return time.Time{}, false
	}
	began := s.Writing()
	if began.IsZero() {
		return time.Time{}, false
	}
	return s.atRestUntil(now, began.Add(s.WriteWait))
}

// atRestUntil reports whether a wait at rest until end lasts past now,
// and until when: end, but never past Gather from the first change.
func (s *Sender) atRestUntil(now, end time.Time) (time.Time, bool) {
	if bound := s.activeFrom.Add(s.Gather); bound.Before(end) {
		end = bound
	}
	if !now.Before(end) {
		return time.Time{}, false
	}
	return end, true
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// replayed returns Replayed(), nil without it.
func (s *Sender) replayed() []peer.ReplayPos {
	if s.Replayed == nil {
		return nil
	}
	return s.Replayed()
}

// orDefault sets *v to def when it is not positive (unset).
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func (s *Sender) defaults() {
	if s.Lanes < 2 {
		s.Lanes = DefaultLanes
	}
	orDefault(&s.LaneBytes, DefaultLaneBytes)
	orDefault(&s.LaneAfter, DefaultLaneAfter)
	orDefault(&s.Gather, DefaultGather)
	orDefault(&s.Quiet, DefaultQuiet)
	orDefault(&s.WriteWait, DefaultWriteWait)
	orDefault(&s.BatchFiles, DefaultBatchFiles)
	orDefault(&s.BatchBytes, DefaultBatchBytes)
	orDefault(&s.Backoff, DefaultBackoff)
	orDefault(&s.BackoffCap, DefaultBackoffCap)
	s.flights = make(map[int]flight)
	s.held = make(map[string]hold)
	s.failing = make(map[string]failure)
	if s.Wake == nil {
		s.Wake = make(chan struct{}, 1)
	}
	s.inflight = newInflight()
	s.pushing = newInflight()
}

// next takes the oldest entries not in flight into a batch and marks them
// in flight. A large file goes alone, so that it occupies one lane and the
// other keeps moving small files.
func (s *Sender) next(rootfd int) (batch, bool) {
	// Entries that wait are held (and skipped by the journal): the
	// entries behind them may make a batch at once. Bounded by the
	// batches the journal holds, in case holds expire meanwhile.
	for range 2 + s.Journal.Stats(s.Peer).Files/int64(s.BatchFiles) {
		b, waited := s.take(rootfd)
		if !b.empty() || !waited {
			return b, !b.empty()
		}
	}
	// Everything pending waits (for a run, a file to settle):
	// planned again once the holds end. Said, so that a wait that never
	// ends shows (the stress test once saw one, docs/design.md).
	s.Log.V(1).Info("every pending path waits; planned again shortly", "pending", s.Journal.Stats(s.Peer).Files,
		"held", len(s.held))
	return batch{}, false
}

// take is next once: waited reports entries it left waiting or held
// (unreadable), so that next takes the entries behind them.
func (s *Sender) take(rootfd int) (b batch, waited bool) {
	entries, err := s.Journal.Next(s.Peer, s.BatchFiles, s.skip)
	if err != nil {
		s.Log.Error(err, "read journal", "peer", s.Peer)
		return batch{}, false
	}
	if len(entries) == 0 {
		return batch{}, false
	}
	n := 0 // the entries picked: a prefix of entries
	var bytes int64
	for _, e := range entries {
		if n > 0 && (bytes+e.Size > s.BatchBytes || e.Size >= largeFileThreshold) {
			break
		}
		n++
		bytes += e.Size
		if e.Size >= largeFileThreshold {
			break
		}
	}
	b = s.Lstats.plan(rootfd, asPaths(entries[:n]))
	if len(b.unlisted) > 0 {
		s.Log.Info("paths not sent: they leave the data root or cannot be read", "paths", b.unlisted)
	}
	if s.KeepDeletes {
		b.covered = slices.Concat(b.covered, b.deletes, b.underFile)
		b.deletes, b.underFile = nil, nil
	}
	s.takeFilesAbove(rootfd, &b)
	// Before the batch's own paths are in flight, so that a name below or
	// above one of them is not taken for another run's.
	s.addLinks(rootfd, &b)
	s.settleUnderFile(rootfd, &b)
	s.wait(b.waiting, time.Now()) // what settleUnderFile left waiting
	s.holdFailures(b.unreadable, time.Now())
	b.eachPath(func(p string) { b.inFlight = append(b.inFlight, p) })
	for _, p := range b.inFlight {
		s.inflight.add(p)
	}
	return b, len(b.waiting) > 0 || len(b.unreadable) > 0
}

// waitAgain is how long an entry that waits (batch.waiting) is held
// before it is planned again.
const waitAgain = 250 * time.Millisecond

// wait holds entries that wait for another run or for a file to settle
// (batch.waiting) for waitAgain, or until they are journaled again.
func (s *Sender) wait(entries []journal.Entry, now time.Time) {
	for _, e := range entries {
		s.held[e.Path] = hold{seq: e.Seq, until: now.Add(waitAgain)}
	}
}

// settleUnderFile decides b's underFile entries, removed paths below a
// file here (see batch.underFile), by that file (the file above):
//   - sent in this batch by its own entry: confirmed with it (the run
//     replaces the peer's directory with the file, --force);
//   - a non-directory on the peer already (journal.ReplacedOn: its change
//     from a directory confirmed there): confirmed without a run
//     (replacedBefore);
//   - otherwise (in flight in another run, pending, or still being
//     written here) they wait: pushing the file here would send it
//     unfinished, or put it in two runs at once. Where nothing of it is
//     pending nor in flight, the index holds no state of it that says
//     what the peer holds (askScanAbove).
func (s *Sender) settleUnderFile(rootfd int, b *batch) {
	if len(b.underFile) == 0 {
		return
	}
	inBatch := pathSet(b.sends)
	const (
		waits = iota
		withTheRun
		before
	)
	how := make(map[string]int)
	var keep []journal.Entry
	for _, e := range b.underFile {
		above := b.fileAbove[e.Path]
		h, ok := how[above]
		if !ok {
			switch {
			case inBatch[above]:
				h = withTheRun
			case s.inflight.overlaps(above):
				h = waits
			default:
				replaced, err := s.Journal.ReplacedOn(rootfd, s.Peer, above)
				if err != nil {
					s.Log.V(1).Info("removed paths below a file wait", "error", err)
				}
				if replaced {
					h = before
				} else {
					s.askScanAbove(above, time.Now())
				}
			}
			how[above] = h
		}
		switch h {
		case withTheRun:
			keep = append(keep, e)
		case before:
			b.replacedBefore = append(b.replacedBefore, e)
		default:
			b.waiting = append(b.waiting, e)
		}
	}
	b.underFile = keep
}

// scanAskedEvery bounds how often askScanAbove asks a scan of one path.
const scanAskedEvery = 5 * time.Second

// askScanAbove asks a scan of above, a file here above removed paths that
// wait (settleUnderFile) with nothing of it pending for this peer nor in
// flight to it: the index holds no state of it, or not this file's (a
// Moved entry left by a rename of a directory above it, which a scan of
// the new tree was to replace; a name not in the index). Nothing would
// ever send it, and the removals below it waited for good, holding every
// anti-entropy compare of the group (the stress test, Crossing seed 19 of
// the sixty-fourth session: a Moved entry of a file that every member
// held alike). The scan finds it differing from the index, journals it,
// and its push confirms the removals below it (takeFilesAbove).
func (s *Sender) askScanAbove(above string, now time.Time) {
	if s.Rescan == nil {
		return
	}
	if _, ok, err := s.Journal.Entry(s.Peer, above); err != nil || ok {
		return // pending: takeFilesAbove takes it once it may go
	}
	if at, ok := s.scanAsked[above]; ok && now.Sub(at) < scanAskedEvery {
		return
	}
	if s.scanAsked == nil || len(s.scanAsked) > 4096 {
		s.scanAsked = make(map[string]time.Time)
	}
	s.scanAsked[above] = now
	s.Log.V(1).Info("removed paths wait for a file above them that the index holds no state of; asked a scan of it", "path", above)
	s.Rescan(above)
}

// finish takes a run's paths out of flight: those its batch put there when
// it was taken (batch.inFlight).
func (s *Sender) finish(b batch) {
	for _, p := range b.inFlight {
		s.inflight.remove(p)
	}
}

// takeFilesAbove adds to b the pending entries of the files above its
// underFile entries (see batch.underFile) that are not in it, unless they
// are in flight or held: the file's own run then confirms the deletions
// below it. Without this a tree larger than a batch, removed before its
// directory became a file, would wait for the file's entry, which comes
// after it in the journal.
func (s *Sender) takeFilesAbove(rootfd int, b *batch) {
	if len(b.underFile) == 0 {
		return
	}
	listed := pathSet(b.sends)
	for _, e := range b.underFile {
		above := b.fileAbove[e.Path]
		if listed[above] {
			continue
		}
		listed[above] = true
		own, ok, err := s.Journal.Entry(s.Peer, above)
		if err != nil {
			s.Log.V(1).Info("the file above removed paths is not taken", "path", above, "error", err)
			continue
		}
		if !ok || s.skip(own) {
			continue
		}
		var st unix.Stat_t
		if beneath.Lstat(rootfd, above, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			b.send(own, &st)
		}
	}
}

// addLinks adds to b the other names of its hard-linked files (b.linked):
// those the lookup lists that are still the same file here (lstat beneath
// the root: same device and inode) and are not already in b. A path is in
// at most one run to a peer at a time: a file with such a name in another
// run to this peer (or a directory above or below it there) waits instead.
// Its entry is taken out of b, stays in the journal, and is planned again
// once that run is done, so that all its names still go in one run.
//
// Every other name of a file goes in its run, however many (rsync -H links
// only the names one run lists: a name left out stays a file of its own on
// the peer, and nothing would send it again). MaxLinkNames bounds what the
// files after the first add: a file whose names would take the run past it
// waits the same way, for a run of its own, so that a run takes at least
// its first linked file whole. Until the twenty-ninth session the bound cut
// names instead, and those stayed separate files on the peer for good.
func (s *Sender) addLinks(rootfd int, b *batch) {
	if s.Links == nil || len(b.linked) == 0 {
		return
	}
	listed := make(map[string]bool, len(b.sends)+len(b.deletes)+len(b.covered))
	for _, e := range b.entries() {
		listed[e.Path] = true
	}
	done := make(map[inode]bool, len(b.linked))
	wait := make(map[inode]bool)
	later := 0
	for _, f := range b.linked {
		if done[f.id] {
			continue
		}
		done[f.id] = true
		names, busy := s.otherNames(rootfd, f, listed)
		if busy {
			wait[f.id] = true
			continue
		}
		if len(names) > 0 && len(b.links) > 0 && len(b.links)+len(names) > MaxLinkNames {
			wait[f.id] = true
			later++
			continue
		}
		for _, name := range names {
			listed[name] = true
			b.links = append(b.links, name)
			if b.linkIDs == nil {
				b.linkIDs = make(map[string]inode)
			}
			b.linkIDs[name] = f.id
		}
	}
	if len(wait) > 0 {
		s.holdLinked(b, wait, later)
	}
}

// otherNames returns the names of the linked file f that are not listed
// yet and are still f here (same device and inode, reachable beneath the
// root); busy when one of them is in another run to the peer (or a
// directory above or below it is), and f must wait.
func (s *Sender) otherNames(rootfd int, f linkedFile, listed map[string]bool) (names []string, busy bool) {
	for _, name := range s.Links(f.id.ino, 0) {
		if listed[name] {
			continue
		}
		var st unix.Stat_t
		if beneath.Lstat(rootfd, name, &st) != nil || uint64(st.Dev) != f.id.dev || uint64(st.Ino) != f.id.ino {
			continue // gone, replaced, or not reachable beneath the root
		}
		if s.inflight.overlaps(name) {
			return nil, true
		}
		names = append(names, name)
	}
	return names, false
}

// holdLinked takes the linked files of b whose inode waits out of its
// sends (they stay in the journal for a later run); later of them wait for
// the run's bound on other names.
func (s *Sender) holdLinked(b *batch, wait map[inode]bool, later int) {
	waiting := make(map[string]bool)
	for _, f := range b.linked {
		if wait[f.id] {
			waiting[f.path] = true
			b.bytes -= f.size
		}
	}
	waits := func(e journal.Entry) bool { return waiting[e.Path] }
	b.sends = slices.DeleteFunc(b.sends, waits)
	s.Log.V(1).Info("hard links: files wait for a later run, for another run that holds one of their names or for the run's bound on other names",
		"files", len(waiting), "past the bound", later, "bound", MaxLinkNames)
}

// crossing adds to changed those of paths that a peer's run announced here
// is carrying at the end of this run: another member's version (or
// deletion) is on its way to every member, this one included, and may
// land on this run's peer before this run's did, and here after the
// re-check. The peer would then keep what this run brought and this member
// the other's version: held as changed, the path goes again once it is
// settled here (releaseCrossed, after that run is confirmed). Rare outside
// crossing writes: a path written on two members at once. Only a run of
// the path itself counts (Carrying): a peer's run of its directory, whose
// times change with every file made in it, would otherwise send every file
// that two members write side by side in one directory to every peer
// again, and once more by checksum (Crossed journals it as written, and
// the quick check finds it unchanged).
func (s *Sender) crossing(changed map[string]bool, paths []string) map[string]bool {
	if s.Carrying == nil {
		return changed
	}
	for _, p := range paths {
		if changed[p] || !s.Carrying(p) {
			continue
		}
		if changed == nil {
			changed = make(map[string]bool)
		}
		changed[p] = true
	}
	return changed
}

// confirmRetry is the first wait before a failed confirmation is tried
// again (then 4 times as long, once more).
const confirmRetry = 100 * time.Millisecond

// sleep waits for d, or returns ctx's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// hello tells the peer this member's boot (peer.Client.Hello) until the
// peer has heard it, backing off as runs do: the peer settles at once
// the runs of this member's earlier life that died unconfirmed, whose
// paths it would otherwise hold (receiver.Receiver.settle) until this
// member's next run, which may not come for long.
func (s *Sender) hello(ctx context.Context) {
	wait := s.Backoff
	for {
		err := s.Client.Hello(ctx, s.Endpoint, s.Group)
		if err == nil {
			return
		}
		s.Log.V(1).Info("telling the peer this member's boot failed; trying again", "wait", wait.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, s.BackoffCap)
	}
}

// confirmAfterStop bounds the confirmation to the peer of a run whose
// context ended (the agent's drain on SIGTERM), before or during it: with
// the drain (6 s) and rsync's kill grace it stays within the 10 s the
// agent has to exit.
const confirmAfterStop = time.Second

// announceWhileRunning announces the run's paths to the peer again every
// ReannounceEvery until the returned function is called, so that a run
// that lasts (a large file at a bandwidth limit) keeps its paths held on
// the peer (detect.Incoming's TTL, 10 minutes): released early, the
// arriving file would read there as a change of the peer's own and be
// sent back. A failed announcement is logged; the next one may go through.
func (s *Sender) announceWhileRunning(ctx context.Context, runID string, paths []string) func() {
	if s.Client == nil {
		return func() {}
	}
	every := s.ReannounceEvery
	if every <= 0 {
		every = DefaultReannounceEvery
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.Client.Incoming(ctx, s.Endpoint, s.Group, runID, paths, nil, s.replayed()); err != nil && ctx.Err() == nil {
					s.Log.Info("announcing a long run again failed", "error", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// Transferring is how many bytes of their files the runs in flight have
// carried to the peer so far, as rsync reports it (--info=progress2),
// until each run's entries are done in the journal. Only runs that carry a
// large file report progress: a run of small files ends within moments,
// and its progress lines would cost the burst. Safe for concurrent use.
func (s *Sender) Transferring() int64 { return s.transferring.Load() }

// failures are the journal entries neither confirmed (done) nor changed
// during the run, with rsync's reason for each where it gave one; each
// once.
func failures(entries, done, changed []journal.Entry, reasons map[string]string, raced map[string]bool) []Failure {
	settled := make(map[string]bool, len(done)+len(changed))
	for _, e := range slices.Concat(done, changed) {
		settled[e.Path] = true
	}
	var out []Failure
	for _, e := range entries {
		if settled[e.Path] {
			continue
		}
		settled[e.Path] = true
		out = append(out, Failure{Entry: e, Reason: reasons[e.Path], Raced: raced[e.Path]})
	}
	return out
}

// runOptions are the rsync options of b's runs. Only a run that carries a
// large file keeps what an interrupted transfer received (--partial-dir),
// so that the next attempt resumes it; for small files the partial
// directory only costs the receiver a lookup per file (a quarter of the
// daemon's CPU on a burst of 4 KiB files, measured), and an interrupted
// small file is cheaper to send again. A partial file that no later run
// picks up stays in the peer's reserved directory until its agent starts
// when the file is a day old (group.prepareReserved).
//
// Every path a push lists was resolved beneath the root just before, by
// plan or addLinks, so the push does not check each again (Checked).
func (s *Sender) runOptions(b batch) rsync.Options {
	o := s.Options
	if !b.large() {
		o.PartialDir = ""
	}
	o.Checked = true
	return o
}

// renamedOutOf returns dirs (the directories that renames the peer
// applied took names out of, replay) that are directories here: the run
// pushes them (their times), as it pushes the directories above the
// paths it lists. A rename moves its old directory's mtime on, later on
// the peer than here, and nothing else would set it back: it stayed the
// peer's own (the stress test).
func renamedOutOf(rootfd int, dirs []string) []string {
	var out []string
	for _, d := range dirs {
		var st unix.Stat_t
		if beneath.Lstat(rootfd, d, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			out = append(out, d)
		}
	}
	return out
}

// sentAsNotDirs returns the paths of dirs, directories here when the run
// was planned, that a push itemized as a file or a symlink.
func sentAsNotDirs(dirs []string, res rsync.Result) []string {
	return itemizedAs(dirs, res, rsync.PathResult.NotDir)
}

// itemizedAs returns the paths of paths whose result in res is as is
// says.
func itemizedAs(paths []string, res rsync.Result, is func(rsync.PathResult) bool) []string {
	if len(paths) == 0 {
		return nil // most pushes: not a look at their paths
	}
	var out []string
	for _, p := range res.Paths {
		if is(p) && slices.Contains(paths, p.Path) {
			out = append(out, p.Path)
		}
	}
	return out
}

// madeForOutOf returns the directories a push made on the peer only for
// outOf (renamedOutOf: directories pushed for their times, after renames
// and removals took names out of them there): those of outOf it created
// there, and the parents it created above them and above no other listed
// path. The peer lacked them (a rename or removal of its own, not
// replayed here yet, took them away); they go as made for a delete
// (peer.FileState.ForDelete).
func madeForOutOf(outOf, listed []string, res rsync.Result) []string {
	made := itemizedAs(outOf, res, rsync.PathResult.Created)
	if len(made) == 0 {
		return nil
	}
	for _, d := range res.Made {
		above := func(p string) bool { return strings.HasPrefix(p, d+"/") }
		if slices.ContainsFunc(made, above) && !slices.ContainsFunc(listed, above) {
			made = append(made, d)
		}
	}
	return made
}

// failedEntries are the entries of fs.
func failedEntries(fs []Failure) []journal.Entry {
	out := make([]journal.Entry, len(fs))
	for i, f := range fs {
		out[i] = f.Entry
	}
	return out
}

// deleteRun deletes paths on the peer in one rsync run of b's (listing).
func (s *Sender) deleteRun(ctx context.Context, rootfd int, b batch, paths []string, stale *[]string) (rsync.Result, error) {
	o := s.runOptions(b)
	return s.listing(rootfd, paths, stale, func(files []string) (rsync.Result, error) {
		return rsync.Delete(ctx, s.rsyncRoot(), files, s.Target, o)
	})
}

// sentByDelete returns the paths that a delete sent instead: made again
// here while rsync read them, they were sent, and the peer holds them
// (their entries stay pending) and is told so.
func sentByDelete(res rsync.Result) []string {
	var out []string
	for _, p := range res.Paths {
		if p.Outcome == rsync.Present && p.Change != "" {
			out = append(out, p.Path)
		}
	}
	return out
}

// listing runs one rsync process over files (run), numbered for
// impliedDirs, and adds to stale the directories above them that a later
// list set first, in another state.
func (s *Sender) listing(rootfd int, files []string, stale *[]string, run func([]string) (rsync.Result, error)) (rsync.Result, error) {
	list := s.implied.start(rootfd, files)
	res, err := run(files)
	*stale = append(*stale, s.implied.finish(list)...)
	return res, err
}

// againDirs journals for this peer again the directories that a run set
// there from an older file list than a run that ended before it, in
// another state (impliedDirs), where they are still directories here:
// their next run sets them as they are now. One gone here is left to its
// own removal or rename, which is journaled.
func (s *Sender) againDirs(rootfd int, dirs []string) {
	if len(dirs) == 0 {
		return
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	dirs = slices.DeleteFunc(dirs, func(d string) bool {
		var st unix.Stat_t
		return beneath.Lstat(rootfd, d, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR
	})
	if err := s.Journal.Again([]string{s.Peer}, change.Attrib, dirs); err != nil {
		s.Log.Error(err, "cannot journal directories set from an older file list; their times may differ on the peer until they change again", "dirs", len(dirs))
		return
	}
	s.Log.V(1).Info("directories set from an older file list go again", "dirs", dirs)
}

// unchangedWrites are the entries of b's push that rsync found unchanged on
// the peer by its quick check (the same size and mtime) although they were
// seen made or written here: a write that kept both (touch -r, cp -p, an
// archive extracted over the tree, which unlinks each file and makes it
// again with its old size and mtime), or one that got the same mtime as
// another member's different version of the file. Timestamps come from a
// clock that advances by ticks (and Linux's multigrain timestamps hand one
// value to writes on many files), so two members writing one file at once
// can give it the same size and mtime and different content: trusted, the
// quick check leaves them different for good (crossing writes must end
// identical everywhere); so does the new name of a rename that the peer
// did not apply (its content went). Not among them: what a scan found new
// to the index (change.Found: the start-up scan of a seeded member, a tree
// renamed here, which the peer renames itself), a rename the peer applied
// and a moved-in tree; their copies on the peer are expected to match,
// and a checksum would read all of them on both hosts.
func unchangedWrites(b batch, res rsync.Result) []journal.Entry {
	unchanged := make(map[string]bool)
	for _, p := range res.Paths {
		if p.Outcome == rsync.Unchanged {
			unchanged[p.Path] = true
		}
	}
	var out []journal.Entry
	for _, e := range b.sends {
		madeHere := e.Op&(change.Create|change.Write|change.Rename) != 0
		expected := e.Op&(change.Subtree|change.Found) != 0 || e.Op.Has(change.Rename) && !b.notRenamed[e.Path]
		written := madeHere && !expected
		if st, ok := b.state[e.Path]; ok && st.regular && written && unchanged[e.Path] {
			out = append(out, e)
		}
	}
	return out
}

// runClass is what to do about a run: rsync's class, or Retry when the
// run failed with no exit code to judge by (rsync could not start, or its
// pipes or output failed): try again later, with backoff.
func runClass(res rsync.Result, err error) rsync.Class {
	if err != nil && res.Class == rsync.OK {
		return rsync.Retry
	}
	return res.Class
}

// oneFilesIO reports a run of one path that rsync ended with a file I/O
// error (exit 11: a write failed, ENOSPC or EFBIG, and rsync stops the
// whole run): the failure is that file's, which waits with its own backoff
// (holdFailures), not the peer's. A file larger than the peer's filesystem
// takes (FAT's 4 GiB, a quota) would otherwise back off every run to the
// peer again at each try, up to the cap; a full disk fails every run, and
// one of several files backs off the peer as before.
func oneFilesIO(res rsync.Result) bool {
	return res.Exited && res.Code == 11 && len(res.Paths) == 1
}

// isPeerFailure reports a run that failed for the whole peer.
func isPeerFailure(res rsync.Result, err error) bool {
	class := runClass(res, err)
	return err != nil && (class == rsync.Retry || class == rsync.FatalPeer)
}

// account adds one rsync run's result (a push or a delete) to r.
func (s *Sender) account(r *Run, res rsync.Result, err error) {
	r.Bytes += res.BytesSent
	s.notDone(r, res.Paths)
	class := runClass(res, err)
	if isPeerFailure(res, err) && !oneFilesIO(res) {
		r.peerFailed = true
	}
	if res.Exited && (!r.Exited || class > r.Class) {
		r.Exited, r.Code = true, res.Code
	}
	if class > r.Class {
		r.Class = class
	}
	if err != nil && r.Err == nil {
		r.Err = err
		if res.Stderr != "" {
			r.Problems = append(r.Problems, "stderr: "+res.Stderr)
		}
	}
}

// notDone adds to r the paths of a run that rsync did not confirm, with
// why (Problems, reasons), and those that raced a change here (raced).
// Every path not done, with what rsync itemized of it, goes to the log at
// V(2): the log's Problems keep the first ten, and tracing a stress seed
// needs them all.
func (s *Sender) notDone(r *Run, paths []rsync.PathResult) {
	var lines []string
	v := s.Log.V(2)
	for _, p := range paths {
		if p.Outcome.Done() {
			continue
		}
		if v.Enabled() {
			lines = append(lines, pathLine(p))
		}
		if len(r.Problems) < 10 {
			r.Problems = append(r.Problems, fmt.Sprintf("%q: %s %s", p.Path, p.Outcome, p.Reason))
		}
		if r.reasons == nil {
			r.reasons = make(map[string]string)
		}
		r.reasons[p.Path] = strings.TrimSpace(p.Outcome.String() + " " + p.Reason)
		if p.Outcome == rsync.Vanished || p.Outcome == rsync.Present {
			if r.raced == nil {
				r.raced = make(map[string]bool)
			}
			r.raced[p.Path] = true
		}
	}
	if len(lines) > 0 {
		v.Info("paths of a run not done", "paths", lines)
	}
}

// confirmed returns the entries whose path the run confirmed on the peer
// (sent, updated, unchanged, deleted, or absent there).
func confirmed(entries []journal.Entry, res rsync.Result) []journal.Entry {
	ok := confirmedSet(res)
	var out []journal.Entry
	for _, e := range entries {
		if ok[e.Path] {
			out = append(out, e)
		}
	}
	return out
}

// coveredBy returns the entries of covered that lie below one of
// deleted's paths, or at one (the same path journaled twice).
func coveredBy(covered, deleted []journal.Entry) []journal.Entry {
	if len(covered) == 0 {
		return nil
	}
	gone := pathSet(deleted)
	var out []journal.Entry
	for _, e := range covered {
		if underAny(e.Path, gone) {
			out = append(out, e)
		}
	}
	return out
}

// itemized is what a run's log says of each listed path (pathLine).
func itemized(res rsync.Result) []string {
	out := make([]string, len(res.Paths))
	for i, pr := range res.Paths {
		out[i] = pathLine(pr)
	}
	return out
}

// pathLine is how the log names what a run did with one path: the path,
// its outcome, rsync's itemized change and the reason.
func pathLine(p rsync.PathResult) string {
	return fmt.Sprintf("%q: %s [%s] %s", p.Path, p.Outcome, p.Change, p.Reason)
}

// confirmedPaths is confirmed for paths that are not journal entries.
func confirmedPaths(paths []string, res rsync.Result) []string {
	if len(paths) == 0 {
		return nil
	}
	ok := confirmedSet(res)
	var out []string
	for _, p := range paths {
		if ok[p] {
			out = append(out, p)
		}
	}
	return out
}

// leftUnconfirmed returns the paths that rsync itemized as changed on the
// peer and that the run did not confirm (it ended early, or an error named
// them after): the peer may hold what rsync made there (a directory
// created, a file moved into place), and is told so, without a state, to
// record them as they are there (confirmationOf's unconfirmed); their
// entries stay pending and go again. Not told, the peer took a directory
// the run made for its own change and sent it to every member, where it
// brought back, on the writer, a tree it had renamed away (the stress
// test: a run that ended with exit 2 after itemizing cd+++).
//
// A listed path rsync itemized as deleted ("*deleting": a directory that
// a listed file replaced on the peer took it along, --force) is not: it is
// gone there by the run, and the confirmation names it so
// (rsync.Result.Removed, confirmationOf's removed). Named as unconfirmed,
// gone on the peer and indexed there, it read as the peer's own removal,
// which went to every member; its push of that removal made the implied
// parents on the writer again, which had removed the tree meanwhile
// (stress seed 29, the forty-eighth session: a swap of a file with a
// directory, d/x listed, gone here, its link_stat failing, "Not a
// directory").
func leftUnconfirmed(res rsync.Result) []string {
	var out []string
	for _, p := range res.Paths {
		if p.Change != "" && !p.Deleting() && (p.Outcome == rsync.Unconfirmed || p.Outcome == rsync.Failed) {
			out = append(out, p.Path)
		}
	}
	return out
}

// unspoken returns, for a run cut short (rsync.Result.CutShort: a signal,
// a lost connection, not 0, 23 or 24), the paths rsync never spoke of: it
// may have made them on the peer all the same, as rsync makes a hard link,
// or a directory, before the line that itemizes it reaches this side. The
// peer is told so (peer.FileState.Unspoken) and records those it holds as
// they are. Not told, it took them for its own changes once the run's
// hold ended (stress seed 24, the forty-eighth session: a link made by a
// run that ended with exit 2, "Invalid packet at end of run", went back
// as the peer's, and the writer adopted its older copy as a crossing
// write; TestSender_Start_aDirectoryMadeByARunThatBrokeOffIsConfirmed,
// when the connection was cut before cd+++ came through). A run that went
// to its end itemized every path it touched: a path it never spoke of
// vanished here before rsync read it, and is not named (named as
// unconfirmed, a first version of this rule made a peer that had it gone
// and indexed take it for its own removal: "received paths not as sent"
// went from 4 to 14 lines over 12 stress seeds).
func unspoken(res rsync.Result) []string {
	if !res.CutShort() {
		return nil
	}
	var out []string
	for _, p := range res.Paths {
		if p.Change == "" && p.Outcome == rsync.Unconfirmed {
			out = append(out, p.Path)
		}
	}
	return out
}

// splitVanished returns the listed paths of a push that vanished here
// before rsync read them, with no line of their own, in two sets:
//   - replaced: those below which rsync itemized deletions ("*deleting"):
//     a directory on the peer that a file listed here was to replace,
//     which rsync deletes with its tree, itemizing what was below it
//     only, never the directory. They go with the push's removals. Not
//     named, the peer took the directory's removal for a change of its
//     own and sent it to every member; the writer, whose later renames
//     the peer then refused, ended with the directory's parents made
//     again (the stress test, seed 65, the forty-ninth session);
//   - unsaid: the others. Where the peer held a symlink or an empty
//     directory there, rsync deleted it for the file without a word, and
//     the peer is told so (peer.FileState.Vanished).
func splitVanished(res rsync.Result) (replaced, unsaid []string) {
	for _, p := range res.Paths {
		if p.Outcome != rsync.Vanished || p.Change != "" {
			continue
		}
		below := p.Path + "/"
		if slices.ContainsFunc(res.Removed, func(r string) bool { return strings.HasPrefix(r, below) }) {
			replaced = append(replaced, p.Path)
		} else {
			unsaid = append(unsaid, p.Path)
		}
	}
	return replaced, unsaid
}

// changedOnPeer is the set of paths the run made or changed on the peer
// (rsync.Sent, rsync.Updated).
func changedOnPeer(res rsync.Result) map[string]bool {
	out := make(map[string]bool)
	for _, p := range res.Paths {
		if p.Outcome == rsync.Sent || p.Outcome == rsync.Updated {
			out[p.Path] = true
		}
	}
	return out
}

// confirmedSet is the set of paths the run confirmed.
func confirmedSet(res rsync.Result) map[string]bool {
	ok := make(map[string]bool, len(res.Paths))
	for _, p := range res.Paths {
		if p.Outcome.Done() {
			ok[p.Path] = true
		}
	}
	return ok
}

// confirmation is what a run tells its peer it did there (Client.Received):
// the paths it put there, each with what it sent of it (states, in the
// same order), and the paths gone there.
type confirmation struct {
	sent   []string
	states []peer.FileState
	gone   []string
}

// named is what else a run put on the peer or took away there, beyond
// the paths it sent and deleted (confirmationOf):
//   - sentInstead, paths a delete found here again and sent, without a
//     state (the peer records them as they are); replaced, parents of
//     listed paths that rsync read as files or symlinks and sent so
//     (rsync.Result.NotDirs, Unmade), marked so (peer.FileState.Replaced:
//     the peer records them as they are, there or gone); unconfirmed,
//     paths rsync itemized that the run did not confirm
//     (leftUnconfirmed), marked so (peer.FileState.Unconfirmed);
//     unspoken, paths a run cut short never spoke of
//     (peer.FileState.Unspoken); and vanished, files that vanished here
//     with no line of their own (peer.FileState.Vanished);
//   - implied, directories rsync made or changed above listed paths
//     (peer.FileState.Dir);
//   - removed, what a push or a delete deleted there unlisted
//     (rsync.Result.Removed), top-most only, as gone (removed is sorted in
//     place).
//
// Each of these, left out, read on the peer as a change of its own, which
// went to every member (the stress test).
type named struct {
	sentInstead, replaced, unconfirmed, unspoken, vanished, implied, removed []string
	// madeForDelete are the directories a run made on the peer only for
	// a removal (peer.FileState.ForDelete): a delete's, to reach a
	// deleted path, or a push's, of a directory a removal or rename took
	// a name out of (madeForOutOf). The peer lacked them. Made again
	// there, a directory a writer there had renamed away came back on
	// it, and on every member (the stress test, seed 163, the fifty-first
	// session).
	madeForDelete []string
}

// push adds what a push's result says it did on the peer beyond the paths
// it confirmed: the directories it made or changed above listed paths,
// what it deleted (with the directories replaced for files that then
// vanished here: splitVanished), the files that vanished here without a
// line, the parents of listed paths it sent as files or symlinks
// (rsync.Result.NotDirs, Unmade), the paths itemized and not confirmed
// (leftUnconfirmed) and, in a run cut short, those never spoken of
// (unspoken).
func (n *named) push(res rsync.Result) {
	replaced, unsaid := splitVanished(res)
	n.implied = append(n.implied, res.Implied...)
	n.replacedBy(res)
	n.removed = append(n.removed, replaced...)
	n.vanished = append(n.vanished, unsaid...)
	n.unconfirmed = append(n.unconfirmed, leftUnconfirmed(res)...)
	n.unspoken = append(n.unspoken, unspoken(res)...)
}

// replacedBy adds what a push or a delete deleted there unlisted
// (rsync.Result.Removed) and the parents of listed paths it sent as files
// or symlinks (rsync.Result.NotDirs, Unmade), which replaced the peer's
// directories there with their contents.
func (n *named) replacedBy(res rsync.Result) {
	n.replaced = append(n.replaced, res.NotDirs...)
	n.replaced = append(n.replaced, res.Unmade...)
	n.removed = append(n.removed, res.Removed...)
}

// confirmationOf puts a run's confirmation together: sent (with states)
// and gone, the paths the run sent and deleted; then the paths of n, each
// named once.
func confirmationOf(sent []string, states []peer.FileState, gone []string, n named) confirmation {
	c := confirmation{sent: sent, states: states, gone: gone}
	listed := make(map[string]bool, len(c.gone)+len(c.sent)+len(n.sentInstead)+len(n.unconfirmed)+len(n.implied))
	for _, p := range slices.Concat(c.gone, c.sent) {
		listed[p] = true
	}
	name := func(paths []string, st peer.FileState) {
		for _, p := range paths {
			if !listed[p] {
				listed[p] = true
				c.sent = append(c.sent, p)
				c.states = append(c.states, st)
			}
		}
	}
	name(n.replaced, peer.FileState{Replaced: true})
	name(n.sentInstead, peer.FileState{})
	// A directory rsync made or changed there (for a removal, or above a
	// listed path) is named so before the paths the run did not deliver:
	// a listed directory that vanished here before rsync read it, while
	// rsync made it on the peer as the parent of another listed path,
	// went as vanished, which the peer leaves as its index holds it. Its
	// mkdir there, held for the run, then read as the peer's own, and it
	// went to every member, bringing back a tree the writer had removed
	// (the stress test's Kill9 seed 46 of the sixtieth session, s19/h14).
	name(n.madeForDelete, peer.FileState{Dir: true, ForDelete: true})
	name(n.implied, peer.FileState{Dir: true})
	name(n.unconfirmed, peer.FileState{Unconfirmed: true})
	name(n.unspoken, peer.FileState{Unspoken: true})
	name(n.vanished, peer.FileState{Vanished: true})
	tops, _ := topMostBy(n.removed, func(p string) string { return p })
	for _, p := range tops {
		if !listed[p] {
			listed[p] = true
			c.gone = append(c.gone, p)
		}
	}
	return c
}

// pathSet is the set of the entries' paths.
func pathSet(es []journal.Entry) map[string]bool {
	set := make(map[string]bool, len(es))
	for _, e := range es {
		set[e.Path] = true
	}
	return set
}

func pathsOf(es []journal.Entry) []string {
	ps := make([]string, len(es))
	for i, e := range es {
		ps[i] = e.Path
	}
	return ps
}
