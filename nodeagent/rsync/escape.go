package rsync

import "strings"

// Unescape reverses the escaping rsync applies to every line it prints
// (log.c, filtered_fwrite): a byte is written as a backslash, '#' and
// exactly three octal digits when it is a control character other than tab
// (newline is "\#012"), or when it is a backslash that starts such a
// sequence itself (a name holding `\#012` prints as `\#134#012`). No other
// backslash is escaped. Without --8-bit-output, bytes the locale cannot print
// are escaped the same way; with it (as this package runs rsync) they pass
// raw. Either way, this decoding is exact.
func Unescape(s string) string {
	i := strings.Index(s, `\#`)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		if v, ok := octal3(s[2:]); ok {
			b.WriteByte(v)
			s = s[5:]
		} else {
			// rsync checks for digits 0-9 before escaping: "\#" followed
			// by anything else is literal.
			b.WriteString(`\#`)
			s = s[2:]
		}
		i = strings.Index(s, `\#`)
	}
	b.WriteString(s)
	return b.String()
}

// octal3 reads three octal digits at the start of s as one byte.
func octal3(s string) (byte, bool) {
	if len(s) < 3 {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[:3]) {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 0xff {
		return 0, false
	}
	return byte(v), true
}
