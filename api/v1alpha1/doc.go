// Package v1alpha1 holds the sync.jailsync.io/v1alpha1 API: SyncGroup, which
// names a data directory kept identical on several hosts, and SyncAgent, which
// a node agent registers for its host.
//
// +kubebuilder:object:generate=true
// +groupName=sync.jailsync.io
package v1alpha1
