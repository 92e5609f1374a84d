package change

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// step is one event (c) at offset at, or a check of what is ready at at.
type step struct {
	at    time.Duration
	c     *Change
	ready []string // "path:ops:finished" ready at this instant, in order
}

func ev(path string, op Op, finished bool) *Change {
	return &Change{Path: path, Op: op, Finished: finished}
}

// quiet is an event whose source cannot see the close (a scan).
func quiet(path string, op Op) *Change {
	return &Change{Path: path, Op: op, NeedsSettle: true}
}

func TestCoalescer_Ready(t *testing.T) {
	const settle = 250 * time.Millisecond
	tests := []struct {
		name    string
		settle  time.Duration
		maxHold time.Duration
		steps   []step
	}{
		{"a closed file ships at once", 0, 0, []step{
			{at: 0, c: ev("a", Create|Write, false)},
			{at: 10 * time.Millisecond, ready: nil},
			{at: 20 * time.Millisecond, c: ev("a", Write, true)},
			{at: 20 * time.Millisecond, ready: []string{"a:create|write:true"}},
		}},
		{"many events for one path become one change", 0, 0, []step{
			{at: 0, c: ev("a", Create, false)},
			{at: 1, c: ev("a", Write, false)},
			{at: 2, c: ev("a", Write, false)},
			{at: 3, c: ev("a", Attrib, false)},
			{at: 4, c: ev("a", Write, true)},
			{at: 5, ready: []string{"a:create|write|attrib:true"}},
			{at: time.Minute, ready: nil},
		}},
		{"unfinished waits for its close, not for settle", 0, 0, []step{
			{at: 0, c: ev("log", Write, false)},
			{at: 10 * time.Second, ready: nil},
			{at: 11 * time.Second, c: ev("log", Write, true)},
			{at: 11 * time.Second, ready: []string{"log:write:true"}},
		}},
		{"a file held open past max hold is reported unfinished, then again when closed", 0, 30 * time.Second, []step{
			{at: 0, c: ev("db", Write, false)},
			{at: 29 * time.Second, c: ev("db", Write, false)},
			{at: 29 * time.Second, ready: nil},
			{at: 30 * time.Second, ready: []string{"db:write:false"}},
			{at: 45 * time.Second, ready: nil},
			{at: 50 * time.Second, c: ev("db", Write, true)},
			{at: 50 * time.Second, ready: []string{"db:write:true"}},
		}},
		{"without close events, settle after the last event", settle, 0, []step{
			{at: 0, c: quiet("a", Create|Write)},
			{at: 200 * time.Millisecond, c: quiet("a", Write)},
			{at: 300 * time.Millisecond, ready: nil},
			{at: 449 * time.Millisecond, ready: nil},
			{at: 450 * time.Millisecond, ready: []string{"a:create|write:true"}},
		}},
		{"finished operations skip settle", settle, 0, []step{
			{at: 0, c: ev("gone", Remove, true)},
			{at: 0, c: ev("dir", Mkdir, true)},
			{at: 0, ready: []string{"gone:remove:true", "dir:mkdir:true"}},
		}},
		{"a write after a close holds the path again", 0, 0, []step{
			{at: 0, c: ev("a", Write, true)},
			{at: 1, c: ev("a", Write, false)},
			{at: 2, ready: nil},
			{at: 3, c: ev("a", Write, true)},
			{at: 3, ready: []string{"a:write:true"}},
		}},
		{"a close-seeing event waits for its close even with settle set", settle, 0, []step{
			{at: 0, c: quiet("a", Write)},
			{at: 100 * time.Millisecond, c: ev("a", Write, false)},
			{at: 10 * time.Second, ready: nil},
			{at: 11 * time.Second, c: ev("a", Write, true)},
			{at: 11 * time.Second, ready: []string{"a:write:true"}},
		}},
		{"a scan's view after a close-seeing event does not settle the file", settle, 0, []step{
			{at: 0, c: ev("a", Write, false)},
			{at: 10 * time.Millisecond, c: quiet("a", Write)},
			{at: 5 * time.Second, ready: nil},
			{at: 6 * time.Second, c: ev("a", Write, true)},
			{at: 6 * time.Second, ready: []string{"a:write:true"}},
		}},
		{"two renames onto one name: the first old name goes too", 0, 0, []step{
			{at: 0, c: &Change{Path: "b", OldPath: "a", Op: Rename, Finished: true}},
			{at: 1, c: &Change{Path: "b", OldPath: "c", Op: Rename, Finished: true}},
			{at: 2, ready: []string{"b:rename:true", "a:remove:true"}},
		}},
		{"two renames onto one name, the first old name being written again: it stays unfinished", 0, 0, []step{
			{at: 0, c: &Change{Path: "b", OldPath: "a", Op: Rename, Finished: true}},
			{at: 1, c: ev("a", Create|Write, false)},
			{at: 2, c: &Change{Path: "b", OldPath: "c", Op: Rename, Finished: true}},
			{at: 3, ready: []string{"b:rename:true"}},
			{at: 4, c: ev("a", Write, true)},
			{at: 4, ready: []string{"a:create|write|remove:true"}},
		}},
		{"a rename and its old name taken back: nothing more", 0, 0, []step{
			{at: 0, c: &Change{Path: "b", OldPath: "a", Op: Rename, Finished: true}},
			{at: 1, c: &Change{Path: "b", OldPath: "a", Op: Rename, Finished: true}},
			{at: 2, ready: []string{"b:rename:true"}},
		}},
		{"a write seen after a scan found the file: its content is new to every peer", 0, 0, []step{
			{at: 0, c: ev("a", Create|Write|Found, false)},
			{at: 1, c: ev("a", Write, true)},
			{at: 2, ready: []string{"a:create|write:true"}},
		}},
		{"a scan that finds a file being written: still a write seen", 0, 0, []step{
			{at: 0, c: ev("a", Create|Write, false)},
			{at: 1, c: ev("a", Create|Write|Found, false)},
			{at: 2, c: ev("a", Write, true)},
			{at: 3, ready: []string{"a:create|write:true"}},
		}},
		{"a removal finishes a write where no probe can tell", 0, 0, []step{
			{at: 0, c: ev("a", Create|Write, false)},
			{at: 1, c: ev("a", Remove, true)},
			{at: 1, ready: []string{"a:create|write|remove:true"}},
		}},
		{"paths are independent", settle, 0, []step{
			{at: 0, c: quiet("slow", Write)},
			{at: 100 * time.Millisecond, c: ev("fast", Write, true)},
			{at: 100 * time.Millisecond, ready: []string{"fast:write:true"}},
			{at: 250 * time.Millisecond, ready: []string{"slow:write:true"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			co := &Coalescer{Settle: tc.settle, MaxHold: tc.maxHold}
			t0 := time.Unix(1_700_000_000, 0)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.c != nil {
					co.Add(*s.c, now)
					continue
				}
				var got []string
				for _, c := range co.Ready(now, nil) {
					got = append(got, fmt.Sprintf("%s:%s:%v", c.Path, c.Op, c.Finished))
				}
				if fmt.Sprint(got) != fmt.Sprint(s.ready) {
					t.Fatalf("step %d (at %s): ready %v, want %v", i, s.at, got, s.ready)
				}
			}
		})
	}
}

func TestCoalescer_Echo(t *testing.T) {
	write := func(echo bool) Change { return Change{Path: "a", Op: Write, Echo: echo} }
	renamed := func(echo bool) Change { return Change{Path: "a", OldPath: "b", Op: Rename, Echo: echo} }
	found := Change{Path: "a", Op: Create | Write | Found}
	tests := []struct {
		name   string
		events []Change
		want   bool
	}{
		{"all events from the receiver", []Change{write(true), write(true)}, true},
		{"a local event among them", []Change{write(true), write(false), write(true)}, false},
		{"a scan found the receiver's rename", []Change{renamed(true), found}, true},
		{"the receiver's rename after a scan found it", []Change{found, renamed(true)}, true},
		{"a scan's find alone", []Change{found}, false},
		{"a local write after a scan's find", []Change{found, write(false)}, false},
		{"a local rename and a scan's find", []Change{renamed(false), found}, false},
		{"a local write after the receiver's rename and a scan's find", []Change{found, renamed(true), found, write(false)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := coalesced(tc.events)
			if len(got) != 1 || got[0].Echo != tc.want {
				t.Fatalf("got %+v, want one change with Echo=%v", got, tc.want)
			}
		})
	}
}

// coalesced adds events to a new Coalescer at one instant, the last one
// finished, and returns what is ready then.
func coalesced(events []Change) []Change {
	co := &Coalescer{}
	now := time.Now()
	for i, c := range events {
		c.Finished = i == len(events)-1
		co.Add(c, now)
	}
	return co.Ready(now, nil)
}

// TestCoalescer_EchoRename: a change says whether the rename it names (the
// last merged) was the receiver's, whatever else merged into it.
func TestCoalescer_EchoRename(t *testing.T) {
	write := func(echo bool) Change { return Change{Path: "a", Op: Write, Echo: echo} }
	renamed := func(from string, echo bool) Change { return Change{Path: "a", OldPath: from, Op: Rename, Echo: echo} }
	found := Change{Path: "a", Op: Create | Write | Found}
	tests := []struct {
		name             string
		events           []Change
		echo, echoRename bool
	}{
		{"the receiver's rename alone", []Change{renamed("b", true)}, true, true},
		{"the receiver's rename, then a peer's run writes the name", []Change{renamed("b", true), write(false)}, false, true},
		{"a write, then the receiver's rename", []Change{write(false), renamed("b", true)}, false, true},
		{"the receiver's rename, then a local one onto the name", []Change{renamed("b", true), renamed("c", false)}, false, false},
		{"a local rename, then the receiver's onto the name", []Change{renamed("c", false), renamed("b", true)}, false, true},
		{"a local rename, then the receiver writes", []Change{renamed("b", false), write(true)}, false, false},
		{"the receiver's rename, then a scan's find", []Change{renamed("b", true), found}, true, true},
		{"a write alone", []Change{write(true)}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// (A second rename onto a also reports its first old name
			// gone: not this test's.)
			got := slices.DeleteFunc(coalesced(tc.events), func(c Change) bool { return c.Path != "a" })
			if len(got) != 1 || got[0].Echo != tc.echo || got[0].EchoRename != tc.echoRename {
				t.Fatalf("got %+v, want one change of a with Echo=%v EchoRename=%v", got, tc.echo, tc.echoRename)
			}
		})
	}
}

