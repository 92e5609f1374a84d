package jail

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Get finds a running jail by name (or by jid, for a name of digits only,
// as jail(8) does) with jail_get(2), reading its jid, name and path.
func Get(name string) (Info, error) {
	var (
		jid    int32
		path   = make([]byte, unix.PathMax)
		jname  = make([]byte, unix.PathMax)
		errmsg = make([]byte, 256)
	)
	key, keyVal := "name", cstr(name)
	if n, err := strconv.Atoi(name); err == nil {
		key, keyVal = "jid", nil
		jid = int32(n)
	}
	iov := []unix.Iovec{}
	add := func(k string, v []byte) {
		kb := cstr(k)
		iov = append(iov, unix.Iovec{Base: &kb[0], Len: uint64(len(kb))})
		if len(v) == 0 {
			iov = append(iov, unix.Iovec{})
			return
		}
		iov = append(iov, unix.Iovec{Base: &v[0], Len: uint64(len(v))})
	}
	jidBytes := (*[4]byte)(unsafe.Pointer(&jid))[:]
	if key == "jid" {
		add("jid", jidBytes)
		add("name", jname)
	} else {
		add("name", keyVal)
		add("jid", jidBytes)
	}
	add("path", path)
	add("errmsg", errmsg)
	_, _, e := unix.Syscall(unix.SYS_JAIL_GET, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), 0)
	if e != 0 {
		msg := string(bytes.TrimRight(errmsg, "\x00"))
		if errors.Is(e, unix.ENOENT) {
			return Info{}, fmt.Errorf("%w: %s", ErrNotRunning, msg)
		}
		return Info{}, fmt.Errorf("jail_get %s: %w: %s", name, e, msg)
	}
	info := Info{JID: int(jid), Name: name, Path: string(bytes.TrimRight(path, "\x00"))}
	if key == "jid" {
		info.Name = string(bytes.TrimRight(jname, "\x00"))
	}
	return info, nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }
