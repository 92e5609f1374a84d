package bsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
)

// item summarises what Next returned, copied so it outlives the call.
type item struct {
	event   Event
	raw     string
	skipped int
	err     string
}

func (it item) String() string {
	return fmt.Sprintf("{%v %d bytes skipped=%d err=%q}", it.event, len(it.raw), it.skipped, it.err)
}

func summarize(rec *Record) item {
	it := item{event: rec.Event, raw: string(rec.Bytes()), skipped: rec.Skipped}
	if rec.Err != nil {
		it.err = rec.Err.Error()
	}
	return it
}

// readAll reads r to its end; it fails the test on any error but io.EOF.
func readAll(t testing.TB, r *Reader) []item {
	t.Helper()
	var items []item
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			return items
		}
		if err != nil {
			t.Fatalf("Next() #%d: %v", i, err)
		}
		items = append(items, summarize(rec))
	}
}

func good(raw []byte) item {
	var rec Record
	if _, err := Decode(raw, &rec); err != nil {
		panic(err)
	}
	return summarize(&rec)
}

func skip(n int) item {
	return item{skipped: n, err: fmt.Sprintf("%v: %d bytes", ErrSkipped, n)}
}

// kernelStream is a trail-like stream: a file token, kernel records of an
// openat/close/rename/unlink/mkdir mix (one jailed, one header32_ex) and
// OpenBSM's reference records, and a closing file token.
func kernelStream(t testing.TB) ([]byte, []item) {
	recs := [][]byte{
		bsmtest.File("20260421095839.not_terminated", testTime),
		bsmtest.Open{Call: call(5), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: "/data/www/a"}.Bytes(),
		bsmtest.Close{Call: call(0), FD: 5}.Bytes(),
		bsmtest.Rename{Call: jailed(0, "web"), At: true, FromFD: 3, ToFD: 3, From: "/data/www/a", To: "/data/www/b", FromAttr: existing}.Bytes(),
		bsmtest.Unlink{Call: call(0), At: true, DirFD: bsmtest.AtFDCWD, Path: "/data/www/b", Attr: existing}.Bytes(),
		func() []byte {
			c := call(0)
			c.Host = v6
			return bsmtest.Mkdir{Call: c, At: true, DirFD: 4, Mode: 0o755, Path: "/data/www/d"}.Bytes()
		}(),
		readFixture(t, "execve-long-args.trail"),
		readFixture(t, "process64ex_record-IPv6"),
		readFixture(t, "E2BIG_record"),
		bsmtest.File("20260421095839.20260421100000", testTime),
	}
	var stream []byte
	var items []item
	for _, r := range recs {
		stream = append(stream, r...)
		items = append(items, good(r))
	}
	return stream, items
}

func checkItems(t *testing.T, got, want []item) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("item %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestReader_Next(t *testing.T) {
	stream, want := kernelStream(t)
	r := NewReader(bytes.NewReader(stream))
	checkItems(t, readAll(t, r), want)
	if s := r.Stats(); s != (Stats{Records: int64(len(want))}) {
		t.Errorf("Stats() = %+v", s)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next() after the end = %v, want io.EOF", err)
	}
}

// TestReader_SplitReads splits the stream in two reads at every offset, as
// a pipe read returns several records and part of one, and also reads it
// one byte and half a buffer at a time.
func TestReader_SplitReads(t *testing.T) {
	stream, want := kernelStream(t)
	for k := 0; k <= len(stream); k++ {
		r := NewReader(io.MultiReader(bytes.NewReader(stream[:k]), bytes.NewReader(stream[k:])))
		got := readAll(t, r)
		if len(got) != len(want) {
			t.Fatalf("split at %d: %d items, want %d: %v", k, len(got), len(want), got)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("split at %d: item %d = %v, want %v", k, i, got[i], want[i])
			}
		}
	}
	for name, rd := range map[string]io.Reader{
		"one byte":     iotest.OneByteReader(bytes.NewReader(stream)),
		"half":         iotest.HalfReader(bytes.NewReader(stream)),
		"data and EOF": iotest.DataErrReader(bytes.NewReader(stream)),
	} {
		t.Run(name, func(t *testing.T) { checkItems(t, readAll(t, NewReader(rd)), want) })
	}
}