// TestCoalescer_KeepsTheInodeWritten: a write through a path gone since
// (WrittenIno) is not lost when the path's changes merge, whichever came
// first.
func TestCoalescer_KeepsTheInodeWritten(t *testing.T) {
	for _, order := range [][]Change{
		{{Path: "l", Op: Remove, WrittenIno: 7}, {Path: "l", Op: Remove, Finished: true}},
		{{Path: "l", Op: Write}, {Path: "l", Op: Remove, Finished: true, WrittenIno: 7}},
	} {
		co := &Coalescer{}
		now := time.Now()
		for _, c := range order {
			co.Add(c, now)
		}
		if got := co.Ready(now, nil); len(got) != 1 || got[0].WrittenIno != 7 {
			t.Errorf("%+v: got %+v, want one change with WrittenIno 7", order, got)
		}
	}
}

func TestCoalescer_QueueStaysSmall(t *testing.T) {
	co := &Coalescer{Settle: time.Second}
	now := time.Now()
	for i := range 100_000 {
		co.Add(Change{Path: "hot", Op: Write, NeedsSettle: true}, now.Add(time.Duration(i)*time.Microsecond))
	}
	if co.queue.Len() > 2 {
		t.Fatalf("queue holds %d deadlines for one path", co.queue.Len())
	}
}

