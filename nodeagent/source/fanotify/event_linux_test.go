//go:build linux

package fanotify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// infoRecord encodes an info record as the kernel does: header, fsid, file
// handle and, when name is not empty, the name with a NUL, padded to 4.
func infoRecord(typ byte, htype int32, handle []byte, name string) []byte {
	ne := binary.NativeEndian
	b := []byte{typ, 0, 0, 0}
	b = ne.AppendUint64(b, 0x1122334455667788) // fsid
	b = ne.AppendUint32(b, uint32(len(handle)))
	b = ne.AppendUint32(b, uint32(htype))
	b = append(b, handle...)
	if name != "" {
		b = append(b, name...)
		b = append(b, 0)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	ne.PutUint16(b[2:], uint16(len(b)))
	return b
}

// rawEvent encodes an event's metadata followed by its info records.
func rawEvent(mask uint64, pid int32, records ...[]byte) []byte {
	ne := binary.NativeEndian
	b := ne.AppendUint32(nil, 0) // event_len, set below
	b = append(b, unix.FANOTIFY_METADATA_VERSION, 0)
	b = ne.AppendUint16(b, unix.FAN_EVENT_METADATA_LEN)
	b = ne.AppendUint64(b, mask)
	b = ne.AppendUint32(b, uint32(0xffffffff)) // fd: FAN_NOFD
	b = ne.AppendUint32(b, uint32(pid))
	for _, r := range records {
		b = append(b, r...)
	}
	ne.PutUint32(b, uint32(len(b)))
	return b
}

func TestNextEvent(t *testing.T) {
	h1, h2 := []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{9, 9, 9, 9}
	tests := []struct {
		name            string
		buf             []byte
		mask            uint64
		dir, newDir     []byte
		dirName, newNam string
		hasNew          bool
		obj             []byte
	}{{
		name:    "create with directory and name",
		buf:     rawEvent(unix.FAN_CREATE, 42, infoRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 1, h1, "new\nfile \xff")),
		mask:    unix.FAN_CREATE,
		dir:     h1,
		dirName: "new\nfile \xff",
	}, {
		name:    "event on a directory itself, no name",
		buf:     rawEvent(unix.FAN_ATTRIB|unix.FAN_ONDIR, 42, infoRecord(unix.FAN_EVENT_INFO_TYPE_DFID, 1, h1, "")),
		mask:    unix.FAN_ATTRIB | unix.FAN_ONDIR,
		dir:     h1,
		dirName: ".",
	}, {
		name: "rename with old and new names",
		buf: rawEvent(unix.FAN_RENAME, 42,
			infoRecord(unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, 1, h1, "old"),
			infoRecord(unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, 2, h2, "new")),
		mask:    unix.FAN_RENAME,
		dir:     h1,
		dirName: "old",
		newDir:  h2,
		newNam:  "new",
		hasNew:  true,
	}, {
		name: "object's own fid",
		buf: rawEvent(unix.FAN_CLOSE_WRITE, 42,
			infoRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 1, h1, "f"),
			infoRecord(unix.FAN_EVENT_INFO_TYPE_FID, 1, h2, "")),
		mask:    unix.FAN_CLOSE_WRITE,
		dir:     h1,
		dirName: "f",
		obj:     h2,
	}, {
		name: "rename with the object moved",
		buf: rawEvent(unix.FAN_RENAME, 42,
			infoRecord(unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, 1, h1, "old"),
			infoRecord(unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, 2, h2, "new"),
			infoRecord(unix.FAN_EVENT_INFO_TYPE_FID, 1, h1[:4], "")),
		mask:    unix.FAN_RENAME,
		dir:     h1,
		dirName: "old",
		newDir:  h2,
		newNam:  "new",
		hasNew:  true,
		obj:     h1[:4],
	}, {
		name: "link count change: the object only",
		buf:  rawEvent(unix.FAN_ATTRIB, 42, infoRecord(unix.FAN_EVENT_INFO_TYPE_FID, 1, h2, "")),
		mask: unix.FAN_ATTRIB,
		obj:  h2,
	}, {
		name: "unknown record type skipped",
		buf: rawEvent(unix.FAN_MODIFY, 42,
			infoRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 1, h1, "f"),
			infoRecord(0x7f, 1, h2, "")),
		mask:    unix.FAN_MODIFY,
		dir:     h1,
		dirName: "f",
	}, {
		name: "overflow without records",
		buf:  rawEvent(unix.FAN_Q_OVERFLOW, 42),
		mask: unix.FAN_Q_OVERFLOW,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := rawEvent(unix.FAN_DELETE, 7, infoRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 1, h2, "x"))
			ev, rest, err := nextEvent(append(append([]byte(nil), tc.buf...), next...))
			if err != nil {
				t.Fatalf("nextEvent: %v", err)
			}
			if ev.mask != tc.mask || ev.pid != 42 || ev.fd != -1 {
				t.Errorf("mask %#x pid %d fd %d, want %#x 42 -1", ev.mask, ev.pid, ev.fd, tc.mask)
			}
			if ev.hasDir != (tc.dir != nil) || !bytes.Equal(ev.dir.handle, tc.dir) || ev.name != tc.dirName {
				t.Errorf("dir %v %x %q, want %x %q", ev.hasDir, ev.dir.handle, ev.name, tc.dir, tc.dirName)
			}
			if ev.hasNew != tc.hasNew || !bytes.Equal(ev.newDir.handle, tc.newDir) || ev.newName != tc.newNam {
				t.Errorf("new dir %v %x %q, want %x %q", ev.hasNew, ev.newDir.handle, ev.newName, tc.newDir, tc.newNam)
			}
			if ev.hasObj != (tc.obj != nil) || !bytes.Equal(ev.obj.handle, tc.obj) {
				t.Errorf("object %v %x, want %x", ev.hasObj, ev.obj.handle, tc.obj)
			}
			if !bytes.Equal(rest, next) {
				t.Errorf("rest is %d bytes, want the next event's %d", len(rest), len(next))
			}
		})
	}
}

