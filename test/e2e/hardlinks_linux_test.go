//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
)

// TestStandalone_HardLinks: the names of one inode stay one inode on the
// peers when the file is written in place under one of them, and a name
// linked later joins them. rsync keeps a hard link only between names of
// one run, so the sender puts every name of a written file in its run.
func TestStandalone_HardLinks(t *testing.T) {
	c := start(t, 3, 18505)
	p := func(rel string) string { return filepath.Join(c.roots["n1"], rel) }

	must(t, os.WriteFile(p("a"), []byte("first content"), 0o644))
	must(t, os.Link(p("a"), p("b")))
	c.converged("n1")
	c.linkedEverywhere([]byte("first content"), "a", "b")

	// Written in place: the inode stays, so b has the new content too,
	// though only a was written (and only a is journaled).
	f, err := os.OpenFile(p("a"), os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	_, err = f.WriteString("second, longer content")
	must(t, err)
	must(t, f.Close())
	c.linkedEverywhere([]byte("second, longer content"), "a", "b")
	c.converged("n1")

	// A third name, linked later, then the file written in place through
	// it.
	must(t, os.Link(p("a"), p("c")))
	c.linkedEverywhere([]byte("second, longer content"), "a", "b", "c")
	f, err = os.OpenFile(p("c"), os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	_, err = f.WriteString("third")
	must(t, err)
	must(t, f.Close())
	c.linkedEverywhere([]byte("third"), "a", "b", "c")
	c.converged("n1")

	// The names the peers received are recorded there as received: none
	// is sent back.
	time.Sleep(time.Second)
	for _, node := range c.nodes[1:] {
		r, err := c.status(node)
		must(t, err)
		for _, peer := range r.Peers {
			if peer.FilesSynced != 0 {
				t.Errorf("%s -> %s: %d files synced, want none (echoes)", node, peer.Target, peer.FilesSynced)
			}
		}
	}
}

// linkedEverywhere waits until, on every member, the names are one inode
// holding content (converged compares content, not link identity).
func (c *cluster) linkedEverywhere(content []byte, names ...string) {
	c.t.Helper()
	poll.Until(c.t, 30*time.Second, func() error {
		for _, node := range c.nodes {
			var first os.FileInfo
			for _, name := range names {
				path := filepath.Join(c.roots[node], name)
				fi, err := os.Lstat(path)
				if err != nil {
					return fmt.Errorf("%s: %w", node, err)
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("%s: %w", node, err)
				}
				if !bytes.Equal(data, content) {
					return fmt.Errorf("%s: %s holds %q, want %q", node, name, data, content)
				}
				if first == nil {
					first = fi
				} else if !os.SameFile(first, fi) {
					return fmt.Errorf("%s: %s and %s are not one inode", node, names[0], name)
				}
			}
		}
		return nil
	})
}
