package auditcmd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
)

// fixtures is where the project's shared BSM fixtures live.
const fixtures = "../../../shared/fixtures/bsm/openbsm"

func run(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, bytes.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestMain_DecodeTrailAsText(t *testing.T) {
	trail := filepath.Join(fixtures, "execve-long-args.trail")
	if _, err := os.Stat(trail); err != nil {
		t.Fatalf("the shared BSM fixtures are expected in %s (../shared beside the repository): %v", fixtures, err)
	}
	out, errOut, code := run(t, nil, "decode", trail)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "header,714,10,AUE_EXECVE,") {
		t.Fatalf("got %d lines, first %.80q", len(lines), lines[0])
	}
}

type jsonRecord struct {
	Event     int               `json:"event"`
	EventName string            `json:"eventName"`
	Time      string            `json:"time"`
	Tokens    []json.RawMessage `json:"tokens"`
	Error     string            `json:"error"`
	Change    *struct {
		Op        string `json:"op"`
		Path      string `json:"path"`
		PathBytes string `json:"pathBytes"`
		OldPath   string `json:"oldPath"`
		Finished  bool   `json:"finished"`
	} `json:"change"`
}

func TestMain_DecodeKernelRecordsAsJSON(t *testing.T) {
	root := t.TempDir()
	realRoot, _ := filepath.EvalSymlinks(root)
	c := bsmtest.Call{Subject: bsmtest.Subject{AUID: 1001, PID: 42}, Time: time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC), Ret: 5}
	jc := c
	jc.Jail = "web"
	stream := bytes.Join([][]byte{
		bsmtest.Open{Call: c, At: true, Flags: bsmtest.OWronly | bsmtest.OCreat, Mode: 0o644, Path: realRoot + "/new file"}.Bytes(),
		[]byte("garbage between records"),
		bsmtest.Rename{Call: jc, At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD, From: realRoot + "/a", To: realRoot + "//b/../c", FromAttr: &bsmtest.Attr{Mode: 0o644}}.Bytes(),
		bsmtest.Unlink{Call: c, At: true, DirFD: bsmtest.AtFDCWD, Path: realRoot + "/\xff\xfe-bad", Attr: &bsmtest.Attr{Mode: 0o644}}.Bytes(),
		bsmtest.Mkdir{Call: c, At: true, DirFD: bsmtest.AtFDCWD, Mode: 0o755, Path: realRoot + "/dir"}.Bytes(),
		bsmtest.Close{Call: c, FD: 5}.Bytes(),
	}, nil)
	// Flags after the file as well as before it.
	out, errOut, code := run(t, stream, "decode", "-", "-o", "json", "--root", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var recs []jsonRecord
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var r jsonRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line is not JSON: %v\n%s", err, line)
		}
		recs = append(recs, r)
	}
	if len(recs) != 6 {
		t.Fatalf("%d JSON lines, want 6 (5 records and the skipped garbage):\n%s", len(recs), out)
	}
	timeRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	type want struct{ eventName, op, path, oldPath string }
	wants := []*want{
		{"AUE_OPENAT_WC", "create|write", "new file", ""},
		nil, // the garbage: an error, then decoding goes on
		{"AUE_RENAMEAT", "rename", "c", "a"},
		{"AUE_UNLINKAT", "remove", "\xff\xfe-bad", ""},
		{"AUE_MKDIRAT", "mkdir", "dir", ""},
		{"AUE_CLOSE", "", "", ""},
	}
	for i, w := range wants {
		r := recs[i]
		if w == nil {
			if r.Error == "" {
				t.Errorf("record %d: garbage printed without an error: %+v", i, r)
			}
			continue
		}
		if r.EventName != w.eventName || r.Event == 0 || !timeRE.MatchString(r.Time) || len(r.Tokens) < 3 {
			t.Errorf("record %d: %s (%d) at %q with %d tokens, want %s", i, r.EventName, r.Event, r.Time, len(r.Tokens), w.eventName)
		}
		if w.op == "" {
			continue
		}
		if r.Change == nil {
			t.Errorf("record %d (%s): no change", i, w.eventName)
			continue
		}
		path := r.Change.Path
		if r.Change.PathBytes != "" {
			b, err := base64.StdEncoding.DecodeString(r.Change.PathBytes)
			if err != nil {
				t.Errorf("record %d: pathBytes not base64: %v", i, err)
			}
			path = string(b)
		}
		if r.Change.Op != w.op || path != w.path || r.Change.OldPath != w.oldPath {
			t.Errorf("record %d: change %s %q (old %q), want %s %q (old %q)", i, r.Change.Op, path, r.Change.OldPath, w.op, w.path, w.oldPath)
		}
	}
	if recs[3].Change != nil && (recs[3].Change.PathBytes == "" || strings.Contains(recs[3].Change.Path, "\xff")) {
		t.Errorf("a non-UTF-8 path must be escaped in path and exact in pathBytes: %+v", recs[3].Change)
	}
}

func TestMain_Usage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no subcommand", nil, 2},
		{"unknown subcommand", []string{"encode"}, 2},
		{"bad format", []string{"decode", "-o", "xml"}, 2},
		{"missing file", []string{"decode", "/nonexistent/trail"}, 1},
		{"pipe and file", []string{"decode", "--pipe", "x"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, nil, tc.args...)
			if code != tc.code || errOut == "" {
				t.Fatalf("exit %d (%q), want %d with a message", code, errOut, tc.code)
			}
		})
	}
}
