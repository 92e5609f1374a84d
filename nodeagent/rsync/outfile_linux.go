package rsync

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// outputFile is an anonymous file for a client's standard output: a memfd
// (memfd_create(2)), in memory, with no name anywhere.
func outputFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("rsync-output", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("rsync output file: %w", err)
	}
	return os.NewFile(uintptr(fd), "rsync-output"), nil
}
