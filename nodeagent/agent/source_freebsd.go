package agent

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/auditpipe"
)

// ReceiverAUID is the audit user id the agent's rsync daemon runs under
// (set with setauid(2) through `nodeagent audit exec`): the auditpipe
// reader gives it an empty preselection mask, so the kernel does not even
// queue the records of files arriving from peers. No login gets it: audit
// user ids are the uids of logins, and this one (0x6A61696C, "jail") is far
// above any uid a system assigns and below AUIDUnset.
const ReceiverAUID uint32 = 0x6A61696C

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
	return []string{self, "audit", "exec", "--auid", strconv.FormatUint(uint64(ReceiverAUID), 10), "--"}, nil
}