func TestCoalescer_RunFlushesOnClose(t *testing.T) {
	co := &Coalescer{}
	in, out := make(chan Change), make(chan Change, 10)
	done := make(chan error, 1)
	go func() { done <- co.Run(context.Background(), in, out, nil) }()
	in <- Change{Path: "open-forever", Op: Write}
	in <- Change{Path: "closed", Op: Write, Finished: true}
	if c := <-out; c.Path != "closed" {
		t.Fatalf("first out %q, want closed", c.Path)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := <-out; c.Path != "open-forever" || c.Finished {
		t.Fatalf("flushed %+v, want open-forever unfinished", c)
	}
}

// TestCoalescer_ProbesUnfinishedChanges: an unfinished change is probed
// after a quiet probe interval, and a change that would settle (a scan's)
// settles only if the probe does not know of a writer: a file created but
// not yet opened for writing by its creator is quiet, then held.
func TestCoalescer_ProbesUnfinishedChanges(t *testing.T) {
	tests := []struct {
		name   string
		settle bool // the change is a scan's (NeedsSettle)
		probe  func(string) (bool, bool)
		want   string // what is ready one probe interval after the last event
	}{
		{"a lost close: the probe finds no writer", false, func(string) (bool, bool) { return true, true }, "[a:write:true]"},
		{"a writer still holds it", false, func(string) (bool, bool) { return false, true }, "[]"},
		{"the system cannot tell", false, func(string) (bool, bool) { return false, false }, "[]"},
		{"settled, no writer", true, func(string) (bool, bool) { return true, true }, "[a:write:true]"},
		{"quiet, but a writer holds it: not settled", true, func(string) (bool, bool) { return false, true }, "[]"},
		{"settled where the system cannot tell", true, func(string) (bool, bool) { return false, false }, "[a:write:true]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			co := &Coalescer{Settle: 100 * time.Millisecond, Probe: tc.probe}
			t0 := time.Unix(1_700_000_000, 0)
			co.Add(Change{Path: "a", Op: Write, NeedsSettle: tc.settle}, t0)
			if got := co.Ready(t0.Add(50*time.Millisecond), nil); len(got) != 0 {
				t.Fatalf("ready before the probe interval: %+v", got)
			}
			var got []string
			for _, c := range co.Ready(t0.Add(100*time.Millisecond), nil) {
				got = append(got, fmt.Sprintf("%s:%s:%v", c.Path, c.Op, c.Finished))
			}
			if fmt.Sprint(got) != tc.want && !(tc.want == "[]" && got == nil) {
				t.Fatalf("ready %v, want %s", got, tc.want)
			}
		})
	}
}

