package v1alpha1

import "time"

// Condition types of SyncGroup and SyncAgent. Ready and Synced have positive
// polarity (True is good); Degraded has negative polarity (True means
// something needs attention), as in kstatus.
const (
	// ReadyCondition on a SyncGroup is True when every member's agent is
	// alive and serving the group. On a SyncAgent it is True while the agent
	// runs, its lease is fresh and its change source delivers events.
	ReadyCondition = "Ready"

	// SyncedCondition is True when no member has changes pending for a peer
	// beyond the lag threshold and the last runs succeeded.
	SyncedCondition = "Synced"

	// DegradedCondition is True when replication is impaired: a member is
	// unreachable, a data root was refused, or transfers keep failing.
	DegradedCondition = "Degraded"
)

// Condition reasons. Each names the observation that set the condition.
const (
	// ReasonMembersReady: every member's agent is alive and serving the group.
	ReasonMembersReady = "MembersReady"
	// ReasonMembersPending: some members have not reported yet.
	ReasonMembersPending = "MembersPending"
	// ReasonMembersUnreachable: a member's lease expired or peers cannot reach it.
	ReasonMembersUnreachable = "MembersUnreachable"
	// ReasonNotEnoughAgents: replicas asks for more agents than nodeSelector matches.
	ReasonNotEnoughAgents = "NotEnoughAgents"
	// ReasonInSync: nothing is pending between any two members.
	ReasonInSync = "InSync"
	// ReasonLagging: changes are pending for at least one peer.
	ReasonLagging = "Lagging"
	// ReasonSyncErrors: a peer reports lastError.
	ReasonSyncErrors = "SyncErrors"
	// ReasonRootRefused: an agent refused the data root (unmounted, replaced,
	// or resolving outside itself) and stopped the group there.
	ReasonRootRefused = "RootRefused"
	// ReasonSuspended: spec.suspend is true.
	ReasonSuspended = "Suspended"
	// ReasonAsExpected: nothing is wrong (Degraded=False).
	ReasonAsExpected = "AsExpected"

	// ReasonAgentRunning: the agent runs and its change source delivers events.
	ReasonAgentRunning = "AgentRunning"
	// ReasonAuditTrailInactive: /dev/auditpipe delivers no records because
	// no audit trail is active; the fix is auditd with empty flags in
	// audit_control.
	ReasonAuditTrailInactive = "AuditTrailInactive"
	// ReasonLeaseExpired: the agent has not renewed its lease in time.
	ReasonLeaseExpired = "LeaseExpired"
)

// Agent liveness: each agent holds a coordination.k8s.io/v1 Lease named
// AgentLeaseName(node) in jailsync's namespace, with holderIdentity set to
// its node name and leaseDurationSeconds AgentLeaseDuration, renewed every
// AgentLeaseRenewInterval. The controller takes a member whose lease has not
// been renewed for AgentLeaseDuration as Unreachable.
const (
	// DefaultNamespace is the namespace the chart installs into, where the
	// transport Secrets and the agents' Leases live.
	DefaultNamespace = "jailsync-system"
	// AgentLeasePrefix starts every agent's Lease name.
	AgentLeasePrefix = "jailsync-agent-"
	// AgentLeaseRenewInterval is how often an agent renews its Lease.
	AgentLeaseRenewInterval = 10 * time.Second
	// AgentLeaseDuration is how long a Lease stays valid without renewal:
	// four renewals, so one slow API call does not mark a member unreachable.
	AgentLeaseDuration = 40 * time.Second
)

// Transport Secret keys.
const (
	// SecretKeyRsyncPassword holds the rsync daemons' shared password (user
	// jailsync) and the HMAC key of the agent-to-agent endpoint.
	SecretKeyRsyncPassword = "rsync-password"
	// SecretKeyTLSCert, SecretKeyTLSKey and SecretKeyCA hold the agents' TLS
	// certificate, key and CA bundle.
	SecretKeyTLSCert = "tls.crt"
	SecretKeyTLSKey  = "tls.key"
	SecretKeyCA      = "ca.crt"
)

// AgentLeaseName is the name of the Lease that node's agent renews.
func AgentLeaseName(node string) string { return AgentLeasePrefix + node }
