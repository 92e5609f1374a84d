//go:build linux

package fanotify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/tmpfs"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// waitTimeout bounds every wait for a change.
const waitTimeout = 10 * time.Second

// mountTmpfs gives a test a filesystem of its own, so that its filesystem
// mark sees no other test's events.
func mountTmpfs(t testing.TB) string { return tmpfs.Mount(t, "size=1g,mode=0755") }

// watcher runs a Source for a test and collects its changes.
type watcher struct {
	t    testing.TB
	root string
	out  chan change.Change
	// seen are the changes received so far, in order.
	seen    []change.Change
	markers int
}

// start runs a Source on opts until the test ends; it fails the test when
// fanotify is unavailable or Run does not end cleanly.
func start(t testing.TB, opts source.Options) *watcher {
	t.Helper()
	return startPrimed(t, opts, primeDirs)
}

// startPrimed is start with the directory cache primed with at most prime
// directories (0: the directories there before the start are never seen,
// as those beyond the bound are).
func startPrimed(t testing.TB, opts source.Options, prime int) *watcher {
	t.Helper()
	s, err := newSource(opts, prime)
	if err != nil {
		t.Fatalf("New(%q): %v", opts.Root, err)
	}
	return run(t, s)
}

// run runs s, made by New, until the test ends, as start does.
func run(t testing.TB, s *Source) *watcher { return runInto(t, s, make(chan change.Change, 4096)) }

// runInto is run with the changes sent to out: an unbuffered out holds the
// source at its next change, reading no event after it, until the test
// receives that change.
func runInto(t testing.TB, s *Source, out chan change.Change) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{t: t, root: s.root, out: out}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, w.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v of cancel", waitTimeout)
		}
	})
	return w
}

// waitFor receives changes until one satisfies pred and returns it; it
// fails the test, listing what came, when none does within waitTimeout.
func (w *watcher) waitFor(what string, pred func(change.Change) bool) change.Change {
	w.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case c := <-w.out:
			w.seen = append(w.seen, c)
			if pred(c) {
				return c
			}
		case <-deadline.C:
			w.t.Fatalf("no change %s within %v; got:\n%s", what, waitTimeout, list(w.seen))
			return change.Change{}
		}
	}
}

// sync makes a marker file in dir (under the root) and waits for its
// change: events are read in order, so every change of what was done
// before has then been received. It returns the changes received since the
// previous sync (or the start), marker changes left out.
func (w *watcher) sync(dir string) []change.Change {
	w.t.Helper()
	from := len(w.seen)
	w.markers++
	name := filepath.Join(dir, fmt.Sprintf(".marker-%d", w.markers))
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		w.t.Fatal(err)
	}
	rel, _ := change.Rel(w.root, name)
	w.waitFor("for marker "+rel, func(c change.Change) bool { return c.Path == rel })
	var got []change.Change
	for _, c := range w.seen[from:] {
		if !strings.Contains(c.Path, ".marker-") {
			got = append(got, c)
		}
	}
	return got
}

// list renders changes one a line for failure messages.
func list(cs []change.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "\t%s\n", show(c))
	}
	return b.String()
}

func show(c change.Change) string {
	s := fmt.Sprintf("%q %s finished=%t closed=%t echo=%t", c.Path, c.Op, c.Finished, c.Closed, c.Echo)
	if c.OldPath != "" {
		s += fmt.Sprintf(" old=%q", c.OldPath)
	}
	return s
}

// is matches a change for path whose op holds op and whose Finished is
// finished.
func is(path string, op change.Op, finished bool) func(change.Change) bool {
	return func(c change.Change) bool {
		return c.Path == path && c.Op.Has(op) && c.Finished == finished
	}
}

func writeFile(t testing.TB, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