// TestCoalescer_ProbesSoonAfterAClose: a change whose writer's close was
// seen while a writer still held the file (Change.Closed: the kernel
// reports a close before it drops the closing writer's access) is probed
// again 5 ms later, not after the probe interval; found held then, it
// waits for the interval like any other, and never ships unfinished.
func TestCoalescer_ProbesSoonAfterAClose(t *testing.T) {
	tests := []struct {
		name     string
		closed   bool
		held     bool
		want5ms  string // ready 5 ms after the event
		want100  string // ready at the probe interval
		probesAt int    // probes made by then
	}{
		{name: "its writer let go: ready at the first probe", closed: true, want5ms: "[a:write:true]", want100: "[]", probesAt: 1},
		{name: "another writer holds it: probed again at the interval", closed: true, held: true, want5ms: "[]", want100: "[]", probesAt: 2},
		{name: "no close seen: the interval as before", want5ms: "[]", want100: "[a:write:true]", probesAt: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			probes := 0
			co := &Coalescer{Settle: 100 * time.Millisecond, Probe: func(string) (bool, bool) {
				probes++
				return !tc.held, true
			}}
			t0 := time.Unix(1_700_000_000, 0)
			co.Add(Change{Path: "a", Op: Write, Closed: tc.closed}, t0)
			show := func(cs []Change) string {
				var got []string
				for _, c := range cs {
					got = append(got, fmt.Sprintf("%s:%s:%v", c.Path, c.Op, c.Finished))
				}
				return fmt.Sprintf("%v", got)
			}
			if got := show(co.Ready(t0.Add(5*time.Millisecond), nil)); got != tc.want5ms {
				t.Errorf("at 5 ms: ready %s, want %s", got, tc.want5ms)
			}
			if got := show(co.Ready(t0.Add(105*time.Millisecond), nil)); got != tc.want100 {
				t.Errorf("at the probe interval: ready %s, want %s", got, tc.want100)
			}
			if probes != tc.probesAt {
				t.Errorf("%d probes, want %d", probes, tc.probesAt)
			}
		})
	}
}

