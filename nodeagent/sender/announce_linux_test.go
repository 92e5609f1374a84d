package sender

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/internal/chattr"
	"github.com/jailsync/jailsync/internal/poll"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// announcements records what a peer's endpoint was told.
type announcements struct {
	mu       sync.Mutex
	incoming map[string]int              // by run id
	received []string                    // run ids
	states   []map[string]peer.FileState // of each confirmation, by path
	gone     [][]string                  // of each confirmation
	refused  int                         // renames refused (all are)
	replays  []peer.ReplayRequest        // without their renames
	hellos   int
	// replayAnnounced: whether each replay's run had been announced.
	replayAnnounced []bool
	// failReceived is how many confirmations fail before one goes through.
	failReceived int
	// confirming are the runs whose confirmation came; late counts their
	// announcements that came after it (the peer would hold their paths
	// again, for a run that is over).
	confirming map[string]bool
	late       int
	// receivedDelay is how long each confirmation takes to be answered.
	receivedDelay time.Duration
	// ended are the runs the announcements named as ended unconfirmed
	// (peer.PathsRequest.Over), in order; announcedWith the runs of the
	// announcements, in order.
	ended, announcedWith []string
}

func (a *announcements) Incoming(_ context.Context, _, _, run string, _, over []string, _ []peer.ReplayPos) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.incoming[run]++
	a.ended = append(a.ended, over...)
	a.announcedWith = append(a.announcedWith, run)
	if a.confirming[run] {
		a.late++
	}
	return nil
}

func (a *announcements) Hello(context.Context, string, string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hellos++
	return nil
}

func (a *announcements) Received(_ context.Context, _, run string, sent []string, states []peer.FileState, gone []string) error {
	a.mu.Lock()
	if a.confirming == nil {
		a.confirming = map[string]bool{}
	}
	a.confirming[run] = true
	delay := a.receivedDelay
	a.mu.Unlock()
	time.Sleep(delay)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failReceived > 0 {
		a.failReceived--
		return errors.New("the peer could not record the run")
	}
	a.received = append(a.received, run)
	m := make(map[string]peer.FileState, len(sent))
	for i, p := range sent {
		if i < len(states) {
			m[p] = states[i]
		}
	}
	a.states = append(a.states, m)
	a.gone = append(a.gone, gone)
	return nil
}

// Replay refuses every rename, as a peer whose old file differs does.
func (a *announcements) Replay(_ context.Context, _ string, req peer.ReplayRequest) peer.RenameResponse {
	a.mu.Lock()
	defer a.mu.Unlock()
	rs := req.Renames
	req.Renames = nil
	a.replays = append(a.replays, req)
	a.replayAnnounced = append(a.replayAnnounced, a.incoming[req.Run] > 0)
	a.refused += len(rs)
	out := make([]peer.RenameResult, len(rs))
	for i := range out {
		out[i].Reason = "the old file differs"
	}
	return peer.RenameResponse{Results: out}
}

// firstRun journals c, starts the sender and returns its first run.
func (r *rig) firstRun(c change.Change) Run {
	r.t.Helper()
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{c}); err != nil {
		r.t.Fatal(err)
	}
	r.start()
	return r.firstReport()
}

// firstReport waits for the sender's first run and returns it.
func (r *rig) firstReport() Run {
	r.t.Helper()
	poll.Until(r.t, 30*time.Second, func() error {
		if len(r.reported()) == 0 {
			return errNotYet("the first run")
		}
		return nil
	})
	return r.reported()[0]
}

// fillPeerTree makes dir on the peer with dirs directories of 1,000 empty
// files each: a tree that takes the peer's rsync a while to delete.
func (r *rig) fillPeerTree(dir string, dirs int) {
	r.t.Helper()
	for i := range dirs {
		sub := filepath.Join(r.peerRoot, dir, fmt.Sprint(i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			r.t.Fatal(err)
		}
		for j := range 1000 {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprint(j)), nil, 0o644); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

// serveEndpoint serves a as the peer's agent-to-agent endpoint on port
// and points r's sender at it.
func serveEndpoint(t *testing.T, r *rig, a *announcements, port uint16) {
	t.Helper()
	serveHandler(t, r, a, port)
}

// serveHandler serves h as the peer's agent-to-agent endpoint on port, and
// points the rig's sender at it.
func serveHandler(t *testing.T, r *rig, h peer.Handler, port uint16) {
	t.Helper()
	srv := &peer.Server{}
	srv.SetGroup("g", &peer.Group{Key: []byte(testPassword), Members: map[string]netip.Addr{"self": selfAddr}, Handler: h})
	ln, err := net.Listen("tcp", netip.AddrPortFrom(peerAddr, port).String())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })
	r.sender.Endpoint = netip.MustParseAddrPort(ln.Addr().String())
	r.sender.Client = peer.NewClient("self", []byte(testPassword), selfAddr, 5*time.Second)
}