func TestReader_Garbage(t *testing.T) {
	a := bsmtest.Close{Call: call(0), FD: 1}.Bytes()
	b := bsmtest.Unlink{Call: call(0), Path: "/data/www/x"}.Bytes()
	garbage := []byte("\x00\x14\x00\x00\x00\x05junk\x13\xb1\x05\x15\xff\xff\xff\xff\x11\x00")
	tests := []struct {
		name   string
		stream [][]byte
		want   []item
	}{
		{"before the first record", [][]byte{garbage, a}, []item{skip(len(garbage)), good(a)}},
		{"between records", [][]byte{a, garbage, b}, []item{good(a), skip(len(garbage)), good(b)}},
		{"after the last record", [][]byte{a, garbage}, []item{good(a), skip(len(garbage))}},
		{"only garbage", [][]byte{garbage}, []item{skip(len(garbage))}},
		{"a header id with a record inside its claimed size", [][]byte{{0x14, 0, 0, 0, 200}, a, b},
			[]item{skip(5), good(a), good(b)}},
		{"record cut short at the end", [][]byte{a, b[:len(b)-1]}, []item{good(a), skip(len(b) - 1)}},
		{"file token after garbage is not taken", [][]byte{a, {0x99}, bsmtest.File("x", testTime), b},
			[]item{good(a), skip(1 + len(bsmtest.File("x", testTime))), good(b)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := bytes.Join(tc.stream, nil)
			r := NewReader(iotest.HalfReader(bytes.NewReader(stream)))
			checkItems(t, readAll(t, r), tc.want)
			var skipped int64
			for _, it := range tc.want {
				skipped += int64(it.skipped)
			}
			if s := r.Stats(); s.SkippedBytes != skipped {
				t.Errorf("Stats().SkippedBytes = %d, want %d", s.SkippedBytes, skipped)
			}
		})
	}
}

// TestReader_CorruptSize corrupts the size field of the middle record of
// three: the Reader skips it and recovers at the next header whose
// trailer checks out.
func TestReader_CorruptSize(t *testing.T) {
	a := bsmtest.Close{Call: call(0), FD: 1}.Bytes()
	b := bsmtest.Open{Call: call(4), At: true, DirFD: bsmtest.AtFDCWD, Flags: bsmtest.OWronly | bsmtest.OCreat, Path: "/data/www/b"}.Bytes()
	c := bsmtest.Unlink{Call: call(0), Path: "/data/www/c"}.Bytes()
	for _, size := range []uint32{0, 1, 24, 25, uint32(len(b) - 1), uint32(len(b) + 1), uint32(len(b) + len(c)),
		4096, DefaultMaxRecordSize, DefaultMaxRecordSize + 1, 0xffffffff} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			bad := bytes.Clone(b)
			binary.BigEndian.PutUint32(bad[1:], size)
			stream := bytes.Join([][]byte{a, bad, c}, nil)
			r := NewReader(bytes.NewReader(stream))
			checkItems(t, readAll(t, r), []item{good(a), skip(len(bad)), good(c)})
		})
	}
	t.Run("trailer count", func(t *testing.T) {
		bad := bytes.Clone(b)
		binary.BigEndian.PutUint32(bad[len(bad)-4:], 7)
		r := NewReader(bytes.NewReader(bytes.Join([][]byte{a, bad, c}, nil)))
		checkItems(t, readAll(t, r), []item{good(a), skip(len(bad)), good(c)})
	})
	t.Run("trailer magic", func(t *testing.T) {
		bad := bytes.Clone(b)
		bad[len(bad)-6] = 0xb0
		r := NewReader(bytes.NewReader(bytes.Join([][]byte{a, bad, c}, nil)))
		checkItems(t, readAll(t, r), []item{good(a), skip(len(bad)), good(c)})
	})
}

func TestReader_UnknownToken(t *testing.T) {
	bad := bsmtest.Record(uint16(EventUnlink), testTime, bsmtest.Path("/data/www/x"), []byte{0x99, 1, 2},
		bsmtest.Subject32(call(0).Subject), bsmtest.Return32(0, 0))
	next := bsmtest.Close{Call: call(0), FD: 1}.Bytes()
	r := NewReader(bytes.NewReader(append(bytes.Clone(bad), next...)))
	rec, err := r.Next()
	if err != nil || !errors.Is(rec.Err, ErrUnknownToken) || !bytes.Equal(rec.Bytes(), bad) {
		t.Fatalf("Next() = %v, %v; want the record with ErrUnknownToken", rec.Err, err)
	}
	if got := tokenTypes(rec); !equalTypes(got, []TokenType{TokenHeader32, TokenPath}) {
		t.Errorf("tokens before the fault = %v", got)
	}
	rec, err = r.Next()
	if err != nil || rec.Err != nil || rec.Event != EventClose {
		t.Fatalf("Next() after the bad record = %+v, %v", rec, err)
	}
	if s := r.Stats(); s != (Stats{Records: 2, BadRecords: 1}) {
		t.Errorf("Stats() = %+v", s)
	}
}

// TestReader_LargeRecord reads an execve record of 600 KiB (over ARG_MAX of
// arguments) through small reads, and skips one over a small cap.
func TestReader_LargeRecord(t *testing.T) {
	args := make([]string, 600)
	for i := range args {
		args[i] = strings.Repeat("x", 1023)
	}
	big := bsmtest.Record(uint16(EventExecve), testTime, bsmtest.ExecArgs(args...), bsmtest.Path("/bin/echo"),
		bsmtest.Subject32(call(0).Subject), bsmtest.Return32(0, 0))
	small := bsmtest.Close{Call: call(0), FD: 1}.Bytes()
	stream := bytes.Join([][]byte{small, big, small}, nil)
	got := readAll(t, NewReader(iotest.HalfReader(bytes.NewReader(stream))))
	checkItems(t, got, []item{good(small), good(big), good(small)})

	got = readAll(t, NewReaderSize(bytes.NewReader(stream), 64<<10))
	checkItems(t, got, []item{good(small), skip(len(big)), good(small)})
}

