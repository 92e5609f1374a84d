package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuditSource is how an agent learns of changes under its data roots.
// +kubebuilder:validation:Enum=auditpipe;fanotify;scan
type AuditSource string

const (
	// AuditSourceAuditpipe reads BSM records from FreeBSD's /dev/auditpipe.
	AuditSourceAuditpipe AuditSource = "auditpipe"
	// AuditSourceFanotify uses a Linux fanotify filesystem mark.
	AuditSourceFanotify AuditSource = "fanotify"
	// AuditSourceScan compares the tree with the index every scan interval;
	// used where neither of the others is available.
	AuditSourceScan AuditSource = "scan"
)

// SyncAgentStatus is what a node agent reports about itself.
type SyncAgentStatus struct {
	// Address is the agent's rsync daemon as an IP literal and port (such as
	// 10.0.0.5:7873); its agent-to-agent endpoint listens on the next port.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Address string `json:"address,omitempty"`

	// Version is the agent's version.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version,omitempty"`

	// OS is the host's operating system, architecture and release, such as
	// freebsd/amd64 14.2-RELEASE.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	OS string `json:"os,omitempty"`

	// AuditSource is how the agent detects changes: auditpipe, fanotify or scan.
	// +optional
	AuditSource AuditSource `json:"auditSource,omitempty"`

	// Conditions holds Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SyncAgent is one host's node agent, named after its node. The agent
// creates it when it starts and keeps it current; its labels are what a
// SyncGroup's nodeSelector matches. Liveness is not kept here but in a
// coordination.k8s.io Lease (see AgentLeaseName), so that heartbeats do not
// rewrite this object every few seconds.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.address`
// +kubebuilder:printcolumn:name="OS",type=string,JSONPath=`.status.os`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.status.auditSource`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SyncAgent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status is what the agent reports.
	// +optional
	Status SyncAgentStatus `json:"status,omitempty"`
}

// SyncAgentList is a list of SyncAgents.
//
// +kubebuilder:object:root=true
type SyncAgentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SyncAgent `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SyncAgent{}, &SyncAgentList{})
}
