//go:build !freebsd

package agent

import (
	"context"
	"fmt"
)

// jailRoot fails: jails exist only on FreeBSD.
func jailRoot(cfg Config) (string, func(context.Context) error, error) {
	return "", nil, fmt.Errorf("SyncGroup %s names jail %q: jails exist only on FreeBSD", cfg.Group.Name, cfg.Group.Spec.Jail)
}
