//go:build linux

package fanotify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The layout of what read(2) returns on a fanotify group, from fanotify(7)
// (https://man7.org/linux/man-pages/man7/fanotify.7.html) and the kernel's
// include/uapi/linux/fanotify.h: events follow each other, each a struct
// fanotify_event_metadata (event_len, vers, reserved, metadata_len, mask,
// fd, pid) followed, up to event_len, by info records. Each record starts
// with struct fanotify_event_info_header (info_type, pad, len); a file
// identifier record continues with the filesystem's fsid (8 bytes) and a
// struct file_handle (handle_bytes, handle_type, f_handle), and the *_NAME
// records then hold a NUL-terminated name padded to 4 bytes.
const (
	infoHeaderLen = 4
	fsidLen       = 8
	handleHdrLen  = 8 // handle_bytes and handle_type
	maxHandleLen  = 128
)

var (
	// errBadEvent is returned by nextEvent when the bytes do not frame as
	// an event; the rest of the buffer cannot be trusted.
	errBadEvent = errors.New("malformed fanotify event")
	// errVersion is returned by nextEvent when the kernel speaks another
	// metadata version than FANOTIFY_METADATA_VERSION.
	errVersion = errors.New("unsupported fanotify metadata version")
)

// fid is a file identifier from an info record: the filesystem's fsid and
// a file handle. handle aliases the read buffer.
type fid struct {
	// key identifies the file for the directory cache: fsid, handle type
	// and handle bytes. It aliases the read buffer too.
	key    []byte
	typ    int32
	handle []byte
}

// event is one event from the group. For FAN_RENAME, dir and name are the
// old directory and name, newDir and newName the new ones; for other
// events dir is the directory and name the entry in it ("." for an event
// on the directory itself). obj is the object the event is about: the
// file written, the entry created, removed or renamed.
type event struct {
	mask    uint64
	pid     int32
	fd      int32
	dir     fid
	name    string
	hasDir  bool
	newDir  fid
	newName string
	hasNew  bool
	obj     fid
	hasObj  bool
}

// nextEvent decodes the event at the start of buf and returns it with the
// bytes after it. The event's fd is FAN_NOFD unless the metadata held
// another, even when nextEvent fails.
func nextEvent(buf []byte) (event, []byte, error) {
	ev := event{fd: unix.FAN_NOFD}
	if len(buf) < unix.FAN_EVENT_METADATA_LEN {
		return ev, nil, fmt.Errorf("%w: %d bytes left, less than the metadata", errBadEvent, len(buf))
	}
	ne := binary.NativeEndian
	evLen := int(ne.Uint32(buf[0:]))
	vers := buf[4]
	metaLen := int(ne.Uint16(buf[6:]))
	if vers != unix.FANOTIFY_METADATA_VERSION {
		return ev, nil, fmt.Errorf("%w: %d, want %d", errVersion, vers, unix.FANOTIFY_METADATA_VERSION)
	}
	if metaLen < unix.FAN_EVENT_METADATA_LEN || evLen < metaLen || evLen > len(buf) {
		return ev, nil, fmt.Errorf("%w: event_len %d, metadata_len %d, %d bytes", errBadEvent, evLen, metaLen, len(buf))
	}
	ev.mask = ne.Uint64(buf[8:])
	ev.fd = int32(ne.Uint32(buf[16:]))
	ev.pid = int32(ne.Uint32(buf[20:]))
	info := buf[metaLen:evLen]
	for len(info) > 0 {
		n, err := ev.addInfo(info)
		if err != nil {
			return ev, nil, err
		}
		info = info[n:]
	}
	return ev, buf[evLen:], nil
}

// addInfo decodes the info record at the start of b into ev and returns
// its length. Record types other than file identifiers are skipped.
func (ev *event) addInfo(b []byte) (int, error) {
	if len(b) < infoHeaderLen {
		return 0, fmt.Errorf("%w: %d bytes of info header", errBadEvent, len(b))
	}
	typ := b[0]
	n := int(binary.NativeEndian.Uint16(b[2:]))
	if n < infoHeaderLen || n > len(b) {
		return 0, fmt.Errorf("%w: info record of %d bytes, %d left", errBadEvent, n, len(b))
	}
	rec := b[infoHeaderLen:n]
	var err error
	switch typ {
	case unix.FAN_EVENT_INFO_TYPE_DFID_NAME, unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
		ev.dir, ev.name, err = decodeFid(rec, true)
		ev.hasDir = err == nil
	case unix.FAN_EVENT_INFO_TYPE_DFID:
		// An event on a directory itself, reported without a name.
		ev.dir, _, err = decodeFid(rec, false)
		ev.name, ev.hasDir = ".", err == nil
	case unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
		ev.newDir, ev.newName, err = decodeFid(rec, true)
		ev.hasNew = err == nil
	case unix.FAN_EVENT_INFO_TYPE_FID:
		ev.obj, _, err = decodeFid(rec, false)
		ev.hasObj = err == nil
	}
	return n, err
}

// decodeFid decodes the body of a file identifier record (after the
// header): fsid, file handle and, when named, the NUL-terminated name.
func decodeFid(rec []byte, named bool) (fid, string, error) {
	if len(rec) < fsidLen+handleHdrLen {
		return fid{}, "", fmt.Errorf("%w: fid record of %d bytes", errBadEvent, len(rec))
	}
	ne := binary.NativeEndian
	hlen := int(ne.Uint32(rec[fsidLen:]))
	end := fsidLen + handleHdrLen + hlen
	if hlen == 0 || hlen > maxHandleLen || end > len(rec) {
		return fid{}, "", fmt.Errorf("%w: file handle of %d bytes in a record of %d", errBadEvent, hlen, len(rec))
	}
	f := fid{
		key:    rec[:end],
		typ:    int32(ne.Uint32(rec[fsidLen+4:])),
		handle: rec[fsidLen+handleHdrLen : end],
	}
	if !named {
		return f, "", nil
	}
	rest := rec[end:]
	nul := bytes.IndexByte(rest, 0)
	if nul <= 0 {
		return fid{}, "", fmt.Errorf("%w: name without NUL or empty", errBadEvent)
	}
	return f, string(rest[:nul]), nil
}
