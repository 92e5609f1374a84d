// Package peer is the agent-to-agent endpoint: a member announces the paths
// of a run before it pushes them (so that the receiver holds its own events
// for them until it has recorded what it received), confirms them after,
// and asks for renames that the receiver applies locally instead of
// receiving the content again. (From the twenty-fifth to the twenty-ninth
// session it also took a long run's --files-from list for the receiver's
// daemon to read; lists stay on the sending member now, docs/design.md.)
//
// Every request is authenticated now, before TLS arrives: the connection
// must come from the sending member's own address (clients bind it), and
// carry an HMAC-SHA256 of the node name, a timestamp, a nonce, the method,
// the receiver's address (host:port, which must be the one the request
// came in on: recorded on its way to one member, it is refused by
// another), the path and the body's hash, keyed with the group's password.
// Requests older than the replay window or with a nonce seen before are
// refused. Nonces are remembered in memory, so the signature also covers
// the endpoint's epoch, a random value drawn at its start and sent with
// every answer: a request recorded before a restart names the old epoch and
// is refused after it (a bound on the start time instead would refuse,
// for a while, every request of a member whose clock is behind). A client
// learns the epoch from its first refusal (412) and signs again, one round
// trip per restart.
// The headers, the timestamp and the source address are checked before the
// body is read; the signature, which covers the body, after.
//
// # Caveats
//
// Without TLS the content of requests (path names) travels in clear text;
// the HMAC protects against forged and replayed requests, not against
// eavesdropping. Path names travel as bytes (base64 in JSON), never as JSON
// strings, which would replace invalid UTF-8.
package peer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Headers of an authenticated request.
const (
	headerNode      = "X-Jailsync-Node"
	headerTime      = "X-Jailsync-Time"
	headerNonce     = "X-Jailsync-Nonce"
	headerSignature = "X-Jailsync-Signature"
	// headerEpoch is the endpoint's epoch: in every answer, and in every
	// request, signed.
	headerEpoch = "X-Jailsync-Epoch"
)

// ReplayWindow is how far a request's timestamp may be from the receiver's
// clock.
const ReplayWindow = 2 * time.Minute

var (
	// ErrUnauthenticated is returned for a request without a valid signature,
	// outside the replay window, or replayed.
	ErrUnauthenticated = errors.New("request not authenticated")
	// ErrForbidden is returned for a request from an address that is not the
	// member's.
	ErrForbidden = errors.New("request from an address that is not the member's")
)

// signature returns c's signature, with key, of a request (method, host,
// path, body). host is the receiver's endpoint (host:port) as the request
// names it, so that a request recorded on its way to one member is refused
// by another; c's epoch is the receiver's, so that one recorded before it
// restarted is refused after.
func (c claim) signature(key []byte, method, host, path string, body []byte) string {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	for _, s := range []string{c.node, c.ts, c.nonce, c.epoch, method, host, path, hex.EncodeToString(sum[:])} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// signRequest adds the authentication headers to r, for the receiver's
// epoch.
func signRequest(r *http.Request, key []byte, node, epoch string, body []byte, now time.Time) error {
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("make nonce: %w", err)
	}
	c := claim{node: node, ts: strconv.FormatInt(now.Unix(), 10), nonce: hex.EncodeToString(nonce), epoch: epoch}
	r.Header.Set(headerNode, c.node)
	r.Header.Set(headerTime, c.ts)
	r.Header.Set(headerNonce, c.nonce)
	r.Header.Set(headerEpoch, c.epoch)
	r.Header.Set(headerSignature, c.signature(key, r.Method, r.URL.Host, r.URL.Path, body))
	return nil
}

// nonceLifetime is how long a nonce is remembered: a request is accepted
// while its timestamp is within ReplayWindow of the receiver's clock, so a
// replay of a request recorded at t can arrive until t+2*ReplayWindow.
const nonceLifetime = 2 * ReplayWindow

