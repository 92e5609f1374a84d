package journal

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// entryFormat 2 dropped format 1's old path and rename sequence: renames
// go by the rename log (LoggedRename), and an old name is an entry of its
// own. A format 1 entry still reads, without them.
const (
	entryFormat   = 2
	entryFormatV1 = 1
)

// errCorruptEntry is returned for a stored entry that cannot be decoded.
var errCorruptEntry = errors.New("corrupt journal entry")

// marshal encodes an entry: format, op, seq, order, since, size, then the
// path and version, each with a u32 length.
func (e Entry) marshal() []byte {
	b := make([]byte, 0, 1+2+8*4+8+len(e.Path)+len(e.Version))
	b = append(b, entryFormat)
	b = binary.BigEndian.AppendUint16(b, uint16(e.Op))
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, e.Order)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Since.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Size))
	for _, s := range [][]byte{[]byte(e.Path), e.Version} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func unmarshal(b []byte) (Entry, error) {
	const fixed = 1 + 2 + 8*4
	if len(b) < fixed || b[0] != entryFormat && b[0] != entryFormatV1 {
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
	// Format 1: path, old path, version (and a rename sequence after).
	fields := make([][]byte, 2, 3)
	if b[0] == entryFormatV1 {
		fields = fields[:3]
	}
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
	version := fields[len(fields)-1]
	e.Path = string(fields[0])
	if len(version) > 0 {
		e.Version = append([]byte(nil), version...)
	}
	return e, nil
}
