package sender

import (
	"context"
	"testing"
	"time"
)

func TestPushing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const after = 250 * time.Millisecond
	type step struct {
		begin time.Duration // a run starts pushing at t0+begin
		long  bool          // a long run, which busy does not count
		end   int           // or: the run of this step (1-based) has pushed
	}
	tests := []struct {
		name  string
		steps []step
		now   time.Duration
		busy  bool
		until time.Duration // when busy: t0+until
	}{
		{name: "none ever", now: 0, busy: false},
		{name: "one pushing", steps: []step{{begin: 0}}, now: 10 * time.Millisecond, busy: true, until: after},
		{name: "one pushed", steps: []step{{begin: 0}, {end: 1}}, now: 10 * time.Millisecond, busy: false},
		{name: "two, one pushed", steps: []step{{begin: 0}, {begin: 5 * time.Millisecond}, {end: 1}}, now: 10 * time.Millisecond, busy: true, until: 5*time.Millisecond + after},
		{name: "two, both pushed", steps: []step{{begin: 0}, {begin: 0}, {end: 2}, {end: 1}}, now: 10 * time.Millisecond, busy: false},
		{name: "the latest start counts", steps: []step{{begin: 0}, {begin: 100 * time.Millisecond}}, now: 200 * time.Millisecond, busy: true, until: 100*time.Millisecond + after},
		{name: "pushing for longer than after: a stuck peer holds no one back", steps: []step{{begin: 0}}, now: after, busy: false},
		{name: "ended twice", steps: []step{{begin: 0}, {begin: 0}, {end: 1}, {end: 1}}, now: 0, busy: true, until: after},
		{name: "a long run holds no one back", steps: []step{{begin: 0, long: true}}, now: 10 * time.Millisecond, busy: false},
		{name: "a short run beside a long one", steps: []step{{begin: 0, long: true}, {begin: 5 * time.Millisecond}}, now: 10 * time.Millisecond, busy: true, until: 5*time.Millisecond + after},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPushing()
			var ids []int
			for _, s := range tc.steps {
				if s.end != 0 {
					p.end(ids[s.end-1])
					ids = append(ids, 0)
					continue
				}
				ids = append(ids, p.begin(t0.Add(s.begin), !s.long))
			}
			idle, until, busy := p.busy(t0.Add(tc.now), after)
			if busy != tc.busy {
				t.Fatalf("busy = %v, want %v", busy, tc.busy)
			}
			if !busy {
				return
			}
			if want := t0.Add(tc.until); !until.Equal(want) {
				t.Errorf("until = %s, want %s", until.Sub(t0), tc.until)
			}
			select {
			case <-idle:
				t.Fatal("the idle channel is closed while a run pushes")
			default:
			}
			for _, id := range ids {
				p.end(id)
			}
			select {
			case <-idle:
			default:
				t.Fatal("the idle channel is still open once every run has pushed")
			}
		})
	}
}

func TestPushing_nil(t *testing.T) {
	var p *Pushing // a Sender without one
	p.end(p.begin(time.Now(), true))
	p.othersPushed(context.Background(), 0, time.Hour) // returns at once
	if _, _, busy := p.busy(time.Now(), time.Second); busy {
		t.Fatal("a nil Pushing is busy")
	}
}

func TestPushing_othersPushed(t *testing.T) {
	const bound = 10 * time.Second // never reached unless the wait is wrong
	tests := []struct {
		name   string
		others int  // runs of other peers pushing
		long   bool // they are long runs
		ends   bool // they push to the end while the run waits
		bound  time.Duration
		cancel bool
		waits  bool // the wait lasts until they have pushed
	}{
		{name: "no other run: at once", bound: bound},
		{name: "two others: until both have pushed", others: 2, ends: true, bound: bound, waits: true},
		{name: "a long other counts too", others: 1, long: true, ends: true, bound: bound, waits: true},
		{name: "one that never ends: the bound", others: 1, bound: 50 * time.Millisecond},
		{name: "one that never ends: the context", others: 1, bound: bound, cancel: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPushing()
			self := p.begin(time.Now(), true)
			var others []int
			for range tc.others {
				others = append(others, p.begin(time.Now(), !tc.long))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const endAfter = 30 * time.Millisecond
			// start is read before the timers are set, so a timer can
			// never fire less than endAfter after it (CI once measured
			// 27 ms when start was read after them).
			start := time.Now()
			if tc.ends {
				for i, id := range others {
					time.AfterFunc(time.Duration(i+1)*endAfter, func() { p.end(id) })
				}
			}
			if tc.cancel {
				time.AfterFunc(endAfter, cancel)
			}
			p.othersPushed(ctx, self, tc.bound)
			took := time.Since(start)
			p.mu.Lock()
			left := len(p.runs) - 1 // self is still counted
			p.mu.Unlock()
			if tc.waits && left != 0 {
				t.Fatalf("returned while %d other runs still pushed", left)
			}
			if !tc.waits && took >= bound {
				t.Fatalf("waited %s: neither the bound nor the context ended it", took)
			}
			if tc.others > 0 && !tc.ends && took < min(tc.bound, endAfter) {
				t.Fatalf("returned after %s, while another run still pushed", took)
			}
		})
	}
}