func TestNextEvent_malformed(t *testing.T) {
	good := rawEvent(unix.FAN_CREATE, 1, infoRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 1, []byte{1, 2, 3, 4}, "f"))
	ne := binary.NativeEndian
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		buf  []byte
		want error
	}{
		{"shorter than metadata", good[:10], errBadEvent},
		{"event longer than buffer", good[:len(good)-1], errBadEvent},
		{"metadata_len too small", edit(func(b []byte) []byte { ne.PutUint16(b[6:], 8); return b }), errBadEvent},
		{"other version", edit(func(b []byte) []byte { b[4] = 2; return b }), errVersion},
		{"info record past the event", edit(func(b []byte) []byte { ne.PutUint16(b[26:], 200); return b }), errBadEvent},
		{"info record shorter than header", edit(func(b []byte) []byte { ne.PutUint16(b[26:], 2); return b }), errBadEvent},
		{"empty handle", edit(func(b []byte) []byte { ne.PutUint32(b[36:], 0); return b }), errBadEvent},
		{"handle past the record", edit(func(b []byte) []byte { ne.PutUint32(b[36:], 100); return b }), errBadEvent},
		{"name without NUL", edit(func(b []byte) []byte {
			n := len(b)
			b[n-4], b[n-3], b[n-2], b[n-1] = 'f', 'f', 'f', 'f'
			return b
		}), errBadEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, _, err := nextEvent(tc.buf)
			if !errors.Is(err, tc.want) {
				t.Errorf("nextEvent = %v, want %v", err, tc.want)
			}
			if ev.fd != unix.FAN_NOFD {
				t.Errorf("fd %d, want FAN_NOFD: a descriptor to close", ev.fd)
			}
		})
	}
}

// FuzzNextEvent checks that no input panics nextEvent and that it always
// moves forward. Its seeds (a create, a rename, an overflow, two events in
// one read) are in testdata/fuzz/FuzzNextEvent.
func FuzzNextEvent(f *testing.F) {
	f.Fuzz(func(t *testing.T, buf []byte) {
		for len(buf) > 0 {
			_, rest, err := nextEvent(buf)
			if err != nil {
				return
			}
			if len(rest) >= len(buf) {
				t.Fatalf("nextEvent did not advance: %d bytes before, %d after", len(buf), len(rest))
			}
			buf = rest
		}
	})
}
