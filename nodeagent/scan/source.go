package scan

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
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
	// Log receives the errors of scans that went on (a directory gone
	// between its listing and its opening, one that cannot be read).
	Log logr.Logger
}

// Fatal reports whether a scan's error must stop the group: the root's
// identity changed or it is missing, or the scan found a mass deletion.
// Any other error leaves paths unscanned, for the next scan.
func Fatal(err error) bool {
	return errors.Is(err, index.ErrRootChanged) || errors.Is(err, index.ErrRootMissing) || errors.Is(err, ErrMassDelete)
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
			if Fatal(err) {
				return fmt.Errorf("scan %s: %w", s.Scanner.Root, err)
			}
			s.Log.Error(err, "scan incomplete", "reason", reason)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
