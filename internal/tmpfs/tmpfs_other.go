//go:build !linux

package tmpfs

import "testing"

// Mount fails the test: tests that need a filesystem of their own run on
// Linux (the project's development and CI systems).
func Mount(t testing.TB, options string) string {
	t.Helper()
	t.Fatalf("tmpfs.Mount is implemented on Linux only (options %q)", options)
	return ""
}
