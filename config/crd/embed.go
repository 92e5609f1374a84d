// Package crd embeds the CRDs generated into bases/, so that the agent's
// standalone mode validates a SyncGroup file with the very schema and CEL
// rules the API server uses.
package crd

import _ "embed"

//go:embed bases/sync.jailsync.io_syncgroups.yaml
var syncGroups []byte

// SyncGroups returns the SyncGroup CRD manifest.
func SyncGroups() []byte { return syncGroups }
