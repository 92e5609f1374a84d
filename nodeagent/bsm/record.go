package bsm

import (
	"bytes"
	"fmt"
	"time"
)

// Record is one decoded audit record, a standalone file token of a trail
// file, or (from a Reader) a run of skipped bytes.
//
// A Record returned by Reader.Next, and the slices its accessors return,
// alias the Reader's buffer and are valid until the next call to Next; use
// Clone to keep one.
type Record struct {
	// Event is the header's event number; 0 for a file token and for
	// skipped bytes.
	Event Event
	// Modifier and Version are the header's.
	Modifier uint16
	Version  uint8
	// Time is when the event ended (the header's time, or the file token's),
	// in UTC.
	Time time.Time
	// Tokens holds the tokens in order: the header first and the trailer
	// last. After a decode error it holds the tokens before the fault.
	Tokens []Token
	// Err is nil for a record decoded in full. It wraps ErrUnknownToken,
	// ErrTruncated or ErrBadValue for a record that framed (header size and
	// trailer agree) but whose tokens could not all be decoded, and
	// ErrSkipped for bytes a Reader skipped (then Skipped counts them).
	Err error
	// Skipped is the number of bytes skipped when Err wraps ErrSkipped.
	Skipped int

	raw []byte
}

// minRecordSize is the smallest record: a header32 and a trailer.
const minRecordSize = sizeHeader32 + sizeTrailer

// reset empties r for reuse, keeping the token slice's storage.
func (r *Record) reset() {
	toks := r.Tokens[:0]
	*r = Record{Tokens: toks}
}

// Bytes returns the record's encoding (nil for skipped bytes). It aliases
// the decoder's buffer.
func (r *Record) Bytes() []byte { return r.raw }

// Clone returns a deep copy of r that does not alias any buffer.
func (r *Record) Clone() *Record {
	c := *r
	c.raw = bytes.Clone(r.raw)
	c.Tokens = make([]Token, len(r.Tokens))
	off := 0
	for i, t := range r.Tokens {
		c.Tokens[i] = Token{Type: t.Type, raw: c.raw[off : off+len(t.raw) : off+len(t.raw)]}
		off += len(t.raw)
	}
	return &c
}

// HasHeader reports whether r is an audit record (it starts with a header
// token), not a file token or skipped bytes.
func (r *Record) HasHeader() bool {
	if len(r.Tokens) == 0 {
		return false
	}
	switch r.Tokens[0].Type {
	case TokenHeader32, TokenHeader32Ex, TokenHeader64, TokenHeader64Ex:
		return true
	}
	return false
}

// IsFileToken reports whether r is the file token that stands alone at the
// start and end of a trail file.
func (r *Record) IsFileToken() bool {
	return len(r.Tokens) == 1 && r.Tokens[0].Type == TokenFile
}

// EventName is the event's name ("AUE_OPENAT_RWC"), or its number when
// unknown.
func (r *Record) EventName() string { return r.Event.String() }

// Decode decodes the record at the start of b into rec, reusing the storage
// of rec.Tokens, and returns the record's length. The record is a header
// token, the tokens, and a trailer whose count equals the header's size
// field; b may hold more bytes after it. It also decodes the file token
// that stands alone at the start and end of a trail file.
//
// On a framing error (no header, bad size, bad trailer, b too short) it
// returns 0 and the error. When the record frames but a token cannot be
// decoded, it returns the record's length and the error, which is also in
// rec.Err, and rec holds the tokens before the fault. rec aliases b.
func Decode(b []byte, rec *Record) (int, error) {
	rec.reset()
	n, err := frame(b, maxFrameSize)
	if err != nil {
		return 0, err
	}
	return n, rec.decode(b[:n])
}

// maxFrameSize bounds Decode, which works on bytes already in memory:
// the header's u32 size field is the only limit.
const maxFrameSize uint64 = 1<<32 - 1

// frame returns the length of the record or file token at the start of b,
// after checking the header size against limit and the trailer.
func frame(b []byte, limit uint64) (int, error) {
	if len(b) == 0 {
		return 0, ErrTruncated
	}
	switch TokenType(b[0]) {
	case TokenHeader32, TokenHeader32Ex, TokenHeader64, TokenHeader64Ex:
	case TokenFile:
		return frameFile(b)
	default:
		return 0, ErrNotRecord
	}
	if len(b) < 5 {
		return 0, ErrTruncated
	}
	size := be32(b[1:])
	if size < minRecordSize || uint64(size) > limit {
		return 0, fmt.Errorf("size %d (limits %d..%d): %w", size, minRecordSize, limit, ErrBadSize)
	}
	if uint64(len(b)) < uint64(size) {
		return 0, fmt.Errorf("record of %d bytes in %d: %w", size, len(b), ErrTruncated)
	}
	if !trailerOK(b[:size]) {
		return 0, ErrBadTrailer
	}
	return int(size), nil
}

// trailerOK checks that rec ends in a trailer whose count is len(rec).
func trailerOK(rec []byte) bool {
	t := rec[len(rec)-sizeTrailer:]
	return TokenType(t[0]) == TokenTrailer && be16(t[1:]) == trailerMagic &&
		uint64(be32(t[3:])) == uint64(len(rec))
}