// nonces remembers the nonces seen within their lifetime. Each request
// forgets the expired ones at the front of order: the work is proportional
// to what expires, not to what is remembered.
type nonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
	// order holds the nonces of seen in the order they were recorded,
	// oldest first while the clock does not go back (when it does, the
	// entries behind a newer one are forgotten later, never early).
	order []seenNonce
}

type seenNonce struct {
	nonce string
	at    time.Time
}

// fresh records nonce and reports whether it was not seen before.
func (n *nonces) fresh(nonce string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.expire(now)
	if _, ok := n.seen[nonce]; ok {
		return false
	}
	if n.seen == nil {
		n.seen = make(map[string]time.Time)
	}
	n.seen[nonce] = now
	n.order = append(n.order, seenNonce{nonce, now})
	return true
}

// expire forgets the nonces recorded more than nonceLifetime before now.
func (n *nonces) expire(now time.Time) {
	i := 0
	for ; i < len(n.order) && now.Sub(n.order[i].at) > nonceLifetime; i++ {
		delete(n.seen, n.order[i].nonce)
		n.order[i] = seenNonce{}
	}
	n.order = n.order[i:]
}

// claim is what a request's authentication headers say.
type claim struct {
	node, ts, nonce, epoch, sig string
}

// readClaim reads r's authentication headers, checks the timestamp
// against now and that the request names the address it came in on: all
// that can be checked before the body is read.
func readClaim(r *http.Request, now time.Time) (claim, error) {
	c := claim{node: r.Header.Get(headerNode), ts: r.Header.Get(headerTime), nonce: r.Header.Get(headerNonce), epoch: r.Header.Get(headerEpoch), sig: r.Header.Get(headerSignature)}
	if c.node == "" || c.ts == "" || c.nonce == "" || c.sig == "" {
		return claim{}, fmt.Errorf("%w: missing authentication headers", ErrUnauthenticated)
	}
	if err := checkTime(c.ts, now); err != nil {
		return claim{}, err
	}
	if err := checkHost(r); err != nil {
		return claim{}, err
	}
	return c, nil
}

// checkTime refuses a timestamp more than ReplayWindow away from now.
func checkTime(ts string, now time.Time) error {
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp", ErrUnauthenticated)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > ReplayWindow || d < -ReplayWindow {
		return fmt.Errorf("%w: timestamp %s off by %s (check the clocks)", ErrUnauthenticated, ts, d.Round(time.Second))
	}
	return nil
}

// checkHost refuses a request whose Host is not the address it came in on.
func checkHost(r *http.Request) error {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	host, err := netip.ParseAddrPort(r.Host)
	if local == nil || err != nil {
		return fmt.Errorf("%w: request for %q, not for an address of this endpoint", ErrUnauthenticated, r.Host)
	}
	at, err := netip.ParseAddrPort(local.String())
	if err != nil || at.Addr().Unmap() != host.Addr().Unmap() || at.Port() != host.Port() {
		return fmt.Errorf("%w: request for %s came in on %s", ErrUnauthenticated, r.Host, local)
	}
	return nil
}

// verify checks c's signature of r and body against key, then records its
// nonce, refusing one seen before. The timestamp is checked again, now
// that the body is read: a nonce is remembered for nonceLifetime from
// here, and a replay whose body took longer than that to arrive would
// find it forgotten.
func (n *nonces) verify(c claim, r *http.Request, key, body []byte, now time.Time) error {
	if err := checkTime(c.ts, now); err != nil {
		return err
	}
	want := c.signature(key, r.Method, r.Host, r.URL.Path, body)
	if !hmac.Equal([]byte(c.sig), []byte(want)) {
		return fmt.Errorf("%w: bad signature from %q (wrong password?)", ErrUnauthenticated, c.node)
	}
	if !n.fresh(c.nonce, now) {
		return fmt.Errorf("%w: replayed request from %q", ErrUnauthenticated, c.node)
	}
	return nil
}
