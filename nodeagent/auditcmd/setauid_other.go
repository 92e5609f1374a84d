//go:build !freebsd

package auditcmd

import "errors"

// setAUID fails: audit user ids are a BSM (FreeBSD) feature.
func setAUID(uint32) error {
	return errors.New("audit user ids need FreeBSD's audit subsystem")
}