// TestSender_Start_aLongRunIsAnnouncedAgain: a run that lasts (2 MiB at
// 512 KiB/s, about 4 s) is announced to the peer again every
// ReannounceEvery while it runs, under its one run id, so that the peer
// keeps holding its paths; it is confirmed once, and not announced again
// once its confirmation is on its way (the peer takes a second over it:
// five more announcements, were they not stopped first).
func TestSender_Start_aLongRunIsAnnouncedAgain(t *testing.T) {
	r := newRig(t, 3)
	a := &announcements{incoming: map[string]int{}, receivedDelay: time.Second}
	serveEndpoint(t, r, a, basePort+53)
	r.sender.ReannounceEvery = 200 * time.Millisecond
	r.sender.Options.BandwidthLimit = 512 << 10

	data := make([]byte, 2<<20)
	_, _ = rand.Read(data)
	r.write("big", string(data))
	r.start()
	poll.Until(t, 30*time.Second, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.received) == 0 {
			return os.ErrNotExist
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(r.peerRoot, "big")); err != nil {
		t.Fatalf("big is not on the peer: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	run := a.received[0]
	t.Logf("run %s announced %d times, confirmed %d time(s)", run, a.incoming[run], len(a.received))
	if len(a.incoming) != 1 || a.incoming[run] < 5 {
		t.Errorf("announcements %v for a run of about 4 s; want one run id, announced again every 200 ms", a.incoming)
	}
	if len(a.received) != 1 {
		t.Errorf("confirmed %d times, want once", len(a.received))
	}
	if a.late != 0 {
		t.Errorf("announced %d times after its confirmation came, want never", a.late)
	}
}

// TestSender_Start_aLongDeleteIsAnnouncedAgain: a run that only deletes
// (a tree of 30,000 files on the peer) is announced again while it runs,
// as a push is: released early on the peer, the paths still being deleted
// would read there as its own changes.
func TestSender_Start_aLongDeleteIsAnnouncedAgain(t *testing.T) {
	r := newRig(t, 17)
	a := &announcements{incoming: map[string]int{}}
	serveEndpoint(t, r, a, basePort+55)
	r.sender.ReannounceEvery = 10 * time.Millisecond
	if err := os.Mkdir(filepath.Join(r.root, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	settle(t, r.journal, r.rootfd, "tree")
	if err := os.Remove(filepath.Join(r.root, "tree")); err != nil {
		t.Fatal(err)
	}
	r.fillPeerTree("tree", 30)
	run := r.firstRun(change.Change{Path: "tree", Op: change.Rmdir, Finished: true})
	if _, err := os.Stat(filepath.Join(r.peerRoot, "tree")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree is still on the peer (%v); problems %v", err, run.Problems)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t.Logf("the delete took %v, announced %v", run.Duration, a.incoming)
	if len(a.incoming) != 1 {
		t.Fatalf("announcements %v, want one run", a.incoming)
	}
	for id, n := range a.incoming {
		if n < 2 {
			t.Errorf("run %s announced %d time(s) over its %v; want again every 10 ms", id, n, run.Duration)
		}
	}
}

// TestSender_Start_aRefusedRenameWaitsForItsOldNamesDelete: the peer
// refuses a rename, so the new name is pushed and the old one deleted; the
// delete fails (the peer's old file is immutable). The rename's journal
// entry, the only record that the old name must go, stays pending instead
// of being confirmed with the push.
func TestSender_Start_aRefusedRenameWaitsForItsOldNamesDelete(t *testing.T) {
	r := newRig(t, 4)
	a := &announcements{incoming: map[string]int{}}
	serveEndpoint(t, r, a, basePort+54)
	if err := os.WriteFile(filepath.Join(r.peerRoot, "old"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	chattr.Immutable(t, filepath.Join(r.peerRoot, "old"))
	if err := os.WriteFile(filepath.Join(r.root, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := r.firstRun(change.Change{Path: "new", OldPath: "old", Op: change.Rename, Finished: true})
	if _, err := os.Stat(filepath.Join(r.peerRoot, "new")); err != nil {
		t.Fatalf("new is not on the peer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.peerRoot, "old")); err != nil {
		t.Fatalf("the test's premise: old cannot be deleted on the peer, but it is gone: %v", err)
	}
	a.mu.Lock()
	refused, replays, announced := a.refused, a.replays, a.replayAnnounced
	a.mu.Unlock()
	if refused != 1 {
		t.Fatalf("%d renames refused, want 1", refused)
	}
	// The replay names the run that announced the rename's names, and no
	// other run as under way (there was none): the peer takes what this
	// member's other runs, not confirmed, left at those names for this
	// member's (receiver.Receiver.Replay).
	if len(replays) != 1 || replays[0].Run == "" || !announced[0] || len(replays[0].Live) != 0 {
		t.Errorf("replays %+v (their runs announced before them: %v); want one, naming the run announced with its names and no other", replays, announced)
	}
	if st := r.journal.Stats("peer"); st.Files != 1 {
		t.Errorf("%d paths pending after the run (sent %d, problems %v); want the rename, whose old name is still on the peer", st.Files, len(run.Sent), run.Problems)
	}
}

// TestSender_Start_aWriteThatKeptSizeAndMtimeGoesByContent: a file written
// here without a change of size or mtime (touch -r, cp -p, an archive
// extracted over the tree, which unlinks and makes the file again) looks
// unchanged to rsync's quick check; journaled as written, or removed and
// made again, it is compared by checksum and its content reaches the peer.
// So does a file made and written here that got the mtime and size of the
// peer's different copy: two members writing one file at once within one
// tick of the kernel's timestamp clock (its create and later writes merge
// into one entry while it is pending). What a scan found new to the index
// (change.Found: a seeded member's start, a tree renamed here) is taken as
// rsync's quick check finds it, and not read again by checksum.
func TestSender_Start_aWriteThatKeptSizeAndMtimeGoesByContent(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   change.Op
		slot int
		want string
	}{
		{"written in place", change.Write, 7, "new content"},
		{"removed and made again", change.Remove | change.Create | change.Write, 8, "new content"},
		{"removed and made again, no write seen", change.Remove | change.Create, 9, "new content"},
		{"made and written here", change.Create | change.Write, 20, "new content"},
		{"found new by a scan, written here after", change.Create | change.Write, 21, "new content"},
		{"found new by a scan", change.Create | change.Write | change.Found, 22, "old content"},
		{"renamed here, the rename not applied there", change.Rename, 23, "new content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			mtime := time.Unix(1700000000, 123456789)
			for root, content := range map[string]string{r.peerRoot: "old content", r.root: "new content"} {
				p := filepath.Join(root, "f")
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			if tc.slot == 21 {
				// Journaled as found, then written here while pending:
				// the entry's op loses Found (change.Op.Merge).
				found := change.Change{Path: "f", Op: change.Create | change.Write | change.Found, Finished: true}
				if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{found}); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond) // a ctime of another tick: the index sees the write
				if err := os.Chtimes(filepath.Join(r.root, "f"), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			c := change.Change{Path: "f", Op: tc.op, Finished: true}
			if tc.op.Has(change.Rename) {
				c.OldPath = "old" // gone here and there: the rig's sender has no endpoint to ask, so the content goes
			}
			r.firstRun(c)
			got, err := os.ReadFile(filepath.Join(r.peerRoot, "f"))
			if err != nil || string(got) != tc.want {
				t.Errorf("the peer holds %q (%v), want %q", got, err, tc.want)
			}
			if st := r.journal.Stats("peer"); st.Files != 0 {
				t.Errorf("%d paths pending after the run, want none", st.Files)
			}
		})
	}
}

// settle records changes as the detector would, and confirms them as if
// they had gone to the peer before: the index holds them, nothing pending.
func (r *rig) settle(paths ...string) {
	r.t.Helper()
	settle(r.t, r.journal, r.rootfd, paths...)
}

// untilNothingPending waits until the journal holds nothing for the peer.
func (r *rig) untilNothingPending() {
	r.t.Helper()
	poll.Until(r.t, 20*time.Second, func() error {
		if st := r.journal.Stats("peer"); st.Files != 0 {
			return fmt.Errorf("%d paths pending", st.Files)
		}
		return nil
	})
}

// TestSender_Start_aDirectoryReplacedByAFile: a directory removed here and
// made a file under the same name leaves deletions below it that rsync
// cannot list (ENOTDIR). The file's own entry replaces the peer's
// directory (--force); the deletions are confirmed with it when it goes in
// their batch, or once it is settled on the peer when it went in another.
// Before, they stayed pending for good.
func TestSender_Start_aDirectoryReplacedByAFile(t *testing.T) {
	for _, tc := range []struct {
		name       string
		batchFiles int
		slot       int
	}{
		{"in one batch", 0, 10},
		{"one path a batch: the file's entry is taken into the deletions' batch", 1, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.slot)
			r.sender.BatchFiles = tc.batchFiles
			for _, root := range []string{r.root, r.peerRoot} {
				if err := os.MkdirAll(filepath.Join(root, "d", "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				for _, p := range []string{"d/x", "d/sub/y"} {
					if err := os.WriteFile(filepath.Join(root, p), []byte("old"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			r.settle("d", "d/sub", "d/x", "d/sub/y")
			if err := os.RemoveAll(filepath.Join(r.root, "d")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(r.root, "d"), []byte("now a file"), 0o644); err != nil {
				t.Fatal(err)
			}
			// As the source reports them: the tree's removal first.
			deletions := []change.Change{
				{Path: "d/x", Op: change.Remove, Finished: true},
				{Path: "d/sub/y", Op: change.Remove, Finished: true},
				{Path: "d/sub", Op: change.Rmdir, Finished: true},
			}
			file := change.Change{Path: "d", Op: change.Rmdir | change.Create | change.Write, Finished: true}
			record := func(ch ...change.Change) {
				t.Helper()
				before := r.journal.Stats("peer").Files
				if err := r.journal.Record(r.rootfd, []string{"peer"}, ch); err != nil {
					t.Fatal(err)
				}
				if st := r.journal.Stats("peer"); st.Files != before+int64(len(ch)) {
					t.Fatalf("%d paths pending, want %d", st.Files, before+int64(len(ch)))
				}
				select {
				case r.sender.Wake <- struct{}{}:
				default:
				}
			}
			record(append(deletions, file)...)
			r.start()
			r.untilNothingPending()
			got, err := os.ReadFile(filepath.Join(r.peerRoot, "d"))
			if err != nil || string(got) != "now a file" {
				t.Errorf("the peer's d: %q (%v), want the file", got, err)
			}
			for _, run := range r.reported() {
				if len(run.Failures) > 0 {
					t.Errorf("a run reported failures: %v", run.Problems)
				}
			}
		})
	}
}

// TestSender_Start_aRenamedFileRemovedDeletesItsOldName: mv a b; rm b,
// both before the run (the peer was down): the rename's entry is the only
// record that a went, so its old name is deleted on the peer too. Before,
// the peer kept a for good.
func TestSender_Start_aRenamedFileRemovedDeletesItsOldName(t *testing.T) {
	r := newRig(t, 12)
	for _, root := range []string{r.root, r.peerRoot} {
		if err := os.WriteFile(filepath.Join(root, "a"), []byte("content"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.settle("a")
	if err := os.Remove(filepath.Join(r.root, "a")); err != nil { // renamed to b, b removed
		t.Fatal(err)
	}
	ch := []change.Change{{Path: "b", OldPath: "a", Op: change.Rename | change.Remove, Finished: true}}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, ch); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.untilNothingPending()
	if _, err := os.Lstat(filepath.Join(r.peerRoot, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the peer still holds the old name a (%v)", err)
	}
}

// TestSender_Start_aLinkedFileRewrittenKeepsItsLinks: f and g are one
// file here and on the peer; f is rewritten in place keeping its size and
// mtime, so the quick check passes it, and the checksum pass sends it. Its
// other name goes in that pass too: the peer writes the file anew, and g
// must follow it. Before, the peer's g kept the old content.
func TestSender_Start_aLinkedFileRewrittenKeepsItsLinks(t *testing.T) {
	r := newRig(t, 13)
	r.sender.Links = func(ino uint64, limit int) []string {
		names, err := r.idx.Links(ino, limit)
		if err != nil {
			t.Error(err)
		}
		return names
	}
	mtime := time.Unix(1700000000, 123456789)
	for _, root := range []string{r.root, r.peerRoot} {
		f := filepath.Join(root, "f")
		if err := os.WriteFile(f, []byte("old content"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(f, filepath.Join(root, "g")); err != nil {
			t.Fatal(err)
		}
	}
	r.settle("f", "g")
	f := filepath.Join(r.root, "f")
	if err := os.WriteFile(f, []byte("new content"), 0o644); err != nil { // in place: O_TRUNC
		t.Fatal(err)
	}
	if err := os.Chtimes(f, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	r.firstRun(change.Change{Path: "f", Op: change.Write, Finished: true})
	r.untilNothingPending()
	var sts [2]unix.Stat_t
	for i, name := range []string{"f", "g"} {
		p := filepath.Join(r.peerRoot, name)
		got, err := os.ReadFile(p)
		if err != nil || string(got) != "new content" {
			t.Errorf("the peer's %s holds %q (%v), want the new content", name, got, err)
		}
		if err := unix.Lstat(p, &sts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if sts[0].Ino != sts[1].Ino {
		t.Errorf("the peer's f and g are two files (inodes %d and %d), want one", sts[0].Ino, sts[1].Ino)
	}
}

// TestSender_Start_theRootsOwnChangeIsConfirmedWithoutARun: the root's
// attributes are each host's and never listed; a change of them is
// confirmed without a run, and does not stay pending. The rsync the
// sender would run does not exist: a run would fail, and leave it pending.
func TestSender_Start_theRootsOwnChangeIsConfirmedWithoutARun(t *testing.T) {
	r := newRig(t, 6)
	r.sender.Options.RsyncPath = filepath.Join(t.TempDir(), "no-rsync")
	ch := []change.Change{{Path: ".", Op: change.Attrib, Finished: true}}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, ch); err != nil {
		t.Fatal(err)
	}
	r.start()
	poll.Until(t, 10*time.Second, func() error {
		if st := r.journal.Stats("peer"); st.Files != 0 {
			return fmt.Errorf("%d paths pending", st.Files)
		}
		return nil
	})
}

// TestSender_Start_anOldNameMadeAgainGoesToo: `mv a a~` and a new a
// written (an editor's save, a log rotation), the new a's own change
// journaled after the rename. The new a reaches the peer beside a~.
// Before, journaling the rename recorded the new a in the index, its own
// change was then dropped as already held, and the peer kept the old a
// for good.
func TestSender_Start_anOldNameMadeAgainGoesToo(t *testing.T) {
	r := newRig(t, 14)
	for _, root := range []string{r.root, r.peerRoot} {
		if err := os.WriteFile(filepath.Join(root, "a"), []byte("old content"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.settle("a")
	if err := os.Rename(filepath.Join(r.root, "a"), filepath.Join(r.root, "a~")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "a"), []byte("new content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "a~", OldPath: "a", Op: change.Rename, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	r.firstRun(change.Change{Path: "a", Op: change.Create | change.Write, Finished: true})
	r.untilNothingPending()
	for name, want := range map[string]string{"a": "new content, longer", "a~": "old content"} {
		if got, err := os.ReadFile(filepath.Join(r.peerRoot, name)); err != nil || string(got) != want {
			t.Errorf("the peer's %s holds %q (%v), want %q", name, got, err, want)
		}
	}
}

// TestSender_Start_anUnconfirmedRunStaysPending: a run whose confirmation
// the peer did not take (its agent down, or failing), three times, is not
// done: its files stay pending and go again, until a run's confirmation
// goes through. Before, they were done, and the peer, which had not
// recorded them, took them for its own changes and sent them on, over
// newer ones. A confirmation that fails once is tried again in its run,
// under its run id (TestSender_Start_aConfirmationTriedAgain). The next
// announcement names the unconfirmed run, once, as ended
// (peer.PathsRequest.Over), so that the peer settles what it holds of it
// (receiver.TestReceiver_RunsThatAreOverGiveUpWhatIsAsIndexed).
func TestSender_Start_anUnconfirmedRunStaysPending(t *testing.T) {
	r := newRig(t, 15)
	a := &announcements{incoming: map[string]int{}, failReceived: 3}
	serveEndpoint(t, r, a, basePort+53)
	r.sender.Backoff, r.sender.BackoffCap = 50*time.Millisecond, 100*time.Millisecond
	r.write("f", "content")
	first := r.firstRun(change.Change{Path: "f", Op: change.Create | change.Write, Finished: true})
	if len(first.Sent) != 0 || first.Err == nil {
		t.Errorf("the unconfirmed run reported %d sent, error %v; want none sent, and the error", len(first.Sent), first.Err)
	}
	r.untilNothingPending()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.received) != 1 || a.states[0]["f"].Size != int64(len("content")) {
		t.Errorf("confirmations taken: %q, states %+v; want one, of f", a.received, a.states)
	}
	if len(a.announcedWith) < 2 || !slices.Equal(a.ended, a.announcedWith[:1]) {
		t.Errorf("announcements of runs %q named as ended %q; want the first run, named once", a.announcedWith, a.ended)
	}
}

// TestSender_Start_aConfirmationTriedAgain: a confirmation that fails once
// is tried again within its run, under the same run id, so that the peer
// releases what the run held; the run is done.
func TestSender_Start_aConfirmationTriedAgain(t *testing.T) {
	r := newRig(t, 16)
	a := &announcements{incoming: map[string]int{}, failReceived: 1}
	serveEndpoint(t, r, a, basePort+53)
	r.write("f", "content")
	first := r.firstRun(change.Change{Path: "f", Op: change.Create | change.Write, Finished: true})
	if len(first.Sent) != 1 || first.Err != nil {
		t.Errorf("the run reported %d sent, error %v; want f, confirmed at the second try", len(first.Sent), first.Err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.received) != 1 || a.incoming[a.received[0]] != 1 {
		t.Errorf("confirmations taken %q of runs announced %v; want the one run, confirmed under its id", a.received, a.incoming)
	}
}

// TestSender_Start_aLongListStaysOnThisMember: a run whose list is long
// (600 files, over 8 KiB) reads it from its client's standard input, as
// every run does (rsync's args: --files-from=-), and every file arrives.
// From the twenty-fifth to the twenty-ninth session such a list was handed
// to the peer, whose daemon read it: the names the client sent came from
// the peer, which could answer with a list of its own naming a path
// through a symlink in this root, and have this member send it any file
// of the host (found by a review). The endpoint takes no lists now
// (peer.TestEndpoint_TakesNoLists).
func TestSender_Start_aLongListStaysOnThisMember(t *testing.T) {
	r := newRig(t, 18)
	a := &announcements{incoming: map[string]int{}}
	serveEndpoint(t, r, a, basePort+56)
	var names []string
	for i := range 600 {
		n := fmt.Sprintf("dir/file-%04d-%s", i, "with a name long enough")
		names = append(names, n)
		r.write(n, n) // journaled
	}
	// Longer than the lists handed to peers then (8 KiB and up).
	if len(names)*len("./dir/file-0000-with a name long enough\x00") < 8<<10 {
		t.Fatal("the list is shorter than 8 KiB: the test tests nothing")
	}
	r.start()
	poll.Until(t, 30*time.Second, func() error {
		sent := 0
		for _, run := range r.reported() {
			sent += len(run.Sent)
		}
		if sent < len(names) {
			return fmt.Errorf("%d of %d sent", sent, len(names))
		}
		return nil
	})
	for _, n := range names {
		if got, err := os.ReadFile(filepath.Join(r.peerRoot, n)); err != nil || string(got) != n {
			t.Fatalf("%s on the peer: %q, %v", n, got, err)
		}
	}
}

// TestSender_Start_aPathMadeAgainDuringItsDeleteStaysPending: the path
// is made here again while rsync deletes it on the peer (a peer's version
// arriving, in a cluster). The run confirms the deletion, but the entry
// stays pending and the path goes again, so that the peer does not lose
// for good what this member holds. Before, the deletion was confirmed and
// the members ended apart (TestStandalone_CrossingWritesEndIdentical).
func TestSender_Start_aPathMadeAgainDuringItsDeleteStaysPending(t *testing.T) {
	r := newRig(t, 20)
	a := &announcements{incoming: map[string]int{}}
	serveEndpoint(t, r, a, basePort+57)
	if err := os.Mkdir(filepath.Join(r.root, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	settle(t, r.journal, r.rootfd, "tree")
	if err := os.Remove(filepath.Join(r.root, "tree")); err != nil {
		t.Fatal(err)
	}
	const dirs = 40
	r.fillPeerTree("tree", dirs)
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "tree", Op: change.Rmdir, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	r.start()
	// Made again here once the delete is under way on the peer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		des, err := os.ReadDir(filepath.Join(r.peerRoot, "tree"))
		if errors.Is(err, fs.ErrNotExist) {
			t.Fatal("the delete ended before the path was made again; make the peer's tree larger")
		}
		if err == nil && len(des) < dirs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delete did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Mkdir(filepath.Join(r.root, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := r.firstReport()
	if _, err := os.Stat(filepath.Join(r.peerRoot, "tree")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree is still on the peer (%v); problems %v", err, run.Problems)
	}
	if len(run.Changed) != 1 || run.Changed[0].Path != "tree" {
		t.Fatalf("run: changed %+v; want tree (sent %+v, failures %+v)", run.Changed, run.Sent, run.Failures)
	}
	if st := r.journal.Stats("peer"); st.Files != 1 {
		t.Fatalf("%d files pending after the run; want tree still pending", st.Files)
	}
	// The detector's turn: the mkdir is journaled, and tree goes again.
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "tree", Op: change.Mkdir, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	r.sender.Wake <- struct{}{}
	poll.Until(t, 30*time.Second, func() error {
		if st, err := os.Stat(filepath.Join(r.peerRoot, "tree")); err != nil || !st.IsDir() || r.journal.Stats("peer").Files != 0 {
			return errNotYet("tree on the peer again, and nothing pending")
		}
		return nil
	})
}

// TestSender_Start_theConfirmationNamesWhatTheRunPutThere: the peer is told
// what the run put on it, and nothing of that as gone:
//   - a directory above a sent file whose mode rsync changed there (an
//     implied directory, not listed): named with FileState.Dir. Unnamed,
//     the peer took its new mode for a change of its own and sent the
//     directory to every member, over the symlink the writer had made
//     under that name since (the stress test);
//   - the old name of a rename the peer refused, where a file was written
//     since and sent in the same run (mv a b; echo > a): not among the
//     gone paths. Named there, the peer recorded it as a change of its own
//     (the stress test).
func TestSender_Start_theConfirmationNamesWhatTheRunPutThere(t *testing.T) {
	r := newRig(t, 54)
	a := &announcements{incoming: map[string]int{}}
	serveEndpoint(t, r, a, basePort+82)
	for _, root := range []string{r.root, r.peerRoot} {
		if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.peerRoot, "a"), []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(r.root, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	r.write("d/f", "f")
	r.write("b", "first")
	r.write("a", "second")
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{
		{Path: "d/f", Op: change.Create, Finished: true},
		{Path: "b", OldPath: "a", Op: change.Rename, Finished: true},
		{Path: "a", Op: change.Create, Finished: true},
	}); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.untilNothingPending()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(r.peerRoot, "d"), &st); err != nil || st.Mode&0o777 != 0o750 {
		t.Fatalf("the test's premise: rsync sets d's mode on the peer (%o, %v)", st.Mode&0o777, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var named, sentA bool
	for i, states := range a.states {
		if s, ok := states["d"]; ok && s.Dir {
			named = true
		}
		if _, ok := states["a"]; ok {
			sentA = true
		}
		if slices.Contains(a.gone[i], "a") {
			t.Errorf("confirmation %d names a as gone, which the run sent (states %v, gone %q)", i, states, a.gone[i])
		}
	}
	if !named {
		t.Errorf("no confirmation names d as a directory the run changed: %v", a.states)
	}
	if !sentA {
		t.Errorf("the test's premise: a run sent a (%v)", a.states)
	}
}

// newerThere answers every replayed removal as one of a version this
// member never had (peer.RenameResult.Newer), and records the removals
// asked.
type newerThere struct {
	*announcements
	removals []peer.Rename
}

func (n *newerThere) Replay(_ context.Context, _ string, req peer.ReplayRequest) peer.RenameResponse {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]peer.RenameResult, len(req.Renames))
	for i, rn := range req.Renames {
		if rn.Remove {
			n.removals = append(n.removals, rn)
			out[i] = peer.RenameResult{Reason: "changed here and not sent yet: kept", Newer: true}
		}
	}
	return peer.RenameResponse{Results: out}
}

// TestSender_Start_aRemovalThePeerHoldsNewerIsNotDeletedThere: the peer
// refuses the replayed removal of a file as one of a version this member
// never had. The removal's path entry is then done without deleting the
// file there (rsync --delete-missing-args), and the confirmation does not
// name it gone; the replay said what was removed (the index's size and
// mtime of it). Before, the path entry deleted the peer's newer version
// (the sixty-fourth session's Kill9 seed 282).
//
// The entry is done at once, durably, when the peer answers: the run's
// confirmations fail here, and the run ends unconfirmed with nothing
// pending. Left to the run's confirmation, such an entry stayed pending,
// and after a restart (while the sender backed off) it deleted the path
// there by its path entry, the refusal forgotten.
func TestSender_Start_aRemovalThePeerHoldsNewerIsNotDeletedThere(t *testing.T) {
	r := newRig(t, 129)
	n := &newerThere{announcements: &announcements{incoming: map[string]int{}, failReceived: 1000}}
	serveHandler(t, r, n, basePort+53)
	if err := os.WriteFile(filepath.Join(r.root, "a"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.peerRoot, "a"), []byte("newer there"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.settle("a")
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(r.root, "a"), &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(r.root, "a")); err != nil {
		t.Fatal(err)
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{{Path: "a", Op: change.Remove, Finished: true}}); err != nil {
		t.Fatal(err)
	}
	r.start()
	if run := r.firstReport(); run.Err == nil {
		t.Errorf("the first run: %+v; want its confirmation failed (the test's premise)", run)
	}
	if st := r.journal.Stats("peer"); st.Files != 0 {
		t.Errorf("%d paths pending after the run; want the removal done when the peer answered", st.Files)
	}
	if data, err := os.ReadFile(filepath.Join(r.peerRoot, "a")); err != nil || string(data) != "newer there" {
		t.Errorf("the peer's a after the removal: %q, %v; want its newer version kept", data, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	want := peer.Rename{Old: []byte("a"), Remove: true, Size: 3, MtimeNs: st.Mtim.Nano()}
	if len(n.removals) != 1 || !slices.Equal(n.removals[0].Old, want.Old) || n.removals[0].Size != want.Size || n.removals[0].MtimeNs != want.MtimeNs || n.removals[0].Dir {
		t.Errorf("removals replayed: %+v; want one, of a as the index held it (size 3, mtime %d)", n.removals, want.MtimeNs)
	}
}

// madeAgainThere is a peer endpoint that applies every replayed removal of
// a path below root (its daemon's module) and then, as a writer there
// would, makes the path again: a directory with a file in it.
type madeAgainThere struct {
	*announcements
	root    string
	removed []string
}

func (m *madeAgainThere) Replay(_ context.Context, _ string, req peer.ReplayRequest) peer.RenameResponse {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.RenameResult, len(req.Renames))
	for i, rn := range req.Renames {
		if !rn.Remove {
			continue
		}
		p := filepath.Join(m.root, string(rn.Old))
		if err := os.RemoveAll(p); err != nil {
			out[i].Reason = err.Error()
			continue
		}
		m.removed = append(m.removed, string(rn.Old))
		out[i].Applied = true
		if err := os.MkdirAll(p, 0o755); err == nil {
			err = os.WriteFile(filepath.Join(p, "new.log"), []byte("made again there"), 0o644)
		}
	}
	return peer.RenameResponse{Results: out}
}

// TestSender_Start_aRemovalThePeerReplayedIsNotDeletedAgain: the peer
// applies the replayed removal of a directory, and a writer there makes
// the directory again at once, with a file in it. The removal's path
// entry is then done without a deletion there, and the confirmation names
// the path (and what was below it here) gone, so that the peer records
// what it made there since as its own. Before, the run's delete step
// (rsync --delete-missing-args), milliseconds after the replay, deleted
// the directory made again and the file being written in it.
func TestSender_Start_aRemovalThePeerReplayedIsNotDeletedAgain(t *testing.T) {
	r := newRig(t, 130)
	m := &madeAgainThere{announcements: &announcements{incoming: map[string]int{}}, root: r.peerRoot}
	serveHandler(t, r, m, basePort+134)
	for _, root := range []string{r.root, r.peerRoot} {
		if err := os.MkdirAll(filepath.Join(root, "logs"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"logs/a.log", "logs/b.log"} {
			if err := os.WriteFile(filepath.Join(root, p), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.settle("logs", "logs/a.log", "logs/b.log")
	if err := os.RemoveAll(filepath.Join(r.root, "logs")); err != nil {
		t.Fatal(err)
	}
	if err := r.journal.Record(r.rootfd, []string{"peer"}, []change.Change{
		{Path: "logs/a.log", Op: change.Remove, Finished: true},
		{Path: "logs/b.log", Op: change.Remove, Finished: true},
		{Path: "logs", Op: change.Rmdir, Finished: true},
	}); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.untilNothingPending()
	if data, err := os.ReadFile(filepath.Join(r.peerRoot, "logs", "new.log")); err != nil || string(data) != "made again there" {
		t.Errorf("the peer's logs/new.log, made after the replay: %q, %v; want it kept", data, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if want := []string{"logs/a.log", "logs/b.log", "logs"}; !slices.Equal(m.removed, want) {
		t.Errorf("removals replayed: %q; want %q", m.removed, want)
	}
	var gone []string
	for _, g := range m.gone {
		gone = append(gone, g...)
	}
	slices.Sort(gone)
	if want := []string{"logs", "logs/a.log", "logs/b.log"}; !slices.Equal(gone, want) {
		t.Errorf("confirmed gone: %q; want %q", gone, want)
	}
}

// announcementWatch is a peer endpoint whose every announcement waits, up
// to 3 s (the sender's client gives up after 5), for check to hold before
// it is answered; seen says, for each, whether it held.
type announcementWatch struct {
	*announcements
	check func() bool
	mu    sync.Mutex
	seen  []bool
}

func (w *announcementWatch) Incoming(ctx context.Context, from, boot, run string, paths, over []string, replayed []peer.ReplayPos) error {
	ok := w.check()
	for deadline := time.Now().Add(3 * time.Second); !ok && time.Now().Before(deadline); ok = w.check() {
		time.Sleep(5 * time.Millisecond)
	}
	w.mu.Lock()
	w.seen = append(w.seen, ok)
	w.mu.Unlock()
	return w.announcements.Incoming(ctx, from, boot, run, paths, over, replayed)
}

// TestSender_Start_aRunsClientConnectsWhileItIsAnnounced: a run with no
// client prepared (its change was pending when the sender started) starts
// its client before it announces itself, so that the client's start and
// connection overlap the announcement's round trip: the peer's daemon
// serves the run's connection (a child of the daemon) before the peer
// answers the announcement; and the run then pushes through that client.
func TestSender_Start_aRunsClientConnectsWhileItIsAnnounced(t *testing.T) {
	r := newRig(t, 175)
	w := &announcementWatch{
		announcements: &announcements{incoming: map[string]int{}},
		check:         func() bool { return len(daemonConnections(t)) > 0 },
	}
	serveHandler(t, r, w, basePort+176)
	// The daemon's readiness probe is served and gone.
	poll.Until(t, 10*time.Second, func() error {
		if n := len(daemonConnections(t)); n > 0 {
			return fmt.Errorf("%d connections still served by the daemon", n)
		}
		return nil
	})
	r.write("a", "the content")
	run := r.firstRun(change.Change{Path: "a", Op: change.Write, Finished: true})
	if got, err := os.ReadFile(filepath.Join(r.peerRoot, "a")); err != nil || string(got) != "the content" {
		t.Fatalf("a on the peer: %q, %v; want the content (problems %v)", got, err, run.Problems)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 || !w.seen[0] {
		t.Errorf("the run's client connected during its announcement: %v; want true (the client starts before the announcement)", w.seen)
	}
	if len(run.Sent) != 1 {
		t.Errorf("run sent %v, want a", run.Sent)
	}
}

// TestRunState_takeClient: a run's push takes the client started for it
// while that still waits for its list, and not one that exited (its
// daemon was not there): the push then starts its own. Either way the
// run holds no client after.
func TestRunState_takeClient(t *testing.T) {
	r := newRig(t, 177)
	gone := r.sender.Target
	gone.Addr = netip.AddrPortFrom(peerAddr, basePort+178) // no daemon
	for _, tc := range []struct {
		name   string
		target rsync.Target
		taken  bool
	}{
		{name: "waiting for its list", target: r.sender.Target, taken: true},
		{name: "exited", target: gone, taken: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := rsync.Prepare(r.root, tc.target, r.sender.runOptions(batch{}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(w.Close)
			if !tc.taken {
				poll.Until(t, 20*time.Second, func() error {
					if w.Alive() {
						return errNotYet("the client's exit")
					}
					return nil
				})
			}
			x := &runState{s: r.sender, w: w}
			got := x.takeClient()
			if (got != nil) != tc.taken {
				t.Errorf("takeClient() = %v, want taken %v", got, tc.taken)
			}
			if x.w != nil {
				t.Error("the run still holds a client after takeClient")
			}
		})
	}
}
