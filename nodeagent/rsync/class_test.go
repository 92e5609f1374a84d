package rsync

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		code int
		want Class
	}{
		{0, OK},
		{1, FatalPeer}, {2, FatalPeer}, {3, FatalPeer}, {4, FatalPeer}, {5, FatalPeer},
		{6, Retry},
		{10, Retry}, {11, Retry}, {12, Retry}, {13, Retry}, {14, Retry}, {15, Retry}, {16, Retry},
		{19, Retry}, {20, Retry}, {21, Retry}, {22, Retry},
		{23, FatalFile},
		{24, Partial},
		{25, FatalPeer},
		{30, Retry}, {35, Retry},
		{124, FatalPeer}, {125, FatalPeer}, {126, FatalPeer}, {127, FatalPeer},
		// Unknown codes are retried, never fatal (lsyncd #97, #259).
		{-1, Retry}, {7, Retry}, {17, Retry}, {26, Retry}, {99, Retry}, {255, Retry},
	}
	for _, tc := range tests {
		t.Run(Describe(tc.code), func(t *testing.T) {
			if got := Classify(tc.code); got != tc.want {
				t.Errorf("Classify(%d) = %v, want %v", tc.code, got, tc.want)
			}
			d := Describe(tc.code)
			if d == "" {
				t.Errorf("Describe(%d) is empty", tc.code)
			}
			_, known := exitCodes()[tc.code]
			if !known && !strings.Contains(d, "unknown") {
				t.Errorf("Describe(%d) = %q: an unknown code must say so", tc.code, d)
			}
		})
	}
}

func TestClassify_EveryErrcodeHasADescription(t *testing.T) {
	// The codes of RsyncProject/rsync errcode.h, and 6 of older manuals.
	for _, code := range []int{0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 24, 25, 30, 35, 124, 125, 126, 127} {
		if _, ok := exitCodes()[code]; !ok {
			t.Errorf("exit code %d is not in the table", code)
		}
		if d := Describe(code); strings.Contains(d, "unknown") {
			t.Errorf("Describe(%d) = %q", code, d)
		}
	}
}

// TestClassifyRun: an exit code refined by what rsync said. A daemon that
// turned the client away for now (exit 5: max connections, no greeting, or
// the connection closed before the startup line without a refusal) is
// retried, as is a run the receiver stopped because the list changed here
// while rsync read it (exit 2 at a parent read as a file, Result.Unmade);
// the rest of those codes is the peer's.
func TestClassifyRun(t *testing.T) {
	for _, tc := range []struct {
		code   int
		stderr string
		want   Class
	}{
		{5, "@ERROR: max connections (1) reached -- try again later\n", Retry},
		{5, "rsync: did not see server greeting\nrsync error: error starting client-server protocol (code 5) at main.c(1954) [sender=3.5.0]\n", Retry},
		{5, "rsync: didn't get server startup line\nrsync error: error starting client-server protocol (code 5) at main.c(1954) [sender=3.5.0]\n", Retry},
		{5, "@ERROR: auth failed on module data\n", FatalPeer},
		{5, "@ERROR: access denied to data from localhost (127.0.0.1)\nrsync error: error starting client-server protocol (code 5) at main.c(1954) [sender=3.5.0]\n", FatalPeer},
		{5, "@ERROR: Unknown module 'data'\n", FatalPeer},
		{2, "ABORTING due to invalid path from sender: h/d/x\nrsync error: protocol incompatibility (code 2) at generator.c(1715) [generator=3.5.0]\n", Retry},
		{2, "protocol version mismatch -- is your shell clean?\nrsync error: protocol incompatibility (code 2) at compat.c(622) [sender=3.5.0]\n", FatalPeer},
	} {
		if got := classifyRun(tc.code, tc.stderr); got != tc.want {
			t.Errorf("exit %d with %q: %v, want %v", tc.code, tc.stderr, got, tc.want)
		}
	}
}

func TestClass_String(t *testing.T) {
	for c, want := range map[Class]string{OK: "ok", Retry: "retry", Partial: "partial", FatalFile: "fatal-file", FatalPeer: "fatal-peer", Class(42): "class(42)"} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", int(c), got, want)
		}
	}
}
