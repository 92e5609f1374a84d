package rsyncd

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCheckVersion(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	v, err := CheckVersion(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rsync %s", v)
}

func TestCheckVersion_parse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, out, want string
		unsupported     bool
	}{
		{name: "3.5.0", out: "rsync  version 3.5.0  protocol version 32\nCopyright", want: "3.5.0"},
		{name: "3.2.0", out: "rsync  version 3.2.0  protocol version 31\n", want: "3.2.0"},
		{name: "v prefix", out: "rsync  version v3.2.7  protocol version 31\n", want: "3.2.7"},
		{name: "4.0.0", out: "rsync  version 4.0.0  protocol version 33\n", want: "4.0.0"},
		{name: "3.1.3", out: "rsync  version 3.1.3  protocol version 31\n", want: "3.1.3", unsupported: true},
		{name: "2.6.9", out: "rsync  version 2.6.9  protocol version 29\n", want: "2.6.9", unsupported: true},
		{name: "openrsync", out: "openrsync: protocol version 29\n", unsupported: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVersion(tc.out)
			if got != tc.want || errors.Is(err, ErrUnsupportedVersion) != tc.unsupported {
				t.Fatalf("parseVersion = %q, %v; want %q, unsupported %v", got, err, tc.want, tc.unsupported)
			}
		})
	}
}

func TestNextDelay(t *testing.T) {
	t.Parallel()
	const min, max = time.Second, 8 * time.Second
	tests := []struct {
		name            string
		prev, ran, want time.Duration
	}{
		{name: "first restart", prev: 0, ran: 0, want: min},
		{name: "doubles", prev: min, ran: 0, want: 2 * min},
		{name: "capped", prev: 6 * time.Second, ran: time.Second, want: max},
		{name: "stays at the cap", prev: max, ran: 0, want: max},
		{name: "resets after a long run", prev: max, ran: max, want: min},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextDelay(tc.prev, tc.ran, min, max); got != tc.want {
				t.Fatalf("nextDelay(%s, %s) = %s, want %s", tc.prev, tc.ran, got, tc.want)
			}
		})
	}
}