// TestCoalescer_NeverShipsAFileAWriterHolds: past MaxHold, a change whose
// file the Probe knows a writer still holds is not reported (an unfinished
// write is never shipped as final); it is probed again, every MaxHold/10
// instead of every probe interval, and reported finished once the writer
// lets go. Where the system cannot tell, it is reported unfinished at each
// MaxHold, so nothing starves.
func TestCoalescer_NeverShipsAFileAWriterHolds(t *testing.T) {
	const maxHold = time.Second
	t0 := time.Unix(1_700_000_000, 0)
	t.Run("a writer holds it", func(t *testing.T) {
		writing, probes := true, 0
		co := &Coalescer{MaxHold: maxHold, Probe: func(string) (bool, bool) {
			probes++
			return !writing, true
		}}
		co.Add(Change{Path: "a", Op: Write}, t0)
		if got := readyAt(co, t0.Add(60*time.Second)); got != "[]" {
			t.Fatalf("ready within a minute of writing: %s, want nothing", got)
		}
		// 20 probes in the first second (50 ms), then one every 100 ms.
		if probes > 700 {
			t.Errorf("probed %d times in a minute; want about 610", probes)
		}
		writing = false
		if got := readyAt(co, t0.Add(60*time.Second+200*time.Millisecond)); got != "[a:write:true]" {
			t.Fatalf("ready once the writer let go: %s, want a finished", got)
		}
	})
	t.Run("the system cannot tell", func(t *testing.T) {
		co := &Coalescer{MaxHold: maxHold, Probe: func(string) (bool, bool) { return false, false }}
		co.Add(Change{Path: "a", Op: Write}, t0)
		if got := readyAt(co, t0.Add(500*time.Millisecond)); got != "[]" {
			t.Fatalf("ready before MaxHold: %s", got)
		}
		if got := readyAt(co, t0.Add(time.Second)); got != "[a:write:false]" {
			t.Fatalf("ready at MaxHold: %s, want a unfinished", got)
		}
	})
}

// TestCoalescer_ARemovalDoesNotFinishAWriteUnderWay: a removal that a
// full scan held back until its walk ended comes after the path was made
// again and while it is being written: the write is not shipped as
// finished; once its writer lets go it is. A path removed for good is
// found so at the next probe.
func TestCoalescer_ARemovalDoesNotFinishAWriteUnderWay(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	writing := true
	co := &Coalescer{MaxHold: time.Minute, Probe: func(string) (bool, bool) { return !writing, true }}
	co.Add(Change{Path: "a", Op: Create | Write}, t0)
	co.Add(Change{Path: "a", Op: Remove, Finished: true}, t0.Add(time.Millisecond))
	if got := readyAt(co, t0.Add(10*time.Second)); got != "[]" {
		t.Fatalf("ready while a writer holds it: %s, want nothing", got)
	}
	writing = false
	if got := readyAt(co, t0.Add(10*time.Second+100*time.Millisecond)); got != "[a:create|write|remove:true]" {
		t.Fatalf("ready once the writer let go: %s, want a finished", got)
	}
	co.Add(Change{Path: "b", Op: Create | Write}, t0.Add(20*time.Second))
	co.Add(Change{Path: "b", Op: Remove, Finished: true}, t0.Add(20*time.Second+time.Millisecond))
	if got := readyAt(co, t0.Add(20*time.Second+100*time.Millisecond)); got != "[b:create|write|remove:true]" {
		t.Fatalf("a file removed while written, no writer left: %s, want b finished at the next probe", got)
	}
}

// readyAt returns what co has ready at now, as "[path:op:finished ...]",
// stepping through every deadline up to now.
func readyAt(co *Coalescer, now time.Time) string {
	var got []string
	for {
		next, ok := co.Next()
		if !ok || next.After(now) {
			break
		}
		for _, c := range co.Ready(next, nil) {
			got = append(got, fmt.Sprintf("%s:%s:%v", c.Path, c.Op, c.Finished))
		}
	}
	return fmt.Sprint(got)
}