type errAfter struct {
	r    io.Reader
	fail int // fail the read call with this index
	n    int
}

var errBroken = errors.New("broken pipe")

func (e *errAfter) Read(p []byte) (int, error) {
	e.n++
	if e.n == e.fail {
		return 0, errBroken
	}
	return e.r.Read(p)
}

func TestReader_ReadError(t *testing.T) {
	a := bsmtest.Close{Call: call(0), FD: 1}.Bytes()
	b := bsmtest.Close{Call: call(0), FD: 2}.Bytes()
	src := &errAfter{r: iotest.OneByteReader(bytes.NewReader(append(bytes.Clone(a), b...))), fail: 10}
	r := NewReader(src)
	if _, err := r.Next(); !errors.Is(err, errBroken) {
		t.Fatalf("Next() = %v, want the read error", err)
	}
	// The bytes read before the error are kept: retrying continues.
	checkItems(t, readAll(t, r), []item{good(a), good(b)})
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestReader_NoProgress(t *testing.T) {
	if _, err := NewReader(emptyReader{}).Next(); !errors.Is(err, ErrNoProgress) {
		t.Errorf("Next() = %v, want ErrNoProgress", err)
	}
}

// TestRecord_Clone checks that a clone survives its source buffer being
// reused, as the Reader's is by the next call to Next.
func TestRecord_Clone(t *testing.T) {
	stream, want := kernelStream(t)
	buf := bytes.Clone(stream)
	var kept []*Record
	for off := 0; off < len(buf); {
		var rec Record
		n, err := Decode(buf[off:], &rec)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, rec.Clone())
		off += n
	}
	clear(buf)
	var got []item
	for _, rec := range kept {
		got = append(got, summarize(rec))
	}
	checkItems(t, got, want)
	if fc, ok := kept[1].Change(root); !ok || fc.Path != "a" {
		t.Errorf("Change() of a clone = %+v, %v", fc, ok)
	}
	if s, ok := kept[6].Subject(); !ok || s.PID != 50009 {
		t.Errorf("Subject() of a clone = %+v, %v", s, ok)
	}
}

func TestDecode_Errors(t *testing.T) {
	rec := bsmtest.Close{Call: call(0), FD: 1}.Bytes()
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"not a header", []byte{0x23, 0, 1, 0}, ErrNotRecord},
		{"short size field", rec[:3], ErrTruncated},
		{"size below a header and trailer", append([]byte{0x14, 0, 0, 0, 24}, rec[5:]...), ErrBadSize},
		{"record cut short", rec[:len(rec)-1], ErrTruncated},
		{"bad trailer", append(bytes.Clone(rec[:len(rec)-1]), 0), ErrBadTrailer},
		{"file token without NUL", []byte{0x11, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 'x'}, ErrBadValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			if n, err := Decode(tc.b, &r); !errors.Is(err, tc.want) || n != 0 {
				t.Errorf("Decode = %d, %v; want 0, %v", n, err, tc.want)
			}
		})
	}
	// A header whose own layout overruns the size its size field gives.
	hdr := bsmtest.Header64Ex(33, 1, 0, v6, testTime)
	short := append(hdr[:26:26], bsmtest.Trailer(33)...)
	var r Record
	if n, err := Decode(short, &r); n != 33 || !errors.Is(err, ErrTruncated) || !errors.Is(r.Err, ErrTruncated) {
		t.Errorf("Decode(header64_ex in 33 bytes) = %d, %v", n, err)
	}
}

// TestReader_BufferSize checks that a Reader keeps a small buffer for a
// trickle of records and grows it for reads that fill it, within its cap.
func TestReader_BufferSize(t *testing.T) {
	stream, count := benchStream(2000)
	trickle := NewReader(iotest.HalfReader(bytes.NewReader(stream[:4096])))
	readAll(t, trickle)
	if len(trickle.buf) != initialBuffer {
		t.Errorf("trickle: buffer %d bytes, want %d", len(trickle.buf), initialBuffer)
	}
	busy := NewReader(&loopReader{data: stream, chunk: 1 << 20})
	for range count {
		if rec, err := busy.Next(); err != nil || rec.Err != nil {
			t.Fatal(err, rec.Err)
		}
	}
	if len(busy.buf) != 2*readSize {
		t.Errorf("busy: buffer %d bytes, want %d", len(busy.buf), 2*readSize)
	}
}

// TestReader_ClaimedSizeCostsNoMemory checks that a header claiming a
// record of the cap's size does not make the Reader allocate it before
// the bytes arrive.
func TestReader_ClaimedSizeCostsNoMemory(t *testing.T) {
	claim := []byte{0x14, 0, 0x0f, 0xff, 0xff} // about 1 MiB
	r := NewReader(bytes.NewReader(append(claim, make([]byte, 100)...)))
	checkItems(t, readAll(t, r), []item{skip(105)})
	if len(r.buf) > initialBuffer {
		t.Errorf("buffer grew to %d bytes for 105 bytes of input", len(r.buf))
	}
}
