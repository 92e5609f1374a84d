package rsync

import "golang.org/x/sys/unix"

// mknodChar makes a character device node (mode 0600).
func mknodChar(path string, major, minor uint32) error {
	return unix.Mknod(path, unix.S_IFCHR|0o600, unix.Mkdev(major, minor))
}
