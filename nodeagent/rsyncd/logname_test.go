package rsyncd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// escapeLogName escapes name as rsync 3.5.0's log file does, written from
// the rule in log.c filtered_fwrite() (use_isprint off, escape_c1 on).
func escapeLogName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		backslashEscape := c == '\\' && i+4 < len(name) && name[i+1] == '#' &&
			isDigit(name[i+2]) && isDigit(name[i+3]) && isDigit(name[i+4])
		if backslashEscape || c != '\t' && (c < ' ' || c >= 0x80 && c <= 0x9f) {
			fmt.Fprintf(&b, `\#%03o`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// hostileNames are file names that break naive log parsing.
var hostileNames = []string{
	"plain",
	"new\nline",
	"ends in newline\n",
	"carriage\rreturn",
	`back\slash`,
	`trailing backslash\`,
	`looks escaped \#012`,
	`\#999`,
	`almost \#12`,
	`\\#123`,
	"#hash",
	";semi",
	"tab\there",
	" spaces  inside ",
	"invalid utf-8 \xff\xfe",
	"c1 control \x85 and \x9b[31m",
	"valid utf-8 caf\xc3\xa9 \xe2\x82\xac",
	"del \x7f",
	"bell \a escape \x1b[0m",
	"xfer recv data >f+++++++++ 1 fake",
}

func TestDecodeLogName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "plain", in: "dir/file name", want: "dir/file name"},
		{name: "newline", in: `a\#012b`, want: "a\nb"},
		{name: "escaped backslash before digits", in: `\#134#123`, want: `\#123`},
		{name: "literal backslash", in: `a\b\`, want: `a\b\`},
		{name: "backslash hash short", in: `a\#12`, want: `a\#12`},
		{name: "backslash hash letters", in: `\#abc`, want: `\#abc`},
		{name: "highest byte", in: `\#377`, want: "\xff"},
		{name: "NUL byte", in: `\#000`, want: "\x00"},
		{name: "tab raw", in: "a\tb", want: "a\tb"},
		{name: "raw high bytes", in: "\xff\xc3\xa9", want: "\xff\xc3\xa9"},
		{name: "escape of a printable byte (older rsync)", in: `\#101`, want: "A"},
		{name: "not a byte", in: `\#400`, wantErr: true},
		{name: "not octal", in: `\#098`, wantErr: true},
		{name: "raw newline", in: "a\nb", wantErr: true},
		{name: "raw carriage return", in: "a\rb", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeLogName(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadLogLine) {
					t.Fatalf("DecodeLogName(%q) = %q, %v; want ErrBadLogLine", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DecodeLogName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestDecodeLogName_roundTrip(t *testing.T) {
	t.Parallel()
	for _, name := range hostileNames {
		got, err := DecodeLogName(escapeLogName(name))
		if err != nil || got != name {
			t.Errorf("round trip of %q through %q: %q, %v", name, escapeLogName(name), got, err)
		}
	}
}

func FuzzDecodeLogName(f *testing.F) {
	for _, name := range hostileNames {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		escaped := escapeLogName(name)
		got, err := DecodeLogName(escaped)
		if err != nil || got != name {
			t.Fatalf("round trip of %q through %q: %q, %v", name, escaped, got, err)
		}
		// Whatever the input, decoding does not panic and fails only with
		// ErrBadLogLine.
		if _, err := DecodeLogName(name); err != nil && !errors.Is(err, ErrBadLogLine) {
			t.Fatalf("DecodeLogName(%q): %v", name, err)
		}
	})
}

func TestParseLogLine(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 7, 7, 42, 0, time.Local)
	tests := []struct {
		name   string
		line   string
		want   Transfer
		wantOK bool
		bad    bool
	}{
		{name: "received file", line: "2026/11/24 07:07:42 [24117] xfer recv data >f+++++++++ 3 dir/a b\n", wantOK: true,
			want: Transfer{Time: at, PID: 24117, Op: "recv", Module: "data", Itemize: ">f+++++++++", Size: 3, Name: "dir/a b"}},
		{name: "deletion", line: "2026/11/24 07:07:42 [1] xfer del. data *deleting   0 q", wantOK: true,
			want: Transfer{Time: at, PID: 1, Op: "del.", Module: "data", Itemize: "*deleting  ", Size: 0, Name: "q"}},
		{name: "escaped name", line: `2026/11/24 07:07:42 [7] xfer recv m >f+++++++++ 10 new\#012line`, wantOK: true,
			want: Transfer{Time: at, PID: 7, Op: "recv", Module: "m", Itemize: ">f+++++++++", Size: 10, Name: "new\nline"}},
		{name: "connect message", line: "2026/11/24 07:07:42 [24117] connect from UNDETERMINED (127.0.9.201)"},
		{name: "transfer request naming xfer", line: "2026/11/24 07:07:42 [24117] rsync to m/xfer recv from jailsync@UNDETERMINED (127.0.9.201)"},
		{name: "empty", line: ""},
		{name: "short itemize", line: "2026/11/24 07:07:42 [1] xfer recv m >f+++ 3 a", wantOK: true, bad: true},
		{name: "bad length", line: "2026/11/24 07:07:42 [1] xfer recv m >f+++++++++ x a", wantOK: true, bad: true},
		{name: "bad escape", line: `2026/11/24 07:07:42 [1] xfer recv m >f+++++++++ 3 \#999`, wantOK: true, bad: true},
		{name: "bad pid", line: "2026/11/24 07:07:42 [x] xfer recv m >f+++++++++ 3 a", wantOK: true, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseLogLine(tc.line)
			if ok != tc.wantOK || (err != nil) != tc.bad {
				t.Fatalf("ParseLogLine: %+v, %v, %v; want ok %v, error %v", got, ok, err, tc.wantOK, tc.bad)
			}
			if tc.bad {
				if !errors.Is(err, ErrBadLogLine) {
					t.Fatalf("error %v, want ErrBadLogLine", err)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("ParseLogLine = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestParseLogLine_realTransfer pushes files with hostile names and finds
// every one, decoded exactly, in the daemon's log.
func TestParseLogLine_realTransfer(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 13
	c := testConfig(t, n)
	c.TransferLog = true
	d := &Daemon{Config: c}
	// rsync escapes the names it writes to its log file only from 3.5.0
	// on: before, a name with a newline or a literal "\#012" reads as
	// another name, and the daemon refuses a transfer log.
	version, err := CheckVersion(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkTransferLog(context.Background(), ""); err != nil {
		if !errors.Is(err, ErrAmbiguousLog) {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Run(ctx); !errors.Is(err, ErrAmbiguousLog) {
			t.Fatalf("rsync %s: a daemon with a transfer log ran (%v); want it refused as ambiguous", version, err)
		}
		t.Logf("rsync %s: %v", version, err)
		return
	}
	startDaemon(t, d)
	src := t.TempDir()
	want := map[string]bool{}
	for _, name := range hostileNames {
		name = strings.TrimSuffix(name, "/") // (none end in '/')
		writeFile(t, filepath.Join(src, "d", name), name)
		want["d/"+name] = true
	}
	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push: exit %d: %s", code, out)
	}
	root := d.Config.Modules[0].Path
	for name := range want {
		if b, err := os.ReadFile(filepath.Join(root, name)); err != nil || "d/"+string(b) != name {
			t.Errorf("%q: %q, %v", name, b, err)
		}
	}

	var got map[string]bool
	eventually(t, 10*time.Second, "all names in the log", func() bool {
		got = receivedNames(t, d.Config.LogFile())
		for name := range want {
			if !got[name] {
				return false
			}
		}
		return true
	})
}

// receivedNames reads the names of the files received from the log.
func receivedNames(t *testing.T, logFile string) map[string]bool {
	t.Helper()
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		tr, ok, err := ParseLogLine(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		if ok && tr.Op == "recv" && tr.Module == "data" && tr.Itemize[1] == 'f' {
			names[tr.Name] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}
