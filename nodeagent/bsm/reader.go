package bsm

import (
	"fmt"
	"io"
)

// DefaultMaxRecordSize is the largest record a Reader from NewReader
// accepts: 1 MiB. MAXAUDITDATA (32767, sys/bsm/audit.h) limits only the
// records userland submits through audit(2); kernel records have no fixed
// bound. The largest are execve records: au_to_exec_strings()
// (sys/security/audit/bsm_token.c) copies argv and, under the arge policy,
// envp without a cap, and exec(2) bounds both together by ARG_MAX
// (sys/sys/syslimits.h; kern.argmax reports the running value: 262144 in
// the revision checked, larger on some newer 64-bit systems). Add two paths of at most 1024 bytes and the fixed
// tokens: 1 MiB leaves ample room. A size field above the cap is taken as
// corruption; raise it with NewReaderSize on a system whose kern.argmax
// is larger.
const DefaultMaxRecordSize = 1 << 20

const (
	// readSize is the read size a busy Reader grows its buffer to offer
	// (the buffer grows to twice that): more than the auditpipe queue holds
	// at its default limit of records of typical size, so one read usually
	// drains it. A Reader starts with initialBuffer and grows only while
	// its reads fill the buffer, or for a large record.
	readSize      = 64 << 10
	initialBuffer = 8 << 10
	// minRead is the least free space a Reader offers a read.
	minRead = 4 << 10
	// maxFileToken bounds a file token: u16 name length plus 11 bytes.
	maxFileToken = 11 + 0xffff
	// maxEmptyReads is how many reads may return no data and no error in a
	// row before Next gives up with ErrNoProgress (as bufio does).
	maxEmptyReads = 100
)

// Stats counts what a Reader has returned and skipped.
type Stats struct {
	// Records is the number of records and file tokens returned, decoded
	// in full or not.
	Records int64
	// BadRecords is the number of those returned with a decode error.
	BadRecords int64
	// SkippedBytes is the number of bytes skipped because they framed no
	// record, in SkipRuns runs (one pseudo-record each).
	SkippedBytes int64
	SkipRuns     int64
}

// Reader reads audit records from a byte stream such as /dev/auditpipe or
// a trail file. It reassembles records split across reads, frames each by
// its header's size field and checks its trailer, and skips bytes that do
// not frame (garbage, a corrupt size field) by scanning ahead for the next
// header whose trailer checks out. It never holds more than the record size
// cap plus one read's worth of bytes. A Reader is not safe for concurrent
// use.
type Reader struct {
	r          io.Reader
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	max        int // record size cap
	maxBuf     int // buffer size cap
	eof        bool
	err        error // read error not yet returned
	empty      int   // reads in a row that returned nothing
	filled     bool  // the last read filled the buffer: grow it
	synced     bool  // start is a record boundary: stream start or after a record
	rec        Record
	stats      Stats
}

// NewReader returns a Reader with the DefaultMaxRecordSize cap.
func NewReader(r io.Reader) *Reader { return NewReaderSize(r, DefaultMaxRecordSize) }

