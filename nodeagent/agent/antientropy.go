package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/antientropy"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/sender"
)

// comparer is the group's anti-entropy compare (package antientropy), or
// nil where there is none: spec.resyncInterval 0 (the CRD: "0 disables
// it"), or a suspended group (nothing is sent). It compares after every
// change once the whole group is quiet, and every resyncInterval without
// one; the detector's own resync (a full scan of
// the root against the index, on the same interval) finds what change
// detection missed here, and the compare what differs between members.
func (g *group) comparer(det *detect.Detector) *antientropy.Comparer {
	spec := g.cfg.Group.Spec
	if spec.Suspend || (spec.ResyncInterval != nil && spec.ResyncInterval.Duration == 0) {
		return nil
	}
	peers := make([]antientropy.Peer, len(g.peers))
	for i, p := range g.peers {
		peers[i] = antientropy.Peer{Name: p.node, Endpoint: p.endpoint}
	}
	c := &antientropy.Comparer{
		Group: g.cfg.Group.Name, Self: g.cfg.Node, Peers: peers,
		Client: peer.NewClient(g.cfg.Node, []byte(g.cfg.Password), g.self.daemon.Addr(), 60*time.Second),
		Read: func(ctx context.Context) (antientropy.Tree, error) {
			return antientropy.Read(ctx, g.rootfd, g.exclude.Match)
		},
		Busy: g.busy(det),
		Send: g.sendFound,
		Compared: func(p, result string) {
			g.metrics.compares.WithLabelValues(g.cfg.Group.Name, p, result).Inc()
		},
		KeepDeletes: spec.Deletes == syncv1.DeletesKeep,
		Settle:      g.cfg.AntiEntropySettle,
		Log:         g.log.WithName("antientropy"),
	}
	if ri := spec.ResyncInterval; ri != nil {
		c.Interval = ri.Duration
	}
	return c
}

// busy is the comparer's antientropy.Comparer.Busy: the generation counts
// the journal's sequence (every change journaled) and the runs received;
// anything pending for any peer is busy (the compare's quiet is
// group-wide).
func (g *group) busy(det *detect.Detector) func() (uint64, string) {
	return func() (uint64, string) {
		added, receiving := g.incoming.Busy()
		gen := g.journal.Seq() + added
		switch {
		case g.journaling.Load() || det.Coming():
			return gen, "changes are being journaled"
		case det.Scanning():
			return gen, "a scan is under way"
		case !det.Writing().IsZero():
			return gen, "a write is under way"
		case receiving:
			return gen, "a peer's run is being received"
		}
		for _, p := range g.peers {
			if st := g.journal.Stats(p.node); st.Files > 0 {
				return gen, fmt.Sprintf("%d paths are pending for %s", st.Files, p.node)
			}
			if log, err := g.journal.RenameLog(p.node, 1); err != nil {
				return gen, fmt.Sprintf("cannot read the renames pending for %s: %v", p.node, err)
			} else if len(log) > 0 {
				return gen, "renames are pending for " + p.node
			}
		}
		return gen, ""
	}
}

// sendFound journals what a compare found for one peer (files and
// symlinks as writes, directories for their attributes, as the sender
// sends a directory set from an older file list) and wakes its sender.
func (g *group) sendFound(peerName string, sends []antientropy.Send) error {
	var files, dirs []string
	for _, s := range sends {
		if s.Dir {
			dirs = append(dirs, s.Path)
		} else {
			files = append(files, s.Path)
		}
	}
	to := []string{peerName}
	if err := g.journal.Again(to, change.Attrib, dirs); err != nil {
		return err
	}
	if err := g.journal.Again(to, change.Write, files); err != nil {
		return err
	}
	i := slices.IndexFunc(g.senders, func(s *sender.Sender) bool { return s.Peer == peerName })
	if i >= 0 {
		wake([]chan struct{}{g.senders[i].Wake})
	}
	return nil
}

// quietAsker answers the peers' tree requests (peer.TreeHandler). A member
// asks for a tree only when it is quiet (antientropy.Comparer: nothing
// pending for any member), so what its runs that are over still hold here
// is released first (receiver.Receiver.SenderQuiet), and this member
// answers as it then is.
type quietAsker struct {
	peer.TreeHandler
	quiet func(from string)
}

func (q quietAsker) Tree(ctx context.Context, from string, req peer.TreeRequest) (peer.TreeResponse, error) {
	q.quiet(from)
	return q.TreeHandler.Tree(ctx, from, req)
}
