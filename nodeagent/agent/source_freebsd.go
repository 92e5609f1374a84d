package agent

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/auditpipe"
)

// newSource returns the auditpipe source, masking ReceiverAUID, opened
// before the start scan; or nil (the scanner alone) when the pipe cannot
// be used here, saying why, as on Linux.
func newSource(opts source.Options, settle time.Duration, log logr.Logger) (source.Source, syncv1.AuditSource) {
	src, err := auditpipe.New(opts, ReceiverAUID, settle, log.WithName("auditpipe"))
	if err != nil {
		if !errors.Is(err, auditpipe.ErrUnavailable) {
			log.Error(err, "the audit pipe failed; falling back to the scanner")
		} else {
			log.Info("the audit pipe is unavailable; changes are found by scanning", "reason", err.Error())
		}
		return nil, syncv1.AuditSourceScan
	}
	return src, syncv1.AuditSourceAuditpipe
}

// daemonWrapper starts the rsync daemon under ReceiverAUID.
func daemonWrapper() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the nodeagent binary to start rsync under the receiver's audit user id: %w", err)
	}
	return auditWrapper(self), nil
}
