package peer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// maxBody bounds a request body: about a million path names.
const maxBody = 256 << 20

// maxBodiesInFlight bounds the bytes of all the bodies read and held at
// once: a request waits for its share before its body is read.
const maxBodiesInFlight = 2 * maxBody

// Handler is what a group does with authenticated requests. from is the
// sending member's node name.
type Handler interface {
	// Incoming: from will push paths in run; hold local events for them.
	// boot is the sender's client's life (PathsRequest.Boot), "" when
	// not given; over are its runs that ended unconfirmed
	// (PathsRequest.Over); replayed are its replay positions
	// (PathsRequest.Replayed), nil when not given.
	Incoming(ctx context.Context, from, boot, run string, paths, over []string, replayed []ReplayPos) error
	// Hello: from's client started a life, boot (HelloRequest); its runs
	// of earlier lives are over.
	Hello(ctx context.Context, from, boot string) error
	// Received: the run is over; sent arrived and deleted were deleted
	// (record their state); paths of the run not listed did not change.
	// states, when not nil, say what was sent of each of sent.
	Received(ctx context.Context, from, run string, sent []string, states []FileState, deleted []string) error
	// Replay replays from's logged renames (ReplayRequest), skipping
	// those it replayed before from the same journal.
	Replay(ctx context.Context, from string, req ReplayRequest) RenameResponse
}

// Group is one SyncGroup as the endpoint knows it.
type Group struct {
	// Key is the group's password (the HMAC key).
	Key []byte
	// Members maps node names to their addresses; requests must come from
	// the address of the node they claim to be.
	Members map[string]netip.Addr
	// Handler serves the group.
	Handler Handler
	// Tree, when set, answers the anti-entropy compare's TreeRequest;
	// without it the endpoint answers 404, as an agent that predates it
	// does, and the asker leaves this member out of its compares.
	Tree TreeHandler
}

// TreeHandler answers a member's TreeRequest with this member's tree.
type TreeHandler interface {
	Tree(ctx context.Context, from string, req TreeRequest) (TreeResponse, error)
}

// ErrNoTree is returned by Client.Tree when the member does not answer
// tree requests (an agent that predates them).
var ErrNoTree = errors.New("the member does not compare trees for this group (an older agent, or one without the group)")

// Server is the agent-to-agent endpoint of one agent.
type Server struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu     sync.RWMutex
	groups map[string]*Group
	nonces nonces

	epochOnce sync.Once
	epochID   string
	// bodies is the budget of maxBodiesInFlight.
	bodies *semaphore.Weighted
}

// init draws the epoch and makes the body budget, once.
func (s *Server) init() {
	s.epochOnce.Do(func() {
		b := make([]byte, 16)
		_, _ = rand.Read(b) // never fails (crypto/rand.Read)
		s.epochID = hex.EncodeToString(b)
		s.bodies = semaphore.NewWeighted(maxBodiesInFlight)
	})
}

// SetGroup adds or replaces a group.
func (s *Server) SetGroup(name string, g *Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups == nil {
		s.groups = make(map[string]*Group)
	}
	s.groups[name] = g
}

// RemoveGroup stops serving a group.
func (s *Server) RemoveGroup(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, name)
}