// frameFile returns the length of a file token, which must end in the
// NUL of its name as au_to_file (libbsm/bsm_token.c) writes it.
func frameFile(b []byte) (int, error) {
	n, err := lenPrefixed(b, 9, 11)
	if err != nil {
		return 0, err
	}
	if len(b) < n {
		return 0, ErrTruncated
	}
	if n == 11 || b[n-1] != 0 {
		return 0, fmt.Errorf("file token name without NUL: %w", ErrBadValue)
	}
	return n, nil
}

// decode decodes a framed record (or file token) into r and returns r.Err.
func (r *Record) decode(raw []byte) error {
	r.raw = raw
	if TokenType(raw[0]) == TokenFile {
		t := Token{Type: TokenFile, raw: raw}
		f, _ := t.File()
		r.Time = f.Time()
		r.Tokens = append(r.Tokens, t)
		return nil
	}
	end := len(raw) - sizeTrailer
	n, err := tokenLen(raw[:end])
	if err != nil {
		return r.fail(fmt.Errorf("header: %w", err))
	}
	hdr := Token{Type: TokenType(raw[0]), raw: raw[:n]}
	h, _ := hdr.Header()
	r.Event, r.Modifier, r.Version, r.Time = h.Event, h.Modifier, h.Version, h.Time()
	r.Tokens = append(r.Tokens, hdr)
	for off := n; off < end; off += n {
		if n, err = tokenLen(raw[off:end]); err != nil {
			return r.fail(fmt.Errorf("token %d at offset %d: %w", len(r.Tokens), off, err))
		}
		r.Tokens = append(r.Tokens, Token{Type: TokenType(raw[off]), raw: raw[off : off+n]})
	}
	r.Tokens = append(r.Tokens, Token{Type: TokenTrailer, raw: raw[end:]})
	return nil
}

func (r *Record) fail(err error) error {
	r.Err = err
	return err
}

// first returns the first token for which match is true.
func (r *Record) first(match func(TokenType) bool) (Token, bool) {
	for _, t := range r.Tokens {
		if match(t.Type) {
			return t, true
		}
	}
	return Token{}, false
}

// Header returns the record's header fields.
func (r *Record) Header() (Header, bool) {
	if !r.HasHeader() {
		return Header{}, false
	}
	return r.Tokens[0].Header()
}

// Subject returns the subject token: the process that caused the event.
func (r *Record) Subject() (Subject, bool) {
	for _, t := range r.Tokens {
		switch t.Type {
		case TokenSubject32, TokenSubject64, TokenSubject32Ex, TokenSubject64Ex:
			return t.Subject()
		}
	}
	return Subject{}, false
}

// Return returns the return token: the BSM error number and return value.
func (r *Record) Return() (Return, bool) {
	for _, t := range r.Tokens {
		if t.Type == TokenReturn32 || t.Type == TokenReturn64 {
			return t.Return()
		}
	}
	return Return{}, false
}

// Zonename returns the zonename token's name: the name of the jail the
// subject runs in. Records of unjailed processes have none.
func (r *Record) Zonename() ([]byte, bool) {
	t, ok := r.first(func(t TokenType) bool { return t == TokenZonename })
	if !ok {
		return nil, false
	}
	return t.Text()
}

// Arg returns the first arg32 or arg64 token with argument number n.
func (r *Record) Arg(n uint8) (Arg, bool) {
	for _, t := range r.Tokens {
		if a, ok := t.Arg(); ok && a.Num == n {
			return a, true
		}
	}
	return Arg{}, false
}

// ArgDesc returns the first arg32 or arg64 token whose description is desc
// ("fd", "at fd 1", "flags").
func (r *Record) ArgDesc(desc string) (Arg, bool) {
	for _, t := range r.Tokens {
		if a, ok := t.Arg(); ok && string(a.Desc) == desc {
			return a, true
		}
	}
	return Arg{}, false
}

// Attr returns the first attr32 or attr64 token: the attributes of the
// record's first vnode (the file a path named, when it existed).
func (r *Record) Attr() (Attr, bool) {
	for _, t := range r.Tokens {
		if a, ok := t.Attr(); ok {
			return a, true
		}
	}
	return Attr{}, false
}

// Path returns the i-th path token's path (0 for the first), raw bytes as
// the kernel wrote them: absolute host paths, not normalized, empty when
// the kernel could not build one.
func (r *Record) Path(i int) ([]byte, bool) {
	for _, t := range r.Tokens {
		if t.Type != TokenPath {
			continue
		}
		if i == 0 {
			return t.Text()
		}
		i--
	}
	return nil, false
}

// Paths appends the paths of all path tokens to dst and returns it.
func (r *Record) Paths(dst [][]byte) [][]byte {
	for _, t := range r.Tokens {
		if p, ok := t.Text(); ok && t.Type == TokenPath {
			dst = append(dst, p)
		}
	}
	return dst
}

// Text returns the first text token's string (a symlink's target).
func (r *Record) Text() ([]byte, bool) {
	t, ok := r.first(func(t TokenType) bool { return t == TokenText })
	if !ok {
		return nil, false
	}
	return t.Text()
}
