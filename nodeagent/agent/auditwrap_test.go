package agent

import (
	"slices"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/bsm"
)

// TestAuditWrapper: on FreeBSD the rsync daemon starts through the agent's
// own `audit exec`, under ReceiverAUID, the audit user id whose records
// the auditpipe source masks: an id no login has (above any assigned uid)
// and not "unset".
func TestAuditWrapper(t *testing.T) {
	got := auditWrapper("/usr/local/sbin/nodeagent")
	want := []string{"/usr/local/sbin/nodeagent", "audit", "exec", "--auid", "1784768876", "--"}
	if !slices.Equal(got, want) {
		t.Errorf("auditWrapper = %q, want %q", got, want)
	}
	if ReceiverAUID <= 1<<16 || ReceiverAUID == bsm.AUIDUnset {
		t.Errorf("ReceiverAUID %d: want an id above any login's uid, not AUIDUnset", ReceiverAUID)
	}
}