// TestCoalescer_Writing: Writing names the start of the youngest write
// still waiting for its writer, and nothing once it finished, was held
// past MaxHold, or came finished (a close read with its write).
func TestCoalescer_Writing(t *testing.T) {
	const maxHold = time.Second
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type add struct {
		ms    int
		c     Change
		ready bool // Ready at ms, after the change
	}
	tests := []struct {
		name  string
		adds  []add
		ready int // Ready at this offset (ms) after the adds; 0: not called
		want  time.Time
	}{
		{name: "nothing pending", want: time.Time{}},
		{name: "a write under way", adds: []add{{1, Change{Path: "a", Op: Write}, false}}, want: at(1)},
		{name: "the receiver's write is not this member's",
			adds: []add{{1, Change{Path: "a", Op: Write, Echo: true}, false}}, want: time.Time{}},
		{name: "a scan's change is no write under way",
			adds: []add{{1, *quiet("a", Write), false}}, want: time.Time{}},
		{name: "a change that came finished is no write under way",
			adds: []add{{1, Change{Path: "a", Op: Write, Finished: true}, false}}, want: time.Time{}},
		{name: "the youngest of two",
			adds: []add{{1, Change{Path: "a", Op: Write}, false}, {2, Change{Path: "b", Op: Write}, false}}, want: at(2)},
		{name: "a later event keeps the write's start",
			adds: []add{{1, Change{Path: "a", Op: Write}, false}, {5, Change{Path: "a", Op: Write}, false}}, want: at(1)},
		{name: "finished by its close: none",
			adds: []add{{1, Change{Path: "a", Op: Write}, false}, {2, Change{Path: "a", Op: Write, Finished: true}, false}}, want: time.Time{}},
		{name: "the youngest finished, the one before still written",
			adds:  []add{{1, Change{Path: "a", Op: Write}, false}, {2, Change{Path: "b", Op: Write}, false}, {3, Change{Path: "b", Op: Write, Finished: true}, false}},
			ready: 3, want: at(1)},
		{name: "written again after its change was reported: the new write",
			adds: []add{{1, Change{Path: "a", Op: Write}, false}, {2, Change{Path: "a", Op: Write, Finished: true}, true}, {4, Change{Path: "a", Op: Write}, false}},
			want: at(4)},
		{name: "reported past MaxHold, no probe to tell: it starts over, not a write under way",
			adds: []add{{1, Change{Path: "a", Op: Write}, false}}, ready: 1 + int(maxHold/time.Millisecond), want: time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			co := &Coalescer{MaxHold: maxHold}
			for _, a := range tc.adds {
				co.Add(a.c, at(a.ms))
				if a.ready {
					if got := co.Ready(at(a.ms), nil); len(got) != 1 || got[0].Path != a.c.Path {
						t.Fatalf("ready at %d ms: %+v, want %s", a.ms, got, a.c.Path)
					}
				}
			}
			if tc.ready > 0 {
				co.Ready(at(tc.ready), nil)
			}
			if got := co.Writing(); !got.Equal(tc.want) {
				t.Errorf("Writing() = %v, want %v", got.Sub(t0), tc.want.Sub(t0))
			}
		})
	}
}

// TestCoalescer_WritingIsBounded: however many files are held open, only
// the latest maxBegun writes are kept, and the youngest is named.
func TestCoalescer_WritingIsBounded(t *testing.T) {
	co := &Coalescer{}
	t0 := time.Now()
	for i := range 10 * maxBegun {
		co.Add(Change{Path: fmt.Sprintf("f%d", i), Op: Write}, t0.Add(time.Duration(i)*time.Microsecond))
	}
	if len(co.begun) != maxBegun {
		t.Fatalf("keeps %d writes, want %d", len(co.begun), maxBegun)
	}
	if got, want := co.begun[0].at, t0.Add(time.Duration(9*maxBegun)*time.Microsecond); !got.Equal(want) {
		t.Fatalf("oldest kept began at %v, want %v: the oldest go first", got, want)
	}
	if got, want := co.Writing(), t0.Add(time.Duration(10*maxBegun-1)*time.Microsecond); !got.Equal(want) {
		t.Fatalf("Writing() = %v, want the youngest, %v", got, want)
	}
}

// TestCoalescer_RunTellsWriting: Run hands Writing on as it changes,
// before it sends the change that ended the write.
func TestCoalescer_RunTellsWriting(t *testing.T) {
	co := &Coalescer{}
	in, out := make(chan Change), make(chan Change)
	writing := make(chan time.Time, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- co.Run(ctx, in, out, func(t time.Time) { writing <- t }) }()
	in <- Change{Path: "a", Op: Write}
	select {
	case w := <-writing:
		if w.IsZero() {
			t.Fatal("zero told after a's unfinished change, want its start")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no write under way told after a's unfinished change")
	}
	in <- Change{Path: "a", Op: Write, Finished: true}
	select {
	case c := <-out:
		if c.Path != "a" || !c.Finished {
			t.Fatalf("sent %+v, want a finished", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a not sent after its close")
	}
	select { // told before a was sent
	case w := <-writing:
		if !w.IsZero() {
			t.Fatalf("told %v after a's close, want zero", w)
		}
	default:
		t.Fatal("a was sent before the end of its write was told")
	}
	select {
	case w := <-writing:
		t.Fatalf("told %v again without a change", w)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
