//go:build linux || freebsd

package index

import (
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// FromStat converts an lstat result to an Entry.
func FromStat(st *unix.Stat_t) Entry {
	return Entry{
		Size:  st.Size,
		Mtime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)),
		Ctime: time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)),
		Mode:  fileMode(uint32(st.Mode)),
		UID:   st.Uid,
		GID:   st.Gid,
		Ino:   uint64(st.Ino),
		Nlink: uint64(st.Nlink),
	}
}

// Lstat returns the Entry of path without following a final symlink.
func Lstat(path string) (Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return Entry{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return FromStat(&st), nil
}

// fileMode converts a st_mode to an fs.FileMode, as os.Lstat does.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