// Handler returns the HTTP handler of the endpoint.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/groups/{group}/incoming", s.serve(func(ctx context.Context, g *Group, from string, body []byte) (any, error) {
		var req PathsRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, badRequest(err)
		}
		return nil, g.Handler.Incoming(ctx, from, req.Boot, req.Run, req.paths(), req.Over, req.Replayed)
	}))
	mux.HandleFunc("POST /v1/groups/{group}/hello", s.serve(func(ctx context.Context, g *Group, from string, body []byte) (any, error) {
		var req HelloRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, badRequest(err)
		}
		if req.Boot == "" {
			return nil, badRequest(errors.New("hello: no boot"))
		}
		return nil, g.Handler.Hello(ctx, from, req.Boot)
	}))
	mux.HandleFunc("POST /v1/groups/{group}/received", s.serve(func(ctx context.Context, g *Group, from string, body []byte) (any, error) {
		var req PathsRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, badRequest(err)
		}
		if len(req.States) != 0 && len(req.States) != len(req.Paths) {
			return nil, badRequest(fmt.Errorf("%d states for %d paths", len(req.States), len(req.Paths)))
		}
		return nil, g.Handler.Received(ctx, from, req.Run, req.paths(), req.States, toStrings(req.Deleted))
	}))
	mux.HandleFunc("POST /v1/groups/{group}/replay", s.serve(func(ctx context.Context, g *Group, from string, body []byte) (any, error) {
		var req ReplayRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, badRequest(err)
		}
		if err := req.Check(); err != nil {
			return nil, badRequest(err)
		}
		return g.Handler.Replay(ctx, from, req), nil
	}))
	mux.HandleFunc("POST /v1/groups/{group}/tree", s.serve(func(ctx context.Context, g *Group, from string, body []byte) (any, error) {
		if g.Tree == nil {
			return nil, &requestError{http.StatusNotFound, ErrNoTree}
		}
		var req TreeRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, badRequest(err)
		}
		return g.Tree.Tree(ctx, from, req)
	}))
	return mux
}

type requestError struct {
	code int
	err  error
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func badRequest(err error) error { return &requestError{http.StatusBadRequest, err} }

// serve authenticates a request for its group and runs fn. The body is
// read only once the headers name a member, the connection comes from its
// address, the timestamp is within the replay window and the epoch is this
// endpoint's, and once the bodies in flight leave room for it; the
// signature, which covers the body, is verified after.
func (s *Server) serve(fn func(context.Context, *Group, string, []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerEpoch, s.epochID)
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		s.mu.RLock()
		g, ok := s.groups[r.PathValue("group")]
		s.mu.RUnlock()
		if !ok {
			http.Error(w, "unknown group", http.StatusNotFound)
			return
		}
		// Everything that can be checked without the body first, so that a
		// caller that is not a member, or not at its address, cannot make the
		// agent read (and hold) up to maxBody.
		c, err := readClaim(r, now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if err := checkSource(r.RemoteAddr, g.Members, c.node); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if c.epoch != s.epochID {
			msg := fmt.Sprintf("signed for epoch %q, this endpoint's is %q (restarted): sign again", c.epoch, s.epochID)
			if c.epoch == "" {
				msg = "signed without this endpoint's epoch (" + s.epochID + "): sign again; a member that never does runs an older agent, upgrade every member of the group"
			}
			http.Error(w, msg, http.StatusPreconditionFailed)
			return
		}
		if r.ContentLength > maxBody {
			http.Error(w, fmt.Sprintf("body of %d bytes is over the limit of %d", r.ContentLength, maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		share := r.ContentLength
		if share < 0 {
			share = maxBody
		}
		if err := s.bodies.Acquire(r.Context(), share); err != nil {
			http.Error(w, fmt.Sprintf("waiting for room for the body: %v", err), http.StatusServiceUnavailable)
			return
		}
		defer s.bodies.Release(share)
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				http.Error(w, fmt.Sprintf("body over the limit of %d bytes", maxBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusBadRequest)
			return
		}
		if err := s.nonces.verify(c, r, g.Key, body, now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		resp, err := fn(r.Context(), g, c.node, body)
		if err != nil {
			code := http.StatusInternalServerError
			var re *requestError
			if errors.As(err, &re) {
				code = re.code
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if resp == nil {
			resp = struct{}{}
		}
		_ = json.NewEncoder(w).Encode(resp)
	}
}

// checkSource refuses a request whose connection does not come from the
// address of the member it names.
func checkSource(remote string, members map[string]netip.Addr, node string) error {
	want, ok := members[node]
	if !ok {
		return fmt.Errorf("%w: %q is not a member of the group", ErrForbidden, node)
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	got, err := netip.ParseAddr(host)
	if err != nil || got.Unmap() != want.Unmap() {
		return fmt.Errorf("%w: %q must connect from %s, not %s", ErrForbidden, node, want, host)
	}
	return nil
}
