package agent

import (
	"time"

	"github.com/go-logr/logr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/bsm"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/auditpipe"
)

// newSource returns the auditpipe source. The receiver's dedicated audit
// user id is not set up yet (bsm.AUIDUnset): the index suppresses echoes by
// state alone.
func newSource(opts source.Options, settle time.Duration, log logr.Logger) (source.Source, syncv1.AuditSource) {
	return auditpipe.New(opts, bsm.AUIDUnset, settle, log.WithName("auditpipe")), syncv1.AuditSourceAuditpipe
}
