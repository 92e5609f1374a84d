package bsm

import (
	"fmt"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/bsm/bsmtest"
)

// loopReader returns data over and over, in reads of at most chunk bytes
// (a pipe read returns what is queued, not whole records).
type loopReader struct {
	data  []byte
	off   int
	chunk int
}

func (l *loopReader) Read(p []byte) (int, error) {
	if len(p) > l.chunk {
		p = p[:l.chunk]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

// benchStream is n kernel-shaped records of a file workload: per file an
// openat that creates it, a close, and every fourth file a rename; some
// processes jailed; paths of typical length.
func benchStream(n int) ([]byte, int) {
	var stream []byte
	count := 0
	for i := 0; count < n; i++ {
		c := call(uint32(3 + i%60))
		c.PID = uint32(1000 + i%97)
		if i%3 == 0 {
			c.Jail = "web"
		}
		dir := fmt.Sprintf("/usr/jails/web/data/site%02d/assets/img", i%17)
		stream = append(stream, bsmtest.Open{Call: c, At: true, DirFD: bsmtest.AtFDCWD,
			Flags: bsmtest.OWronly | bsmtest.OCreat | bsmtest.OTrunc, Mode: 0o644,
			Path: fmt.Sprintf("%s/.upload-%06d.tmp", dir, i)}.Bytes()...)
		c.Ret = 0
		stream = append(stream, bsmtest.Close{Call: c, FD: uint32(3 + i%60)}.Bytes()...)
		count += 2
		if i%4 == 0 {
			stream = append(stream, bsmtest.Rename{Call: c, At: true, FromFD: bsmtest.AtFDCWD, ToFD: bsmtest.AtFDCWD,
				From: fmt.Sprintf("%s/.upload-%06d.tmp", dir, i), To: fmt.Sprintf("%s/photo-%06d.jpg", dir, i),
				FromAttr: existing}.Bytes()...)
			count++
		}
	}
	return stream, count
}

// BenchmarkDecode measures decoding through the Reader, one record per
// op, from reads of 64 KiB. "change" also maps each record with
// Record.Change (which allocates the relative path strings).
func BenchmarkDecode(b *testing.B) {
	stream, count := benchStream(3000)
	for _, tc := range []struct {
		name   string
		change bool
	}{{"reader", false}, {"reader+change", true}} {
		b.Run(tc.name, func(b *testing.B) {
			r := NewReader(&loopReader{data: stream, chunk: 64 << 10})
			b.SetBytes(int64(len(stream) / count))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				rec, err := r.Next()
				if err != nil || rec.Err != nil {
					b.Fatalf("Next: %v, %v", err, rec.Err)
				}
				if tc.change {
					rec.Change("/usr/jails/web/data")
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
