package agent

import "github.com/jailsync/jailsync/nodeagent/jail"

// jailRoot resolves the data root inside the group's jail.
func jailRoot(cfg Config) (string, error) {
	tr := &jail.Tracker{Lookup: jail.Get, Name: cfg.Group.Spec.Jail, Path: cfg.Group.Spec.Path}
	root, _, err := tr.Resolve()
	return root, err
}
