package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"
)

// Client calls other members' endpoints as one node.
type Client struct {
	node string
	key  []byte
	http *http.Client
	now  func() time.Time

	// boot is this client's life (Boot).
	boot string

	mu sync.Mutex
	// epochs are the receivers' epochs, by endpoint, as last answered.
	epochs map[netip.AddrPort]string
}

// NewClient returns a client for node, signing with key and connecting from
// source (the member's own address, which the receiver checks).
func NewClient(node string, key []byte, source netip.Addr, timeout time.Duration) *Client {
	d := &net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: source.AsSlice()}}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute,
		ExpectContinueTimeout: 3 * time.Second}
	return &Client{node: node, key: key, http: &http.Client{Transport: tr, Timeout: timeout}, now: time.Now, boot: rand.Text()}
}

// Boot is this client's life, a random text made with it and sent with
// every announcement (PathsRequest.Boot). A group's agent makes one client
// for its life, and its runs end with it (their rsync clients die with
// the agent: Pdeathsig): a receiver takes a run announced with another
// boot of the same member for one that is over.
func (c *Client) Boot() string { return c.boot }

// Hello tells the member at addr this client's boot (HelloRequest).
func (c *Client) Hello(ctx context.Context, addr netip.AddrPort, group string) error {
	return c.post(ctx, addr, group, "hello", HelloRequest{Boot: c.boot}, nil)
}

// Incoming announces the paths of run to the member at addr, with the runs
// of this client's that ended unconfirmed since the last announcement
// (PathsRequest.Over) and this member's replay positions
// (PathsRequest.Replayed).
func (c *Client) Incoming(ctx context.Context, addr netip.AddrPort, group, run string, paths, over []string, replayed []ReplayPos) error {
	req := newPathsRequest(run, paths)
	req.Boot, req.Over, req.Replayed = c.boot, over, replayed
	return c.post(ctx, addr, group, "incoming", req, nil)
}

// Received confirms the paths of run that were sent (with what was sent
// of each, states aligned with sent, or nil) and deleted.
func (c *Client) Received(ctx context.Context, addr netip.AddrPort, group, run string, sent []string, states []FileState, deleted []string) error {
	req := newPathsRequest(run, sent)
	req.Deleted = toBytes(deleted)
	req.States = states
	return c.post(ctx, addr, group, "received", req, nil)
}

// Replay asks the receiver to replay a member's logged renames
// (ReplayRequest); one per request from each sender at a time.
func (c *Client) Replay(ctx context.Context, addr netip.AddrPort, group string, req ReplayRequest) (RenameResponse, error) {
	var resp RenameResponse
	if err := c.post(ctx, addr, group, "replay", req, &resp); err != nil {
		return RenameResponse{}, err
	}
	if len(resp.Results) != len(req.Renames) {
		return RenameResponse{}, fmt.Errorf("replay: %d results for %d renames", len(resp.Results), len(req.Renames))
	}
	return resp, nil
}

// Tree asks the member at addr for its tree (TreeRequest), with digest
// the asker's own tree's. ErrNoTree: the member does not answer them.
func (c *Client) Tree(ctx context.Context, addr netip.AddrPort, group, digest string) (TreeResponse, error) {
	var resp TreeResponse
	if err := c.post(ctx, addr, group, "tree", TreeRequest{Digest: digest}, &resp); err != nil {
		if errors.Is(err, errNotFound) {
			return TreeResponse{}, fmt.Errorf("%w: %v", ErrNoTree, err)
		}
		return TreeResponse{}, err
	}
	return resp, nil
}

// expectContinueOver is the body size above which a request waits for the
// receiver's go-ahead (Expect: 100-continue) before it sends the body.
const expectContinueOver = 64 << 10

// post signs and sends req, for the receiver's epoch as last known; when
// the receiver answers that it has another (it restarted, or is called for
// the first time), it signs again for that one, once.
func (c *Client) post(ctx context.Context, addr netip.AddrPort, group, op string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	u := url.URL{Scheme: "http", Host: addr.String(), Path: "/v1/groups/" + group + "/" + op}
	for attempt := 0; ; attempt++ {
		epoch := c.epoch(addr)
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		if epoch == "" || len(body) > expectContinueOver {
			// The body goes once the headers passed: a refusal (another
			// epoch, a stranger) comes back before it is sent, so a large
			// body never meets a server that closes the connection on it
			// unread (which a client may report as a write error instead
			// of the answer).
			r.Header.Set("Expect", "100-continue")
		}
		if err := signRequest(r, c.key, c.node, epoch, body, c.now()); err != nil {
			return err
		}
		res, err := c.http.Do(r)
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, addr, err)
		}
		data, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
		res.Body.Close()
		answered := res.Header.Get(headerEpoch)
		if answered != "" && answered != epoch {
			// From every answer, not only refusals; and only over the
			// epoch this request was signed for: an answer of the old
			// process, late, must not undo what another learnt since.
			c.learn(addr, epoch, answered)
		}
		if res.StatusCode == http.StatusPreconditionFailed && answered != "" && answered != epoch && attempt == 0 {
			continue
		}
		return result(op, addr, res, data, resp)
	}
}

// epoch returns the epoch known for addr.
func (c *Client) epoch(addr netip.AddrPort) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epochs[addr]
}

// learn sets addr's epoch to answered if it still is signed, the one a
// request was signed for.
func (c *Client) learn(addr netip.AddrPort, signed, answered string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochs[addr] != signed {
		return
	}
	if c.epochs == nil {
		c.epochs = make(map[netip.AddrPort]string)
	}
	c.epochs[addr] = answered
}

// errNotFound marks an answer 404: the endpoint has no such group or
// operation.
var errNotFound = errors.New("not found")

// result turns an answer into post's error, decoding data into resp.
func result(op string, addr netip.AddrPort, res *http.Response, data []byte, resp any) error {
	if res.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s %s: %s (%w): %s", op, addr, res.Status, errNotFound, bytes.TrimSpace(data))
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", op, addr, res.Status, bytes.TrimSpace(data))
	}
	if resp != nil {
		if err := json.Unmarshal(data, resp); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", op, addr, err)
		}
	}
	return nil
}
