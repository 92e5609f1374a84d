// Package poll waits in tests for a condition with a deadline, the way
// convergence is asserted ("eventually"), never with a bare sleep.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every 50 ms until it returns nil, and fails the test
// with cond's last error when timeout passes first.
func Until(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
