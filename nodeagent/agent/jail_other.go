//go:build !freebsd

package agent

import "fmt"

// jailRoot fails: jails exist only on FreeBSD.
func jailRoot(cfg Config) (string, error) {
	return "", fmt.Errorf("SyncGroup %s names jail %q: jails exist only on FreeBSD", cfg.Group.Name, cfg.Group.Spec.Jail)
}
