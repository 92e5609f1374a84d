package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SyncGroupSpec is the desired state of a SyncGroup: which directory, on which
// nodes, and how changes travel between them.
//
// +kubebuilder:validation:XValidation:rule="has(self.members) != has(self.replicas)",message="set exactly one of members (a list of nodes) and replicas (a count of nodes picked by nodeSelector)"
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || has(self.nodeSelector)",message="replicas needs a nodeSelector to pick registered agents: use nodeSelector: {} to pick from all of them"
// +kubebuilder:validation:XValidation:rule="!has(self.nodeSelector) || has(self.replicas)",message="nodeSelector only applies with replicas: remove it, or replace members with replicas"
// +kubebuilder:validation:XValidation:rule="has(self.jail) == has(oldSelf.jail) && (!has(self.jail) || self.jail == oldSelf.jail)",message="jail is immutable: moving a live group's data must be a new SyncGroup"
type SyncGroupSpec struct {
	// Path is the absolute data directory kept identical on every member, for
	// example /data/www. With jail set, it is a path inside that jail's root
	// on each host. It must be clean (no //, /./, /../ or trailing /), must not
	// be / and must fit FreeBSD's PATH_MAX. It cannot change after creation:
	// moving a live group's data is a new SyncGroup.
	// +required
	// +kubebuilder:validation:MaxLength=1023
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="path must be absolute: start it with / (for example /data/www)"
	// +kubebuilder:validation:XValidation:rule="self != '/'",message="path must not be /: name the data directory itself (for example /data/www)"
	// +kubebuilder:validation:XValidation:rule="!self.contains('//')",message="path must be clean: replace // with /"
	// +kubebuilder:validation:XValidation:rule="!self.contains('/./') && !self.endsWith('/.')",message="path must be clean: remove the /. components"
	// +kubebuilder:validation:XValidation:rule="!self.contains('/../') && !self.endsWith('/..')",message="path must be clean: remove the /.. components and name the directory itself"
	// +kubebuilder:validation:XValidation:rule="self == '/' || !self.endsWith('/')",message="path must not end with /: remove the trailing slash"
	// +kubebuilder:validation:XValidation:rule="size(bytes(self)) <= 1023",message="path must be at most 1023 bytes: FreeBSD's PATH_MAX (1024) counts the terminating NUL"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('[\\x00-\\x1f\\x7f]')`,message="path must not contain control characters such as newlines: they cannot be written to rsyncd.conf"
	// +kubebuilder:validation:XValidation:rule="!self.endsWith(' ')",message="path must not end with a space: rsyncd.conf strips it; rename the directory"
	// +kubebuilder:validation:XValidation:rule=`!self.endsWith('\\')`,message="path must not end with a backslash: it continues the line in rsyncd.conf; rename the directory"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('%[A-Z]|%[^\\x00-\\x7f]')`,message="path must not hold % before a capital or non-ASCII letter: rsyncd.conf reads %NAME% as an environment variable; rename the directory"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="path is immutable: moving a live group's data must be a new SyncGroup"
	Path string `json:"path"`

	// Jail is the name of a FreeBSD jail (as jls -N shows it). When set, Path
	// is inside that jail's root on every member, and the agent re-resolves
	// the jail's root when the jail restarts. Unset means the host itself.
	// It cannot change after creation.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.contains('/')",message="jail must be a jail name, not a path: put the directory inside the jail in path"
	Jail string `json:"jail,omitempty"`

	// Members lists the nodes that hold the data, 2 to 32 of them, each
	// named once. Set either members or replicas, not both.
	// +optional
	// +listType=map
	// +listMapKey=node
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(m, self.exists_one(n, n.node == m.node))",message="members must name each node once: remove the duplicate node"
	// +kubebuilder:validation:XValidation:rule="self.all(m, !has(m.address) || self.exists_one(n, has(n.address) && n.address == m.address))",message="members must not share an address: give each member its own IP:port"
	Members []Member `json:"members,omitempty"`

	// Replicas is how many registered agents, picked by nodeSelector, hold
	// the data (2 to 32). Set either members or replicas, not both.
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=32
	Replicas *int32 `json:"replicas,omitempty"`

	// NodeSelector picks the SyncAgents (by their labels) that replicas draws
	// from. Required with replicas; {} picks from every registered agent.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// Settle is the quiet period a change waits for where the writer's close
	// cannot be observed (auditpipe's implicit closes, the scanner): the file
	// ships once it has not changed for this long. A file whose writer closed
	// it ships at once. A duration such as 250ms or 2s, at most 1h.
	// +optional
	// +kubebuilder:default="250ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^(0|([0-9]{1,5}(\\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$')`,message="settle must be a duration such as 250ms, 2s or 1m30s, without a sign"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^(0|([0-9]{1,5}(\\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$') || duration(self) <= duration('1h')`,message="settle must be at most 1h: it is how long a quiet file waits before it ships"
	Settle *metav1.Duration `json:"settle,omitempty"`

	// Exclude lists paths that are never replicated, as rsync exclude
	// patterns (a subset of rsync's filter syntax, see docs/api.md): *, ?,
	// [...] and **; a leading / anchors the pattern at the data root; a
	// trailing / matches directories only; a pattern without / matches the
	// last name at any depth. Filter-rule prefixes (+, -, :, ., !) and merge
	// files are not accepted. The agent's own .jailsync directory is always
	// excluded.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Exclude []ExcludePattern `json:"exclude,omitempty"`

	// Deletes says what a deletion on one member does: Propagate (the
	// default) deletes the path on every member, Keep leaves the peers' copies.
	// +optional
	// +kubebuilder:default=Propagate
	Deletes DeletePolicy `json:"deletes,omitempty"`

	// Conflicts says how writes that cross on two members are resolved.
	// NewestWins (the default): the newest mtime wins, the node name breaks
	// ties, and the losing version is kept beside it as a conflict copy
	// (name.sync-conflict-YYYYMMDD-HHMMSS-<node>.ext).
	// +optional
	// +kubebuilder:default=NewestWins
	Conflicts ConflictPolicy `json:"conflicts,omitempty"`

	// ResyncInterval is how often a full anti-entropy compare runs between
	// members, catching anything change detection missed: 0 disables it,
	// otherwise 1m to 720h. Defaults to 1h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^(0|([0-9]{1,5}(\\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$')`,message="resyncInterval must be a duration such as 30m or 1h, without a sign; 0 disables it"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^(0|([0-9]{1,5}(\\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$') || duration(self) == duration('0s') || (duration(self) >= duration('1m') && duration(self) <= duration('720h'))`,message="resyncInterval must be 0 (disabled) or between 1m and 720h"
	ResyncInterval *metav1.Duration `json:"resyncInterval,omitempty"`

	// Transport configures how members reach each other: credentials,
	// bandwidth and compression.
	// +optional
	Transport Transport `json:"transport,omitempty"`

	// Suspend stops replication for this group on every member while true;
	// changes made meanwhile are kept in each agent's journal and sent when
	// it is set back to false.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// MaxMemberPort is the highest port a member's address may name: the
// member's agent also listens on the next two (the agent-to-agent endpoint
// and metrics). The address's validation rule spells out the same number.
const MaxMemberPort = 65533

// Member is one node of a SyncGroup listed by name.
type Member struct {
	// Node is the member's node name (its SyncAgent's name): a DNS-1123
	// subdomain such as web-1 or web-1.example.org, at most 238 characters
	// (its agent's Lease, jailsync-agent-<node>, is a name of at most 253).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="size(self) <= 238",message="node must be at most 238 characters: its agent's Lease is named jailsync-agent-<node>, at most 253"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="node must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	Node string `json:"node"`

	// Address is the member's rsync daemon as an IP literal and port, such as
	// 127.0.0.2:7873 or [fd00::2]:7873. The agent-to-agent endpoint listens on
	// the next port. Required in standalone mode; in a cluster it overrides
	// the address the member's agent registered. Host names are refused: the
	// daemon's hosts allow cannot match them without reverse lookups. The
	// port is at most 65533 (MaxMemberPort): the agent also listens on the
	// next two.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9.]+|\\\\[[0-9a-fA-F:.]+\\\\]):[0-9]{1,5}$')",message="address must be an IP literal and a port, such as 127.0.0.2:7873 or [fd00::2]:7873; host names are refused because the rsync daemon's hosts allow cannot match them without reverse lookups"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9.]+|\\\\[[0-9a-fA-F:.]+\\\\]):[0-9]{1,5}$') || (self.startsWith('[') ? (isIP(self.substring(1, self.lastIndexOf(']'))) && ip(self.substring(1, self.lastIndexOf(']'))).family() == 6 && !ip(self.substring(1, self.lastIndexOf(']'))).isUnspecified()) : (isIP(self.substring(0, self.lastIndexOf(':'))) && ip(self.substring(0, self.lastIndexOf(':'))).family() == 4 && !ip(self.substring(0, self.lastIndexOf(':'))).isUnspecified()))",message="address must hold the member's own IP address: a valid IPv4 address, or an IPv6 address in brackets, and not 0.0.0.0 or ::"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9.]+|\\\\[[0-9a-fA-F:.]+\\\\]):[0-9]{1,5}$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65533)",message="address port must be between 1 and 65533: the agent also listens on the next two ports (agent-to-agent endpoint, metrics)"
	Address string `json:"address,omitempty"`
}

// ExcludePattern is one rsync exclude pattern (see SyncGroupSpec.Exclude).
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=1024
// +kubebuilder:validation:XValidation:rule=`!self.matches('[\\x00\\n\\r]')`,message="exclude patterns are one line each: remove the line break"
// +kubebuilder:validation:XValidation:rule=`!self.matches('^([-+:.!] |!$)')`,message="exclude takes patterns, not filter rules: drop the leading rule prefix (such as '- ' or '+ ')"
type ExcludePattern string

// DeletePolicy says whether deletions propagate to peers.
// +kubebuilder:validation:Enum=Propagate;Keep
type DeletePolicy string

const (
	// DeletesPropagate deletes a path on every member when one member deletes it.
	DeletesPropagate DeletePolicy = "Propagate"
	// DeletesKeep leaves the peers' copies when one member deletes a path.
	DeletesKeep DeletePolicy = "Keep"
)

// ConflictPolicy says how crossing writes are resolved.
// +kubebuilder:validation:Enum=NewestWins
type ConflictPolicy string

const (
	// ConflictsNewestWins keeps the version with the newest mtime (node name
	// breaks ties) and keeps the loser as a conflict copy.
	ConflictsNewestWins ConflictPolicy = "NewestWins"
)

// Transport configures the connections between members.
type Transport struct {
	// SecretRef names a Secret in jailsync's own namespace (the one the chart
	// installs into, jailsync-system by default) with the key rsync-password
	// (the shared password of the rsync daemons and the HMAC key of the
	// agent-to-agent endpoint) and optionally tls.crt, tls.key and ca.crt.
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`

	// BandwidthLimit caps each peer's transfer rate in bytes per second, as a
	// quantity such as 10Mi; at least 1Ki (rsync counts in KiB). Unset means
	// no limit.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('1Ki')) >= 0",message="bandwidthLimit must be at least 1Ki bytes per second; leave it unset for no limit"
	BandwidthLimit *resource.Quantity `json:"bandwidthLimit,omitempty"`

	// Compress compresses file data on the wire; worth it on slow links,
	// a cost in CPU on fast ones.
	// +optional
	Compress bool `json:"compress,omitempty"`
}

// SecretReference names a Secret in jailsync's own namespace.
type SecretReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="secretRef.name must be a Secret name: lowercase letters, digits, '-' and '.'"
	Name string `json:"name"`
}

// SyncGroupStatus is what the controller and the agents observe.
type SyncGroupStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Ready, Synced and Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Members is the state of each member as the controller last saw it.
	// +optional
	// +listType=map
	// +listMapKey=node
	// +kubebuilder:validation:MaxItems=64
	Members []MemberStatus `json:"members,omitempty"`

	// Peers is replication progress per direction (source to target). Each
	// agent owns the entries whose source is its node, written by
	// server-side apply; the controller removes the entries of departed
	// members.
	// +optional
	// +listType=map
	// +listMapKey=source
	// +listMapKey=target
	// +kubebuilder:validation:MaxItems=2048
	Peers []PeerStatus `json:"peers,omitempty"`

	// MemberCount is how many members the group has.
	// +optional
	MemberCount int32 `json:"memberCount"`

	// ReadyMembers is how many members are InSync.
	// +optional
	ReadyMembers int32 `json:"readyMembers"`

	// MembersReady is ReadyMembers/MemberCount as text (for example 2/3),
	// shown by kubectl get.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	MembersReady string `json:"membersReady,omitempty"`

	// MaxLagMilliseconds is the largest lagMilliseconds over all peers.
	// +optional
	MaxLagMilliseconds int64 `json:"maxLagMilliseconds"`
}

// MemberPhase is where a member stands.
// +kubebuilder:validation:Enum=Pending;Seeding;InSync;Lagging;Unreachable
type MemberPhase string

const (
	// MemberPending: the member's agent has not reported for this group yet.
	MemberPending MemberPhase = "Pending"
	// MemberSeeding: the member is receiving its initial copy.
	MemberSeeding MemberPhase = "Seeding"
	// MemberInSync: the member holds everything its peers have sent it.
	MemberInSync MemberPhase = "InSync"
	// MemberLagging: changes for the member are waiting or failing.
	MemberLagging MemberPhase = "Lagging"
	// MemberUnreachable: the member's agent lease expired or peers cannot reach it.
	MemberUnreachable MemberPhase = "Unreachable"
)

// MemberStatus is one member's state.
type MemberStatus struct {
	// Node is the member's node name.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`

	// Phase is Pending, Seeding, InSync, Lagging or Unreachable.
	// +optional
	Phase MemberPhase `json:"phase,omitempty"`

	// LastHeartbeat is when the member's agent last renewed its lease.
	// +optional
	LastHeartbeat *metav1.Time `json:"lastHeartbeat,omitempty"`
}

// PeerStatus is replication progress from one member (source) to another
// (target), written by the source's agent.
type PeerStatus struct {
	// Source is the node whose changes are sent.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source"`

	// Target is the node that receives them.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Target string `json:"target"`

	// PendingFiles is how many paths wait to be sent to the target.
	// +optional
	PendingFiles int64 `json:"pendingFiles,omitempty"`

	// PendingBytes is how many bytes of file data wait to be sent.
	// +optional
	PendingBytes int64 `json:"pendingBytes,omitempty"`

	// LastSyncTime is when the target last confirmed holding everything
	// that was pending.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// LagMilliseconds is the age of the oldest change not yet confirmed on
	// the target; 0 when nothing is pending.
	// +optional
	LagMilliseconds int64 `json:"lagMilliseconds,omitempty"`

	// FilesSynced counts paths confirmed on the target since the agent started.
	// +optional
	FilesSynced int64 `json:"filesSynced,omitempty"`

	// BytesSynced counts file bytes confirmed on the target since the agent started.
	// +optional
	BytesSynced int64 `json:"bytesSynced,omitempty"`

	// Conflicts counts crossing writes resolved between the two members.
	// +optional
	Conflicts int64 `json:"conflicts,omitempty"`

	// LastError is the last failure sending to the target, empty once a
	// later run succeeded.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`
}

// SyncGroup keeps one data directory identical on several nodes (or inside
// their jails); any member may write.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=sg
// +kubebuilder:printcolumn:name="Members",type=string,JSONPath=`.status.membersReady`,description="ready/total members"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Max-Lag-ms",type=integer,JSONPath=`.status.maxLagMilliseconds`,description="largest replication lag over all peers, in milliseconds"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SyncGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state.
	// +required
	Spec SyncGroupSpec `json:"spec"`

	// Status is the observed state.
	// +optional
	Status SyncGroupStatus `json:"status,omitempty"`
}

// SyncGroupList is a list of SyncGroups.
//
// +kubebuilder:object:root=true
type SyncGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SyncGroup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SyncGroup{}, &SyncGroupList{})
}
