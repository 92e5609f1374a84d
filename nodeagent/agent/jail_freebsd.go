package agent

import (
	"context"
	"time"

	"github.com/jailsync/jailsync/nodeagent/jail"
)

// jailCheckInterval is how often a jail's data root is resolved again.
const jailCheckInterval = 5 * time.Second

// jailRoot resolves the data root inside the group's jail, and returns
// what watches it: the group stops with jail.ErrMoved once the jail runs
// with another root (restarted elsewhere), rather than go on syncing the
// directory it left.
func jailRoot(cfg Config) (string, func(context.Context) error, error) {
	tr := &jail.Tracker{Lookup: jail.Get, Name: cfg.Group.Spec.Jail, Path: cfg.Group.Spec.Path}
	root, _, err := tr.Resolve()
	if err != nil {
		return "", nil, err
	}
	return root, func(ctx context.Context) error { return tr.Watch(ctx, root, jailCheckInterval) }, nil
}