// NewReaderSize returns a Reader that takes a size field above
// maxRecordSize as corruption. Values below the smallest record size
// select DefaultMaxRecordSize.
func NewReaderSize(r io.Reader, maxRecordSize int) *Reader {
	if maxRecordSize < minRecordSize {
		maxRecordSize = DefaultMaxRecordSize
	}
	maxBuf := max(maxRecordSize, maxFileToken) + readSize
	return &Reader{
		r:      r,
		buf:    make([]byte, initialBuffer),
		max:    maxRecordSize,
		maxBuf: maxBuf,
		synced: true,
	}
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats { return r.stats }

// Next returns the next record. The record, its tokens and every slice its
// accessors return alias the Reader's buffer and are valid only until the
// next call to Next; Clone a record to keep it.
//
// A record that frames but whose tokens cannot all be decoded is returned
// with Record.Err set, and the next call continues with the next record.
// Bytes that frame no record are returned as one pseudo-record per run,
// with Err wrapping ErrSkipped and Skipped counting them. The error result
// is io.EOF at the end of the input, or the underlying reader's error;
// after a read error Next may be called again to retry.
func (r *Reader) Next() (*Record, error) {
	r.rec.reset()
	skipped := 0
	for {
		if r.start == r.end && !r.fill(1) {
			return r.stop(skipped)
		}
		if n := r.frameAt(); n > 0 {
			if skipped > 0 {
				// Report the skipped run first; the record stays in the
				// buffer and frames again on the next call.
				return r.skipRecord(skipped), nil
			}
			raw := r.buf[r.start : r.start+n]
			r.start += n
			r.synced = true
			r.stats.Records++
			if r.rec.decode(raw) != nil {
				r.stats.BadRecords++
			}
			return &r.rec, nil
		}
		if r.err != nil {
			return r.stop(skipped)
		}
		r.start++
		skipped++
		r.synced = false
	}
}

// stop ends a call to Next that ran out of input: it reports a pending
// skipped run first, then the read error or io.EOF.
func (r *Reader) stop(skipped int) (*Record, error) {
	if skipped > 0 {
		return r.skipRecord(skipped), nil
	}
	if r.err != nil {
		err := r.err
		r.err = nil
		return nil, err
	}
	if r.start < r.end {
		// Bytes remain that cannot frame before EOF: skip them.
		n := r.end - r.start
		r.start = r.end
		return r.skipRecord(n), nil
	}
	return nil, io.EOF
}

func (r *Reader) skipRecord(n int) *Record {
	r.stats.SkippedBytes += int64(n)
	r.stats.SkipRuns++
	r.rec.Skipped = n
	r.rec.Err = fmt.Errorf("%w: %d bytes", ErrSkipped, n)
	return &r.rec
}

// frameAt returns the length of the record or file token at r.start,
// reading more input as needed, or 0 when the bytes there frame nothing
// (or the input ended first). A file token is taken only at a record
// boundary: its check (a NUL at the end of the name) is too weak to scan
// for.
func (r *Reader) frameAt() int {
	var need int
	switch TokenType(r.buf[r.start]) {
	case TokenHeader32, TokenHeader32Ex, TokenHeader64, TokenHeader64Ex:
		if !r.fill(5) {
			return 0
		}
		size := be32(r.buf[r.start+1:])
		if size < minRecordSize || uint64(size) > uint64(r.max) {
			return 0
		}
		need = int(size)
	case TokenFile:
		if !r.synced || !r.fill(11) {
			return 0
		}
		need = 11 + int(be16(r.buf[r.start+9:]))
	default:
		return 0
	}
	if !r.fill(need) {
		return 0
	}
	n, err := frame(r.buf[r.start:r.end], uint64(r.max))
	if err != nil {
		return 0
	}
	return n
}

// fill reads until at least n bytes are buffered and reports whether it
// got them before the end of the input or a read error.
func (r *Reader) fill(n int) bool {
	for r.end-r.start < n {
		if r.eof || r.err != nil {
			return false
		}
		r.makeRoom()
		free := len(r.buf) - r.end
		m, err := r.r.Read(r.buf[r.end:])
		r.filled = m == free
		if m < 0 || m > free {
			r.err = fmt.Errorf("bsm: reader returned invalid count %d", m)
			return false
		}
		r.end += m
		switch {
		case err == io.EOF:
			r.eof = true
		case err != nil:
			r.err = err
		case m == 0:
			if r.empty++; r.empty >= maxEmptyReads {
				r.empty = 0
				r.err = ErrNoProgress
			}
		default:
			r.empty = 0
		}
	}
	return true
}

// makeRoom ensures the buffer has free space for a read. It grows the
// buffer while reads fill it (up to 2*readSize) and as the unread bytes of
// a large record accumulate (up to maxBuf: the unread bytes never reach
// the record cap or a file token's size), else moves the unread bytes to
// the front. Growing with the bytes received, not with the size a header
// claims, keeps a corrupt size field from costing memory.
func (r *Reader) makeRoom() {
	size := len(r.buf)
	if r.filled && size < 2*readSize {
		size = min(2*size, 2*readSize)
	}
	if unread := r.end - r.start; unread+minRead > size {
		size = min(max(2*size, unread+minRead), r.maxBuf)
	}
	if size > len(r.buf) {
		buf := make([]byte, size)
		r.end = copy(buf, r.buf[r.start:r.end])
		r.start = 0
		r.buf = buf
		r.filled = false
		return
	}
	if len(r.buf)-r.end >= minRead {
		return
	}
	r.end = copy(r.buf, r.buf[r.start:r.end])
	r.start = 0
}
