package bsm

import "errors"

// These errors are returned, wrapped with the offset or token they concern,
// by Decode, DecodeToken and the Reader (in Record.Err). Test for them with
// errors.Is.
var (
	// ErrTruncated is returned when a token or record runs past the end of
	// the bytes that hold it: a length field points beyond the record, or
	// the input ends inside a record.
	ErrTruncated = errors.New("bsm: truncated")

	// ErrUnknownToken is returned when a record holds a token id this
	// package does not know. BSM tokens carry no generic length, so the rest
	// of that record cannot be decoded; the record's framing (header size
	// and trailer) is still valid and the next record decodes normally.
	ErrUnknownToken = errors.New("bsm: unknown token id")

	// ErrBadValue is returned when a token field holds a value its layout
	// does not allow: an address type other than 4 or 16, an unknown data
	// unit, a string without its terminating NUL.
	ErrBadValue = errors.New("bsm: invalid token field")

	// ErrNotRecord is returned by Decode when the bytes do not start with a
	// header token (or a standalone file token).
	ErrNotRecord = errors.New("bsm: not a record: no header token")

	// ErrBadSize is returned when a header's size field is smaller than a
	// header and a trailer, larger than the record size cap, or disagrees
	// with the header token's own layout.
	ErrBadSize = errors.New("bsm: bad record size")

	// ErrBadTrailer is returned when a record does not end in a trailer
	// token with magic 0xB105 whose count equals the header's size.
	ErrBadTrailer = errors.New("bsm: bad trailer")

	// ErrSkipped is the Err of the pseudo-record a Reader returns for bytes
	// it skipped because they did not frame as a record (garbage, a corrupt
	// size field, a record cut short at the end of the input). Whatever
	// those bytes held is lost: a consumer of file changes must rescan.
	ErrSkipped = errors.New("bsm: skipped bytes that frame no record")

	// ErrNoProgress is returned by Reader.Next when the underlying reader
	// keeps returning no data and no error.
	ErrNoProgress = errors.New("bsm: reader returned no data and no error repeatedly")
)
