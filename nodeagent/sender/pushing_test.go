package sender

import "testing"

func TestPushing(t *testing.T) {
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	tests := []struct {
		name  string
		steps string // b: begin, e: end
		busy  bool   // busy() returns a channel after the steps
	}{
		{name: "none ever", steps: "", busy: false},
		{name: "one pushing", steps: "b", busy: true},
		{name: "one pushed", steps: "be", busy: false},
		{name: "two, one pushed", steps: "bbe", busy: true},
		{name: "two, both pushed", steps: "bbee", busy: false},
		{name: "again after idle", steps: "bebe" + "b", busy: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPushing()
			var waits []<-chan struct{} // busy()'s channel after each begin
			for _, s := range tc.steps {
				if s == 'b' {
					p.begin()
					waits = append(waits, p.busy())
				} else {
					p.end()
				}
			}
			got := p.busy()
			if (got != nil) != tc.busy {
				t.Fatalf("busy() = %v, want a channel: %v", got, tc.busy)
			}
			if got != nil && closed(got) {
				t.Fatal("busy() returned a closed channel while a run pushes")
			}
			for i, w := range waits {
				switch {
				case w == nil:
					t.Fatalf("busy() after begin %d = nil", i+1)
				case !tc.busy && !closed(w):
					t.Fatalf("the channel of begin %d is still open with none pushing", i+1)
				}
			}
		})
	}
}

func TestPushing_nil(t *testing.T) {
	var p *Pushing // a Sender without one
	p.begin()
	if c := p.busy(); c != nil {
		t.Fatalf("a nil Pushing is busy: %v", c)
	}
	p.end()
}
