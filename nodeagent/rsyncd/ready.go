package rsyncd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// probeTimeout bounds one Probe when ctx has no earlier deadline.
const probeTimeout = 2 * time.Second

// readyPoll is how often Ready probes.
const readyPoll = 50 * time.Millisecond

// greeting starts the first line an rsync daemon sends
// (clientserver.c: "@RSYNCD: <protocol>.<sub> <digests>").
const greeting = "@RSYNCD: "

// ErrNoGreeting is returned (wrapped) by Probe when the connection was
// accepted but no daemon greeting arrived: something else listens there, or
// the daemon does not run (a SIGSTOPped daemon's kernel still completes TCP
// handshakes into the listen backlog).
var ErrNoGreeting = errors.New("no rsync daemon greeting")

// Probe connects to an rsync daemon at addr and reads its greeting, then
// closes the connection (the daemon logs a "connect from" line). It fails
// when ctx ends, after probeTimeout otherwise.
func Probe(ctx context.Context, addr netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return fmt.Errorf("probe rsync daemon: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("probe rsync daemon: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("probe rsync daemon at %s: %w: %w", addr, ErrNoGreeting, err)
	}
	if !strings.HasPrefix(line, greeting) {
		return fmt.Errorf("probe rsync daemon at %s: %w: got %q", addr, ErrNoGreeting, line)
	}
	return nil
}

// Ready waits until the daemon that Run started serves on Config.Address:
// it runs (PID is not 0, so a stale daemon that Run is about to stop does
// not count), and Probe succeeds: the TCP connection is accepted and the
// daemon's greeting arrives, which a stopped or hung daemon does not send.
// It returns an error when ctx ends first, wrapping the last probe's
// error; a missing greeting is reported over later failures to connect.
func (d *Daemon) Ready(ctx context.Context) error {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var last error
	for {
		err := errors.New("not started")
		if d.PID() != 0 {
			err = Probe(ctx, d.Config.Address)
		}
		if err == nil {
			return nil
		}
		if last == nil || !errors.Is(last, ErrNoGreeting) {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rsync daemon at %s not ready: %w (last probe: %w)", d.Config.Address, ctx.Err(), last)
		case <-tick.C:
		}
	}
}
