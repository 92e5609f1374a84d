package bsm

import (
	"encoding/base64"
	"encoding/hex"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// jsonTime is RFC 3339 with milliseconds.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

// WriteText writes r as one line in the manner of praudit -l: the tokens
// in order, each as praudit's name for it followed by its values, all
// separated by commas. Unlike praudit it prints event names short
// (AUE_OPENAT_RWC), times in RFC 3339 UTC, error numbers by name, ids as
// numbers, and escapes control characters and bytes that are not valid
// UTF-8 as \xNN (a backslash as \\) so that a record stays on one line. A record that
// failed to decode ends with "error," and the error; skipped bytes print
// as "skipped,N,error,...".
func WriteText(w io.Writer, r *Record) error {
	var b []byte
	var fs []field
	if r.Skipped > 0 {
		b = append(b, "skipped,"...)
		b = strconv.AppendInt(b, int64(r.Skipped), 10)
		b = append(b, ',')
	}
	for i, t := range r.Tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, t.Type.PrauditName()...)
		fs = t.fields(fs[:0])
		for _, f := range fs {
			b = append(b, ',')
			b = appendTextValue(b, f)
		}
	}
	if r.Err != nil {
		if len(r.Tokens) > 0 {
			b = append(b, ',')
		}
		b = append(b, "error,"...)
		b = appendEscaped(b, []byte(r.Err.Error()))
	}
	b = append(b, '\n')
	_, err := w.Write(b)
	return err
}

func appendTextValue(b []byte, f field) []byte {
	switch f.kind {
	case fUint:
		return strconv.AppendUint(b, f.num, 10)
	case fEvent:
		return append(b, Event(f.num).String()...)
	case fHex:
		return strconv.AppendUint(append(b, "0x"...), f.num, 16)
	case fOctal:
		return strconv.AppendUint(b, f.num, 8)
	case fErrno:
		if f.num == 0 {
			return append(b, "success"...)
		}
		b = append(b, "failure : "...)
		if n := ErrnoName(uint8(f.num)); n != "" {
			return append(b, n...)
		}
		return strconv.AppendUint(b, f.num, 10)
	case fText:
		return appendEscaped(b, f.b)
	case fStrings:
		for i, s := range splitNUL(f.b) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendEscaped(b, s)
		}
		return b
	case fUints:
		for i := 0; i+4 <= len(f.b); i += 4 {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, u32(f.b, i), 10)
		}
		return b
	}
	return appendPlain(b, f)
}

// appendPlain appends the values that render the same in text and JSON
// strings.
func appendPlain(b []byte, f field) []byte {
	switch f.kind {
	case fMem:
		if len(f.b) == 0 {
			return b
		}
		return hex.AppendEncode(append(b, "0x"...), f.b)
	case fAddr:
		return f.addr.AppendTo(b)
	case fTime:
		return time.Unix(int64(f.num), 0).UTC().AppendFormat(b, time.RFC3339)
	case fTID:
		b = strconv.AppendUint(b, f.num, 10)
		return f.addr.AppendTo(append(b, ' '))
	case fString:
		return append(b, f.s...)
	case fUUID:
		return appendUUID(b, f.b)
	case fOctal:
		return strconv.AppendUint(b, f.num, 8)
	}
	return b
}

// appendUUID formats 16 bytes as 8-4-4-4-12 hex digits.
func appendUUID(b, u []byte) []byte {
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = appendHexByte(b, c)
	}
	return b
}

// splitNUL splits NUL-terminated strings (a last one may lack its NUL).
func splitNUL(b []byte) [][]byte { return appendSplitNUL(nil, b) }

// appendEscaped appends s for a text line: bytes that are not valid
// UTF-8 and control characters as \xNN, a backslash as \\.
func appendEscaped(b, s []byte) []byte {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && n == 1, r < 0x20, r == 0x7f:
			b = appendHexByte(append(b, '\\', 'x'), s[0])
		case r == '\\':
			b = append(b, '\\', '\\')
		default:
			b = append(b, s[:n]...)
		}
		s = s[n:]
	}
	return b
}

func appendHexByte(b []byte, c byte) []byte {
	const digits = "0123456789abcdef"
	return append(b, digits[c>>4], digits[c&15])
}

// appendJSONString appends s as a JSON string. Valid UTF-8 comes out
// exactly (control characters as \u00XX); each byte that is not valid
// UTF-8 becomes the four characters \xNN, which makes the string
// inexact: callers add the bytes in base64 then (see appendJSONText).
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && n == 1:
			b = appendHexByte(append(b, '\\', '\\', 'x'), s[0])
		case r < 0x20 || r == 0x7f:
			b = appendHexByte(append(b, '\\', 'u', '0', '0'), s[0])
		case r == '\\' || r == '"':
			b = append(b, '\\', byte(r))
		default:
			b = append(b, s[:n]...)
		}
		s = s[n:]
	}
	return append(b, '"')
}

