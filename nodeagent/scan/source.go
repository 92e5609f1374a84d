package scan

import (
	"context"
	"fmt"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// DefaultInterval is how often the scanner runs where it is the only change
// source (the agent's --scan-interval).
const DefaultInterval = 2 * time.Second

// Source runs the scanner as a change source: once at start, then every
// Interval. Before each scan it checks the root's identity and stops with
// the error when the root changed (unmounted, replaced): an empty mount
// point must never be read as "everything was deleted".
type Source struct {
	Scanner  *Scanner
	Interval time.Duration
	// Scanned, when set, is called before each scan with its reason:
	// "start" for the first, "interval" for the periodic ones.
	Scanned func(reason string)
}

// SeesClose is false: a scan cannot tell whether a writer is done, so its
// changes wait for the settle period.
func (s *Source) SeesClose() bool { return false }

// Run scans until ctx ends.
func (s *Source) Run(ctx context.Context, out chan<- change.Change) error {
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for reason := "start"; ; reason = "interval" {
		if s.Scanned != nil {
			s.Scanned(reason)
		}
		if err := s.Scanner.Index.CheckRoot(s.Scanner.Root); err != nil {
			return fmt.Errorf("scan stopped: %w", err)
		}
		if _, err := s.Scanner.Scan(ctx, ".", out); err != nil && ctx.Err() == nil {
			return fmt.Errorf("scan %s: %w", s.Scanner.Root, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
