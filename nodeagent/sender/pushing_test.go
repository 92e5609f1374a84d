package sender

import (
	"testing"
	"time"
)

func TestPushing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const after = 250 * time.Millisecond
	type step struct {
		begin time.Duration // a run starts pushing at t0+begin
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
				ids = append(ids, p.begin(t0.Add(s.begin)))
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
	p.end(p.begin(time.Now()))
	if _, _, busy := p.busy(time.Now(), time.Second); busy {
		t.Fatal("a nil Pushing is busy")
	}
}
