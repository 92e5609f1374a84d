//go:build !linux

package fanotify

import (
	"context"
	"fmt"
	"runtime"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

var _ source.Source = (*Source)(nil)

// Source is the fanotify change source; it exists only on Linux.
type Source struct{}

// New always fails with an error wrapping ErrUnavailable: fanotify exists
// only on Linux.
func New(opts source.Options) (*Source, error) {
	return nil, unsupported()
}

// SeesClose reports true, as on Linux.
func (s *Source) SeesClose() bool { return true }

// Run fails with an error wrapping ErrUnavailable.
func (s *Source) Run(ctx context.Context, out chan<- change.Change) error {
	return unsupported()
}

// Close does nothing.
func (s *Source) Close() error { return nil }

func unsupported() error {
	return fmt.Errorf("%w: fanotify exists only on Linux, not on %s; the agent falls back to the scanner", ErrUnavailable, runtime.GOOS)
}