// WriteJSON writes r as one JSON object on one line: "event" (number),
// "eventName", "modifier", "version", "time" (RFC 3339 with milliseconds,
// UTC), "size", "tokens" (each {"type": ..., fields named as praudit -x
// names its attributes}), "change" when the record maps to a change under
// root (see Record.Change), and "error" for a record that failed to decode.
// Skipped bytes write {"skipped": N, "error": ...}; a file token writes
// its time and tokens.
//
// Integers are JSON numbers, except file modes (octal strings, as praudit
// prints them). Strings are exact when they are valid UTF-8; otherwise
// each invalid byte appears as the text \xNN and the string field X is
// followed by "XBytes" (for a path token "pathBytes") with the exact bytes
// in base64.
func WriteJSON(w io.Writer, r *Record, root string) error {
	b := make([]byte, 0, 512)
	b = append(b, '{')
	if r.Skipped > 0 {
		b = strconv.AppendInt(append(b, `"skipped":`...), int64(r.Skipped), 10)
	} else {
		b = appendJSONHead(b, r)
		b = appendJSONTokens(b, r)
		if fc, ok := r.Change(root); ok {
			b = appendJSONChange(append(b, `,"change":`...), fc)
		}
	}
	if r.Err != nil {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, []byte(r.Err.Error()))
	}
	b = append(b, '}', '\n')
	_, err := w.Write(b)
	return err
}

func appendJSONHead(b []byte, r *Record) []byte {
	if r.HasHeader() {
		b = strconv.AppendUint(append(b, `"event":`...), uint64(r.Event), 10)
		b = appendJSONString(append(b, `,"eventName":`...), []byte(r.Event.String()))
		b = strconv.AppendUint(append(b, `,"modifier":`...), uint64(r.Modifier), 10)
		b = strconv.AppendUint(append(b, `,"version":`...), uint64(r.Version), 10)
		b = strconv.AppendInt(append(b, `,"size":`...), int64(len(r.raw)), 10)
		b = append(b, ',')
	}
	b = append(b, `"time":"`...)
	b = r.Time.UTC().AppendFormat(b, jsonTime)
	return append(b, '"')
}

func appendJSONTokens(b []byte, r *Record) []byte {
	b = append(b, `,"tokens":[`...)
	var fs []field
	for i, t := range r.Tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(append(b, `{"type":`...), []byte(t.Type.String()))
		fs = t.fields(fs[:0])
		for _, f := range fs {
			b = appendJSONField(b, f)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONField appends ,"name":value (and ,"nameBytes":... for strings
// that are not valid UTF-8).
func appendJSONField(b []byte, f field) []byte {
	b = appendJSONString(append(b, ','), []byte(f.name))
	b = append(b, ':')
	switch f.kind {
	case fUint, fHex, fErrno, fEvent:
		return strconv.AppendUint(b, f.num, 10)
	case fText:
		return appendJSONText(b, f.name, f.b)
	case fStrings:
		return appendJSONStrings(b, f.name, splitNUL(f.b))
	case fUints:
		b = append(b, '[')
		for i := 0; i+4 <= len(f.b); i += 4 {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, u32(f.b, i), 10)
		}
		return append(b, ']')
	}
	b = append(b, '"')
	b = appendPlain(b, f)
	return append(b, '"')
}

// appendJSONText appends a string value, then ,"nameBytes":base64 when it
// is not valid UTF-8.
func appendJSONText(b []byte, name string, s []byte) []byte {
	b = appendJSONString(b, s)
	if !utf8.Valid(s) {
		b = appendJSONString(append(b, ','), []byte(name+"Bytes"))
		b = append(b, ':', '"')
		b = base64.StdEncoding.AppendEncode(b, s)
		b = append(b, '"')
	}
	return b
}

func appendJSONStrings(b []byte, name string, ss [][]byte) []byte {
	plain := true
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
		plain = plain && utf8.Valid(s)
	}
	b = append(b, ']')
	if plain {
		return b
	}
	b = appendJSONString(append(b, ','), []byte(name+"Bytes"))
	b = append(b, ':', '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, s)
		b = append(b, '"')
	}
	return append(b, ']')
}

func appendJSONChange(b []byte, fc FileChange) []byte {
	b = appendJSONString(append(b, `{"op":`...), []byte(fc.Op.String()))
	b = appendJSONString(append(b, `,"target":`...), []byte(fc.Target.String()))
	if fc.Target == TargetPath {
		b = appendJSONText(append(b, `,"path":`...), "path", []byte(fc.Path))
		if fc.OldPath != "" {
			b = appendJSONText(append(b, `,"oldPath":`...), "oldPath", []byte(fc.OldPath))
		}
	}
	b = strconv.AppendBool(append(b, `,"finished":`...), fc.Finished)
	if fc.Close {
		b = append(b, `,"close":true`...)
	}
	b = strconv.AppendUint(append(b, `,"pid":`...), uint64(fc.PID), 10)
	b = strconv.AppendUint(append(b, `,"auid":`...), uint64(fc.AUID), 10)
	if fc.HasFD {
		b = strconv.AppendInt(append(b, `,"fd":`...), int64(fc.FD), 10)
	}
	if fc.Zone != "" {
		b = appendJSONText(append(b, `,"zone":`...), "zone", []byte(fc.Zone))
	}
	if fc.HasAttr {
		b = strconv.AppendUint(append(b, `,"fsid":`...), uint64(fc.Attr.FSID), 10)
		b = strconv.AppendUint(append(b, `,"nodeid":`...), fc.Attr.NodeID, 10)
	}
	b = append(b, `,"time":"`...)
	b = fc.Time.UTC().AppendFormat(b, jsonTime)
	return append(b, '"', '}')
}
