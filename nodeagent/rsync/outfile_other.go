//go:build !linux

package rsync

import (
	"fmt"
	"os"
)

// outputFile is an anonymous file for a client's standard output: a temp
// file, removed at once (x/sys has no memfd_create here).
func outputFile() (*os.File, error) {
	f, err := os.CreateTemp("", "jailsync-rsync-output-*")
	if err != nil {
		return nil, fmt.Errorf("rsync output file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("rsync output file: %w", err)
	}
	return f, nil
}
