package bsm

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
	"github.com/jailsync/jailsync/nodeagent/change"
)

// FuzzDecode feeds arbitrary bytes to Decode, DecodeToken and the Reader
// and renders whatever comes out. Properties: no panic; Decode never
// claims more bytes than it got; the Reader accounts for every input byte
// exactly once (in a record or a skipped run), so it cannot loop; it
// frames the same records whether the input arrives whole or one byte per
// read; WriteJSON always writes one line of valid JSON.
func FuzzDecode(f *testing.F) {
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		abs, _ := filepath.Abs(fixtureDir)
		f.Fatalf("OpenBSM fixtures for the seed corpus: %v: expected in %s (/work/shared/fixtures/bsm/openbsm)", err, abs)
	}
	for _, e := range entries {
		if e.Name() != "LICENSE" && e.Name() != "SOURCE" {
			f.Add(readFixture(f, e.Name()))
		}
	}
	stream, _ := kernelStream(f)
	f.Add(stream)
	for off := 0; off < len(stream); {
		var rec Record
		n, err := Decode(stream[off:], &rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(stream[off : off+n])
		off += n
	}
	f.Add(bsmtest.Record(uint16(EventExecve), testTime, bsmtest.ExecEnv("A=1", "B"), bsmtest.Arg64(1, "x", 1),
		bsmtest.Return64(0, 1), bsmtest.Attr64(*existing), bsmtest.Subject64Ex(testSubj), bsmtest.NewGroups(1, 2),
		bsmtest.SockUnix(1, "/s"), bsmtest.PrivSet("a", "b"), bsmtest.UPriv(1, "p"), bsmtest.Rights(1, 2)))
	f.Fuzz(fuzzDecode)
}

// fuzzDecode is the body of FuzzDecode.
func fuzzDecode(t *testing.T, data []byte) {
	var rec Record
	n, err := Decode(data, &rec)
	if n < 0 || n > len(data) || (n == 0) != (err != nil && rec.Err == nil) {
		t.Fatalf("Decode = %d, %v (rec.Err %v) for %d bytes", n, err, rec.Err, len(data))
	}
	if n > 0 {
		exercise(t, &rec)
	}
	if tok, n, err := DecodeToken(data); err == nil {
		if n != tok.Len() || n > len(data) {
			t.Fatalf("DecodeToken length %d, token %d, input %d", n, tok.Len(), len(data))
		}
		exerciseToken(tok)
	}
	whole := fuzzRead(t, NewReaderSize(bytes.NewReader(data), 4096), len(data))
	split := fuzzRead(t, NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 4096), len(data))
	if len(whole) != len(split) {
		t.Fatalf("whole reads gave %d items, one-byte reads %d", len(whole), len(split))
	}
	for i := range whole {
		if whole[i] != split[i] {
			t.Fatalf("item %d: whole %v, one-byte %v", i, whole[i], split[i])
		}
	}
}

// fuzzRead reads r to its end, exercising each record, and checks that
// records and skipped runs add up to the input's size.
func fuzzRead(t *testing.T, r *Reader, size int) []item {
	var items []item
	total := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		total += len(rec.Bytes()) + rec.Skipped
		if total > size || len(items) > size {
			t.Fatalf("read %d bytes in %d items from %d", total, len(items), size)
		}
		exercise(t, rec)
		items = append(items, summarize(rec))
	}
	if total != size {
		t.Fatalf("records and skips hold %d bytes of %d", total, size)
	}
	return items
}

// exercise calls every accessor and renderer on rec.
func exercise(t *testing.T, rec *Record) {
	for _, tok := range rec.Tokens {
		exerciseToken(tok)
	}
	rec.Header()
	rec.Subject()
	rec.Return()
	rec.Zonename()
	rec.Arg(1)
	rec.Attr()
	for _, p := range rec.Paths(nil) {
		for _, root := range []string{"/", "/data"} {
			got, gotOK := relPath(root, p)
			want, wantOK := change.Rel(root, string(p))
			if got != want || gotOK != wantOK {
				t.Fatalf("relPath(%q, %q) = %q, %v; change.Rel %q, %v", root, p, got, gotOK, want, wantOK)
			}
		}
	}
	rec.Text()
	rec.Clone()
	_ = rec.EventName()
	rec.Change("/data")
	rec.Change("")
	if err := WriteText(io.Discard, rec); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, rec, "/data"); err != nil {
		t.Fatal(err)
	}
	line := b.Bytes()
	if !json.Valid(line) || bytes.IndexByte(line, '\n') != len(line)-1 {
		t.Fatalf("WriteJSON wrote %q", line)
	}
}

func exerciseToken(tok Token) {
	tok.Header()
	tok.Trailer()
	tok.Subject()
	tok.Arg()
	tok.Return()
	tok.Attr()
	tok.Text()
	tok.File()
	tok.Exit()
	tok.ExecStrings(nil)
	tok.UUID()
	tok.fields(nil)
	_ = tok.Type.String() + tok.Type.PrauditName()
}
