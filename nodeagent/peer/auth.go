// Package peer is the agent-to-agent endpoint: a member announces the paths
// of a run before it pushes them (so that the receiver holds its own events
// for them until it has recorded what it received), confirms them after,
// and asks for renames that the receiver applies locally instead of
// receiving the content again.
//
// Every request is authenticated now, before TLS arrives: the connection
// must come from the sending member's own address (clients bind it), and
// carry an HMAC-SHA256 of the node name, a timestamp, a nonce, the method,
// the path and the body's hash, keyed with the group's password. Requests
// older than the replay window or with a nonce seen before are refused.
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
	"net/http"
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

// sign returns the request signature.
func sign(key []byte, node, ts, nonce, method, path string, body []byte) string {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	for _, s := range []string{node, ts, nonce, method, path, hex.EncodeToString(sum[:])} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// signRequest adds the authentication headers to r.
func signRequest(r *http.Request, key []byte, node string, body []byte, now time.Time) error {
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("make nonce: %w", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	n := hex.EncodeToString(nonce)
	r.Header.Set(headerNode, node)
	r.Header.Set(headerTime, ts)
	r.Header.Set(headerNonce, n)
	r.Header.Set(headerSignature, sign(key, node, ts, n, r.Method, r.URL.Path, body))
	return nil
}

// nonces remembers the nonces seen within the replay window.
type nonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// fresh records nonce and reports whether it was not seen before.
func (n *nonces) fresh(nonce string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = make(map[string]time.Time)
	}
	if _, ok := n.seen[nonce]; ok {
		return false
	}
	if len(n.seen) > 4096 {
		for k, t := range n.seen {
			if now.Sub(t) > 2*ReplayWindow {
				delete(n.seen, k)
			}
		}
	}
	n.seen[nonce] = now
	return true
}

// verify checks r's signature, timestamp and nonce against key, and
// returns the sending node.
func (n *nonces) verify(r *http.Request, key, body []byte, now time.Time) (string, error) {
	node, ts, nonce, sig := r.Header.Get(headerNode), r.Header.Get(headerTime), r.Header.Get(headerNonce), r.Header.Get(headerSignature)
	if node == "" || ts == "" || nonce == "" || sig == "" {
		return "", fmt.Errorf("%w: missing authentication headers", ErrUnauthenticated)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: bad timestamp", ErrUnauthenticated)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > ReplayWindow || d < -ReplayWindow {
		return "", fmt.Errorf("%w: timestamp %s off by %s (check the clocks)", ErrUnauthenticated, ts, d.Round(time.Second))
	}
	want := sign(key, node, ts, nonce, r.Method, r.URL.Path, body)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "", fmt.Errorf("%w: bad signature from %q (wrong password?)", ErrUnauthenticated, node)
	}
	if !n.fresh(nonce, now) {
		return "", fmt.Errorf("%w: replayed request from %q", ErrUnauthenticated, node)
	}
	return node, nil
}
