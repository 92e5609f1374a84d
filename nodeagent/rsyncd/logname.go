package rsyncd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jailsync/jailsync/nodeagent/rsync"
)

// logTag starts every transfer line of the daemon's log. Other log lines
// are messages rsync writes itself ("connect from ...", "rsync to ...",
// "rsync: ...", "ERROR: ..."), none of which starts with it, and a client
// controls no line's start.
const logTag = "xfer"

// logFormat is the module's "log format" (rsyncd.conf(5)): the tag, the
// operation (%o: recv, send, del.), the module (%m, no spaces by Validate),
// the 11-character itemized changes (%i, "*deleting  " for deletions, so
// read by width, not split on spaces), the length (%l) and, last so that
// its spaces need no quoting, the name relative to the module (%f).
const logFormat = logTag + " %o %m %i %l %f"

// itemizeLen is the width of %i (log.c: "YXcstpoguax").
const itemizeLen = 11

// logTimeLayout is rsync's timestring() ("%Y/%m/%d %H:%M:%S", local time),
// which logit() in log.c puts before every line of a log file, followed by
// " [pid] ".
const logTimeLayout = "2006/01/02 15:04:05"

// ErrBadLogLine is returned (wrapped) by ParseLogLine and DecodeLogName for
// text that rsync's log cannot have produced: a malformed escape, a raw
// control character, a transfer line missing a field. A transfer line cut
// by rsync's 2047-byte message limit (see the package Caveats) is one.
var ErrBadLogLine = errors.New("malformed rsync log text")

// Transfer is one transfer line of the daemon's log.
type Transfer struct {
	// Time is when rsync logged the line, local time, whole seconds.
	Time time.Time
	// PID is the daemon process serving the connection.
	PID int
	// Op is "recv" (received from a client), "send" or "del.".
	Op string
	// Module is the module name.
	Module string
	// Itemize is the itemized change string (rsync(1) --itemize-changes),
	// for example ">f+++++++++" for a new file or "*deleting  ".
	Itemize string
	// Size is the file's length (a symlink's target length).
	Size int64
	// Name is the decoded path relative to the module root: "." for the
	// root, "dir/." for a transfer's destination directory itself.
	Name string
}

// ParseLogLine parses one line of the daemon's log file (the trailing
// newline optional). ok is false, with no error, for lines that are not
// transfer lines. A transfer line that does not parse returns an error
// wrapping ErrBadLogLine.
func ParseLogLine(line string) (t Transfer, ok bool, err error) {
	line = strings.TrimSuffix(line, "\n")
	if len(line) < len(logTimeLayout)+1 {
		return Transfer{}, false, nil
	}
	stamp, rest := line[:len(logTimeLayout)], line[len(logTimeLayout):]
	pidStr, rest, found := strings.Cut(strings.TrimPrefix(rest, " ["), "] ")
	if !found || !strings.HasPrefix(rest, logTag+" ") {
		return Transfer{}, false, nil
	}
	bad := func(what string) (Transfer, bool, error) {
		return Transfer{}, true, fmt.Errorf("%w: transfer line %q: %s", ErrBadLogLine, line, what)
	}
	if t.Time, err = time.ParseInLocation(logTimeLayout, stamp, time.Local); err != nil {
		return bad("time")
	}
	if t.PID, err = strconv.Atoi(pidStr); err != nil {
		return bad("pid")
	}
	rest = rest[len(logTag)+1:]
	var ok1, ok2 bool
	t.Op, rest, ok1 = strings.Cut(rest, " ")
	t.Module, rest, ok2 = strings.Cut(rest, " ")
	if !ok1 || !ok2 || len(rest) < itemizeLen+1 || rest[itemizeLen] != ' ' {
		return bad("fields")
	}
	t.Itemize, rest = rest[:itemizeLen], rest[itemizeLen+1:]
	size, name, found := strings.Cut(rest, " ")
	if !found {
		return bad("no name")
	}
	if t.Size, err = strconv.ParseInt(size, 10, 64); err != nil {
		return bad("length")
	}
	if t.Name, err = DecodeLogName(name); err != nil {
		return Transfer{}, true, fmt.Errorf("transfer line %q: %w", line, err)
	}
	return t, true, nil
}

// DecodeLogName undoes the escaping of rsync's log file. filtered_fwrite()
// in rsync's log.c writes a byte as "\#ooo" (three octal digits) when it is
// a control character other than tab, a C1 control (0x80-0x9f), or a
// backslash followed by '#' and three decimal digits; everything else,
// other bytes of invalid UTF-8 included, is written as it is. So every
// "\#" followed by three decimal digits in the log is an escape, and every
// other backslash is literal: the decoding is exact. Older rsync versions
// also escaped other non-printable bytes the same way, which decodes alike.
//
// It returns an error wrapping ErrBadLogLine for an escape that is not a
// byte ("\#400", "\#098") and for a raw control character, which the
// escaping never leaves.
func DecodeLogName(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+4 < len(s) && s[i+1] == '#' && isDigit(s[i+2]) && isDigit(s[i+3]) && isDigit(s[i+4]) {
			if _, err := strconv.ParseUint(s[i+2:i+5], 8, 8); err != nil {
				return "", fmt.Errorf("%w: escape %q at %d is not an octal byte", ErrBadLogLine, s[i:i+5], i)
			}
			i += 4
			continue
		}
		if c < ' ' && c != '\t' {
			return "", fmt.Errorf("%w: raw control character %q at %d", ErrBadLogLine, c, i)
		}
	}
	// The decoding itself is the client's: one implementation of rsync's
	// log.c escaping for the itemized output and the daemon's log.
	return rsync.Unescape(s), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
