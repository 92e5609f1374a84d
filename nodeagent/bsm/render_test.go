package bsm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
)

func decoded(t *testing.T, b []byte) *Record {
	t.Helper()
	var rec Record
	if _, err := Decode(b, &rec); err != nil && rec.Err == nil {
		t.Fatal(err)
	}
	return &rec
}

func TestWriteText(t *testing.T) {
	tests := []struct {
		name string
		rec  *Record
		want string
	}{
		{"close", decoded(t, bsmtest.Close{Call: call(0), FD: 5}.Bytes()),
			"header,79,11,AUE_CLOSE,0,2026-04-21T09:58:39Z,131,argument,1,0x5,fd," +
				"subject,1001,1001,1001,1001,1001,4242,9,0 0.0.0.0,return,success,0,trailer,79\n"},
		{"failed unlink of an odd name, jailed", decoded(t, bsmtest.Unlink{Call: func() bsmtest.Call {
			c := failed(2)
			c.Jail = "web"
			return c
		}(), Path: "/data/www/a\nb\\c\xff"}.Bytes()),
			"header,95,11,AUE_UNLINK,0,2026-04-21T09:58:39Z,131,path,/data/www/a\\x0ab\\\\c\\xff," +
				"zone,web,subject,1001,1001,1001,1001,1001,4242,9,0 0.0.0.0,return,failure : ENOENT,4294967295,trailer,95\n"},
		{"OpenBSM file record", decoded(t, readFixture(t, "file_record")),
			"header,41,11,AUE_NULL,0,2008-12-28T15:12:18Z,126,file,1970-01-01T20:42:45Z,424,test,trailer,41\n"},
		{"record with an unknown token", decoded(t, bsmtest.Record(6, testTime, bsmtest.Path("/x"), []byte{0x99})),
			"header,32,11,AUE_UNLINK,0,2026-04-21T09:58:39Z,131,path,/x,error,token 2 at offset 24: 0x99 token: bsm: unknown token id\n"},
		{"skipped bytes", &Record{Skipped: 5, Err: errors.New("bsm: skipped bytes that frame no record: 5 bytes")},
			"skipped,5,error,bsm: skipped bytes that frame no record: 5 bytes\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, tc.rec); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("WriteText =\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func jsonOf(t *testing.T, rec *Record, root string) map[string]any {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, rec, root); err != nil {
		t.Fatal(err)
	}
	line := b.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("WriteJSON wrote not one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("WriteJSON wrote invalid JSON: %v\n%s", err, line)
	}
	return m
}

func TestWriteJSON_Open(t *testing.T) {
	rec := decoded(t, bsmtest.Open{Call: jailed(5, "web"), At: true, DirFD: 3, Flags: bsmtest.OWronly | bsmtest.OCreat,
		Mode: 0o644, Path: "/data/www/a//b"}.Bytes())
	m := jsonOf(t, rec, root)
	for k, want := range map[string]any{
		"event": 275.0, "eventName": "AUE_OPENAT_WC", "modifier": 0.0, "version": 11.0,
		"time": "2026-04-21T09:58:39.131Z", "size": float64(len(rec.Bytes())),
	} {
		if m[k] != want {
			t.Errorf("%s = %v (%T), want %v", k, m[k], m[k], want)
		}
	}
	toks := m["tokens"].([]any)
	var types []string
	for _, tok := range toks {
		types = append(types, tok.(map[string]any)["type"].(string))
	}
	wantTypes := []string{"header32", "arg32", "arg32", "arg32", "path", "zonename", "subject32", "return32", "trailer"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("token types = %v, want %v", types, wantTypes)
	}
	wantToks := map[int]map[string]any{
		1: {"type": "arg32", "arg-num": 3.0, "value": 420.0, "desc": "mode"},
		4: {"type": "path", "path": "/data/www/a//b"},
		5: {"type": "zonename", "name": "web"},
		6: {"type": "subject32", "audit-uid": 1001.0, "uid": 1001.0, "gid": 1001.0, "ruid": 1001.0, "rgid": 1001.0,
			"pid": 4242.0, "sid": 9.0, "tid": "0 0.0.0.0"},
		7: {"type": "return32", "errval": 0.0, "retval": 5.0},
	}
	for i, want := range wantToks {
		if got := toks[i].(map[string]any); !reflect.DeepEqual(got, want) {
			t.Errorf("token %d = %v\nwant %v", i, got, want)
		}
	}
	wantChange := map[string]any{"op": "create|write", "target": "path", "path": "a/b", "finished": false,
		"pid": 4242.0, "auid": 1001.0, "fd": 5.0, "zone": "web", "time": "2026-04-21T09:58:39.131Z"}
	if !reflect.DeepEqual(m["change"], wantChange) {
		t.Errorf("change = %v\nwant %v", m["change"], wantChange)
	}
	if _, ok := m["error"]; ok {
		t.Errorf("error present: %v", m["error"])
	}
}

func TestWriteJSON_InvalidUTF8(t *testing.T) {
	path := "/data/www/caf\xe9"
	rec := decoded(t, bsmtest.Rename{Call: call(0), From: "/data/www/ok", To: path}.Bytes())
	m := jsonOf(t, rec, root)
	tok := m["tokens"].([]any)[2].(map[string]any)
	if tok["path"] != `/data/www/caf\xe9` {
		t.Errorf("path = %q", tok["path"])
	}
	raw, err := base64.StdEncoding.DecodeString(tok["pathBytes"].(string))
	if err != nil || string(raw) != "/data/www/caf\xe9" {
		t.Errorf("pathBytes = %q, %v", raw, err)
	}
	ch := m["change"].(map[string]any)
	if ch["op"] != "rename" || ch["oldPath"] != "ok" || ch["path"] != `caf\xe9` {
		t.Errorf("change = %v", ch)
	}
	if raw, _ := base64.StdEncoding.DecodeString(ch["pathBytes"].(string)); string(raw) != "caf\xe9" {
		t.Errorf("change pathBytes = %q", raw)
	}
	if _, ok := ch["oldPathBytes"]; ok {
		t.Error("oldPathBytes for a valid UTF-8 old path")
	}

	// Valid UTF-8 with quotes, backslashes and control characters is exact.
	odd := "/data/www/\"q\" \\ \t\x01 ü"
	m = jsonOf(t, decoded(t, bsmtest.Unlink{Call: call(0), Path: odd}.Bytes()), root)
	tok = m["tokens"].([]any)[1].(map[string]any)
	if tok["path"] != odd {
		t.Errorf("path = %q, want %q", tok["path"], odd)
	}
	if _, ok := tok["pathBytes"]; ok {
		t.Error("pathBytes for valid UTF-8")
	}
}

func TestWriteJSON_Kinds(t *testing.T) {
	m := jsonOf(t, decoded(t, readFixture(t, "execve-long-args.trail")), "/usr")
	toks := m["tokens"].([]any)
	if args := toks[1].(map[string]any)["arg"].([]any); len(args) != 50 || args[0] != "grep" {
		t.Errorf("exec args = %v", args)
	}
	if attr := toks[3].(map[string]any); attr["mode"] != "555" || attr["nodeid"] != 24222.0 {
		t.Errorf("attr32 = %v", attr)
	}
	if m["change"] != nil {
		t.Errorf("execve mapped to a change: %v", m["change"])
	}

	m = jsonOf(t, &Record{Skipped: 3, Err: errors.New("skipped 3")}, root)
	if !reflect.DeepEqual(m, map[string]any{"skipped": 3.0, "error": "skipped 3"}) {
		t.Errorf("skipped record = %v", m)
	}

	m = jsonOf(t, decoded(t, bsmtest.File("trail\xff", testTime)), root)
	toks = m["tokens"].([]any)
	if m["time"] != "2026-04-21T09:58:39.131Z" || len(toks) != 1 || toks[0].(map[string]any)["type"] != "file" ||
		toks[0].(map[string]any)["nameBytes"] != base64.StdEncoding.EncodeToString([]byte("trail\xff")) {
		t.Errorf("file token = %v", m)
	}
	if _, ok := m["event"]; ok {
		t.Error("file token has an event")
	}

	m = jsonOf(t, decoded(t, bsmtest.Close{Call: call(0), FD: 5, Attr: existing}.Bytes()), root)
	wantChange := map[string]any{"op": "none", "target": "fd", "finished": true, "close": true, "pid": 4242.0,
		"auid": 1001.0, "fd": 5.0, "fsid": 77.0, "nodeid": 123456.0, "time": "2026-04-21T09:58:39.131Z"}
	if !reflect.DeepEqual(m["change"], wantChange) {
		t.Errorf("close change = %v\nwant %v", m["change"], wantChange)
	}
}

// TestWriteJSON_AllTokens renders every fixture and encoded token in a
// record and checks that the output is valid JSON.
func TestWriteJSON_AllTokens(t *testing.T) {
	stream, _ := kernelStream(t)
	for _, name := range fixtureNames(t, "_record") {
		stream = append(stream, readFixture(t, name)...)
	}
	r := NewReader(bytes.NewReader(stream))
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		jsonOf(t, rec, root)
		if err := WriteText(io.Discard, rec); err != nil {
			t.Fatal(err)
		}
	}
}
