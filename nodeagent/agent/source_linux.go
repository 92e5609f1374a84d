package agent

import (
	"errors"
	"time"

	"github.com/go-logr/logr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/fanotify"
)

// newSource returns fanotify, or nil (the scanner alone) when it is
// unavailable here, saying why.
func newSource(opts source.Options, _ time.Duration, log logr.Logger) (source.Source, syncv1.AuditSource) {
	src, err := fanotify.New(opts)
	if err != nil {
		if !errors.Is(err, fanotify.ErrUnavailable) {
			log.Error(err, "fanotify failed; falling back to the scanner")
		} else {
			log.Info("fanotify is unavailable; changes are found by scanning", "reason", err.Error())
		}
		return nil, syncv1.AuditSourceScan
	}
	return src, syncv1.AuditSourceFanotify
}

// daemonWrapper is none on Linux: fanotify cannot mask a process; the
// kernel drops the receiver's events through ignore marks on the daemon's
// temp directories (source.Options.Quiet), and the announce holds the rest.
func daemonWrapper() ([]string, error) { return nil, nil }
