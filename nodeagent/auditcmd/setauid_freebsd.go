package auditcmd

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setAUID is setauid(2): int setauid(const au_id_t *auid), au_id_t being
// uint32 (sys/bsm/audit.h). x/sys has the syscall number but no wrapper.
func setAUID(auid uint32) error {
	if _, _, errno := unix.Syscall(unix.SYS_SETAUID, uintptr(unsafe.Pointer(&auid)), 0, 0); errno != 0 {
		return errno
	}
	return nil
}
