// Command opsreplay replays the operation logs of stress runs (ops.jsonl,
// test/e2e/stress_linux_test.go) into the fanotify source alone, each on a
// tmpfs of its own, and reports the renames the source read that no
// operation made: a directory's path of one moment joined with a name of
// another (docs/design.md, the fanotify source's directory cache). Every
// member replays such a rename of a peer's. The agents' own runs report
// the renames they journaled that match no operation; this asks the same
// of the source in seconds, without agents, and -delay makes it read its
// events later (a consumer that takes that long a change), as a busy
// agent's source does.
//
//	go run ./hack/opsreplay [-delay 100us] [-v] OUT/rotating-*/ops.jsonl
//
// It needs root (mount, fanotify).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/source"
	"github.com/jailsync/jailsync/nodeagent/source/fanotify"
	"github.com/jailsync/jailsync/test/stressops"
)

const (
	startMarker = "opsreplay-start"
	endMarker   = "opsreplay-end"
)

func main() {
	delay := flag.Duration("delay", 0, "time the consumer takes for each change")
	verbose := flag.Bool("v", false, "list the renames that match no operation")
	before := flag.Float64("before", 0, "the share of each log's operations applied before the source starts (a tree that was there before the agent)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: opsreplay [-delay D] [-before F] [-v] ops.jsonl ...")
		os.Exit(2)
	}
	total, renames, made := 0, 0, 0
	for _, file := range flag.Args() {
		r, err := replay(context.Background(), file, *delay, *before)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
			os.Exit(1)
		}
		fmt.Printf("%s: ops %d (failed here %d), changes %d, renames read %d (made %d), renames matching no operation %d\n", file, r.ops, r.failed, r.changes, r.renames, r.made, len(r.unmatched))
		if *verbose {
			for _, c := range r.unmatched {
				fmt.Printf("\t%q -> %q (%s)\n", c.OldPath, c.Path, c.Op)
			}
		}
		total += len(r.unmatched)
		renames += r.renames
		made += r.made
	}
	fmt.Printf("total renames read %d (made %d), renames matching no operation: %d\n", renames, made, total)
}

type result struct {
	ops, failed, changes int
	// renames counts the renames read (a source reports some as a
	// removal and a creation instead, when it cannot place them), made
	// those the operations made.
	renames, made int
	unmatched     []change.Change
}

// replay applies the operations of file, as fast as they go, on a new
// tmpfs watched by a fanotify source, and compares the renames read with
// those the operations made. The first share before of them are applied
// before the source starts, and count for nothing.
func replay(ctx context.Context, file string, delay time.Duration, before float64) (result, error) {
	ops, err := stressops.Read(file)
	if err != nil {
		return result{}, err
	}
	first := int(before * float64(len(ops)))
	dir, err := os.MkdirTemp("", "opsreplay-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	if err := unix.Mount("opsreplay", dir, "tmpfs", 0, "size=1g,mode=0755"); err != nil {
		return result{}, fmt.Errorf("mount a tmpfs on %s (needs root): %w", dir, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return result{}, err
	}
	for i := range ops[:first] {
		_ = stressops.Apply(root, &ops[i])
	}
	ops = ops[first:]
	src, err := fanotify.New(source.Options{Root: root})
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan change.Change)
	ran := make(chan error, 1)
	go func() { ran <- src.Run(ctx, out) }()

	// The source watches once it reports the start marker.
	if err := os.WriteFile(filepath.Join(root, startMarker), nil, 0o644); err != nil {
		return result{}, err
	}
	if err := until(ctx, out, ran, startMarker, 0, nil); err != nil {
		return result{}, err
	}
	var seen []change.Change
	consumed := make(chan error, 1)
	go func() { consumed <- until(ctx, out, ran, endMarker, delay, &seen) }()
	res := result{ops: len(ops)}
	for i := range ops {
		if stressops.Apply(root, &ops[i]) != nil {
			res.failed++
		}
	}
	if err := os.WriteFile(filepath.Join(root, endMarker), nil, 0o644); err != nil {
		return result{}, err
	}
	if err := <-consumed; err != nil {
		return result{}, err
	}
	res.changes = len(seen)
	// After the replay: Apply notes the renames as the kernel made them
	// where a path goes through a symlink (stressops.Op.Real).
	made := make(map[[2]string]bool)
	for i := range ops {
		for _, rn := range ops[i].Renames() {
			made[rn] = true
		}
	}
	res.made = len(made)
	for _, c := range seen {
		if c.Op.Has(change.Rename) && c.OldPath != "" {
			res.renames++
		}
		if c.Op.Has(change.Rename) && c.OldPath != "" && !made[[2]string{c.OldPath, c.Path}] {
			res.unmatched = append(res.unmatched, c)
		}
	}
	return res, nil
}

// until receives changes until the one for marker, taking delay for each
// and keeping them in seen (when not nil).
func until(ctx context.Context, out <-chan change.Change, ran <-chan error, marker string, delay time.Duration, seen *[]change.Change) error {
	timeout := time.NewTimer(10 * time.Minute)
	defer timeout.Stop()
	for {
		select {
		case c := <-out:
			if c.Path == marker {
				return nil
			}
			if seen != nil {
				*seen = append(*seen, c)
			}
			if delay > 0 {
				time.Sleep(delay)
			}
		case err := <-ran:
			return fmt.Errorf("the source stopped: %v", err)
		case <-timeout.C:
			return fmt.Errorf("no change for %s within 10m", marker)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
