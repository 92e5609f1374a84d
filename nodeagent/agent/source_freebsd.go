package agent

import (
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/auditpipe"
)

// newSource returns the auditpipe source, masking ReceiverAUID.
func newSource(opts source.Options, settle time.Duration, log logr.Logger) (source.Source, syncv1.AuditSource) {
	return auditpipe.New(opts, ReceiverAUID, settle, log.WithName("auditpipe")), syncv1.AuditSourceAuditpipe
}

// daemonWrapper starts the rsync daemon under ReceiverAUID.
func daemonWrapper() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the nodeagent binary to start rsync under the receiver's audit user id: %w", err)
	}
	return auditWrapper(self), nil
}
