package sender

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/jailsync/jailsync/nodeagent/peer"
)

// TestMayHaveArrived: an announcement the peer's endpoint refused to
// connect to never reached it, and its run is not named as ended
// (endUnconfirmed); one that broke off after it connected may have, and
// is. Both through a real client and real sockets.
func TestMayHaveArrived(t *testing.T) {
	// A listener that takes the request and closes without an answer.
	ln, err := net.Listen("tcp", netip.AddrPortFrom(peerAddr, basePort+133).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1<<16)
			_, _ = c.Read(buf)
			c.Close()
		}
	}()
	for _, tc := range []struct {
		name string
		port uint16
		want bool
	}{
		{name: "nothing listens", port: basePort + 134, want: false},
		{name: "the connection closed without an answer", port: basePort + 133, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := peer.NewClient("self", []byte(testPassword), selfAddr, 5*time.Second)
			err := c.Incoming(context.Background(), netip.AddrPortFrom(peerAddr, tc.port), "g", "run-1", []string{"a"}, nil, nil)
			if err == nil {
				t.Fatal("the announcement succeeded")
			}
			if got := mayHaveArrived(err); got != tc.want {
				t.Errorf("mayHaveArrived(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}
