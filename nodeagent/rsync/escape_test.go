package rsync

import (
	"fmt"
	"strings"
	"testing"
)

// escapeLikeRsync is what rsync prints for s with --8-bit-output (log.c,
// filtered_fwrite with use_isprint 0): control bytes but tab, and a
// backslash that starts "\#" and three digits (0-9), become "\#ooo".
func escapeLikeRsync(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		startsEscape := c == '\\' && i+4 < len(s) && s[i+1] == '#' && isDigit(s[i+2]) && isDigit(s[i+3]) && isDigit(s[i+4])
		if startsEscape || (c != '\t' && c < ' ') {
			fmt.Fprintf(&b, `\#%03o`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func TestUnescape(t *testing.T) {
	tests := []struct{ printed, want string }{
		{"plain name", "plain name"},
		{`new\#012line`, "new\nline"},
		{`lit\#134#012x`, `lit\#012x`},
		{`back\slash`, `back\slash`},
		{`trail\`, `trail\`},
		{`\#`, `\#`},
		{`\#01`, `\#01`},
		{`\#999`, `\#999`}, // not octal: cannot come from rsync, kept
		{`\#377\#376`, "\xff\xfe"},
		{"tab\there", "tab\there"},
		{`\#001\#002`, "\x01\x02"},
		{`a\#134\#134b`, `a\\b`},
	}
	for _, tc := range tests {
		t.Run(tc.printed, func(t *testing.T) {
			if got := Unescape(tc.printed); got != tc.want {
				t.Errorf("Unescape(%q) = %q, want %q", tc.printed, got, tc.want)
			}
		})
	}
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"new\nline", `lit\#012x`, `\\#123`, "\x00\x7f\xff", `\#\#1234`, "#;-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		printed := escapeLikeRsync(name)
		if strings.ContainsAny(printed, "\n\r") {
			t.Fatalf("escaped %q holds a line break: %q", name, printed)
		}
		if got := Unescape(printed); got != name {
			t.Fatalf("Unescape(escape(%q)) = %q (printed %q)", name, got, printed)
		}
	})
}
