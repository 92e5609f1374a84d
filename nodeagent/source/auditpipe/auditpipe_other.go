//go:build !freebsd

package auditpipe

import (
	"fmt"
	"os"

	"github.com/go-logr/logr"
)

// Open fails: /dev/auditpipe exists only on FreeBSD.
func Open(uint32, logr.Logger) (*os.File, error) {
	return nil, fmt.Errorf("%w: /dev/auditpipe exists only on FreeBSD; decode a trail file or standard input instead", ErrUnavailable)
}
