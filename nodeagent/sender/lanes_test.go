package sender

import (
	"testing"
	"time"
)

func TestSender_laneOpen(t *testing.T) {
	now := time.Now()
	const laneBytes, laneAfter = 16 << 20, 250 * time.Millisecond
	short := flight{start: now.Add(-10 * time.Millisecond), bytes: 4 << 10}
	old := flight{start: now.Add(-laneAfter), bytes: 4 << 10}
	large := flight{start: now, bytes: laneBytes}
	tests := []struct {
		name    string
		flights []flight
		lanes   int
		open    bool
		opensAt time.Time // zero: no timer
	}{
		{name: "idle: the first run starts at once", open: true},
		{name: "a short run in flight holds the next", flights: []flight{short}, open: false, opensAt: short.start.Add(laneAfter)},
		{name: "a run that has taken LaneAfter lets the next start", flights: []flight{old}, open: true},
		{name: "a run carrying LaneBytes lets the next start", flights: []flight{large}, open: true},
		{name: "every run in flight must be long", flights: []flight{large, short}, lanes: 3, open: false, opensAt: short.start.Add(laneAfter)},
		{name: "never more than Lanes", flights: []flight{large, old}, open: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{Lanes: tc.lanes, LaneBytes: laneBytes, LaneAfter: laneAfter}
			s.defaults()
			for i, f := range tc.flights {
				s.flights[i] = f
			}
			s.runs = len(tc.flights)
			if got := s.laneOpen(now); got != tc.open {
				t.Errorf("laneOpen = %v, want %v", got, tc.open)
			}
			at, ok := s.nextLane()
			if ok != !tc.opensAt.IsZero() || !at.Equal(tc.opensAt) {
				t.Errorf("nextLane = %v, %v; want %v", at, ok, tc.opensAt)
			}
		})
	}
}
