package auditpipe

import "errors"

// ErrUnavailable is returned when /dev/auditpipe cannot be opened or set up,
// and on systems other than FreeBSD.
var ErrUnavailable = errors.New("auditpipe unavailable")
