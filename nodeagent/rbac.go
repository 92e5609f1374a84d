package nodeagent

// The node agent's rights, generated into config/rbac/agent by `make
// manifests`. Cluster-wide it reads SyncGroups and writes its own peers
// entries into their status (server-side apply) and its SyncAgent; in
// jailsync's namespace it reads transport Secrets and renews its Lease.
//
// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncgroups,verbs=get;list;watch
// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncgroups/status,verbs=get;patch
// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncagents,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncagents/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=jailsync-system,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=jailsync-system,resources=leases,verbs=get;create;update
