package journal

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
)

const entryFormat = 1

// errCorruptEntry is returned for a stored entry that cannot be decoded.
var errCorruptEntry = errors.New("corrupt journal entry")

// marshal encodes an entry: format, op, seq, order, since, size, then the
// path, old path and version, each with a u32 length, then the rename's
// seq (RenameSeq, added later: an entry stored without it reads as 0).
func (e Entry) marshal() []byte {
	b := make([]byte, 0, 1+2+8*4+12+len(e.Path)+len(e.OldPath)+len(e.Version)+8)
	b = append(b, entryFormat)
	b = binary.BigEndian.AppendUint16(b, uint16(e.Op))
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, e.Order)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Since.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Size))
	for _, s := range [][]byte{[]byte(e.Path), []byte(e.OldPath), e.Version} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return binary.BigEndian.AppendUint64(b, e.RenameSeq)
}

func unmarshal(b []byte) (Entry, error) {
	const fixed = 1 + 2 + 8*4
	if len(b) < fixed || b[0] != entryFormat {
		return Entry{}, errCorruptEntry
	}
	e := Entry{
		Op:    change.Op(binary.BigEndian.Uint16(b[1:])),
		Seq:   binary.BigEndian.Uint64(b[3:]),
		Order: binary.BigEndian.Uint64(b[11:]),
		Since: time.Unix(0, int64(binary.BigEndian.Uint64(b[19:]))),
		Size:  int64(binary.BigEndian.Uint64(b[27:])),
	}
	rest := b[fixed:]
	var fields [3][]byte
	for i := range fields {
		if len(rest) < 4 {
			return Entry{}, errCorruptEntry
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(len(rest)) < uint64(n) {
			return Entry{}, errCorruptEntry
		}
		fields[i], rest = rest[:n], rest[n:]
	}
	e.Path, e.OldPath = string(fields[0]), string(fields[1])
	if len(fields[2]) > 0 {
		e.Version = append([]byte(nil), fields[2]...)
	}
	if len(rest) >= 8 {
		e.RenameSeq = binary.BigEndian.Uint64(rest)
	}
	return e, nil
}
