// Command dumpj prints what a stopped agent's journal holds pending for
// each peer, and optionally the index entries under a prefix: a debugging
// aid for the stress test's leftovers (test/e2e/stress_linux_test.go keeps
// each agent's state directory under JAILSYNC_STRESS_OUT).
//
//	go run ./hack/dumpj -db OUT/n2/index.db -peers n1,n3 [-index PREFIX] [-placeholders ROOT]
//
// With -placeholders it also lists the index's placeholders (an entry
// that matches nothing, or a Moved one) whose path holds something in
// ROOT, the agent's data root, or, with -tree, is listed in FILE (the
// stress test's final-NODE.txt: one quoted path a line). Such an entry
// left once the agent is quiet stands for a scan that never came.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

func main() {
	db := flag.String("db", "", "the agent's index.db (the agent stopped)")
	peers := flag.String("peers", "", "comma-separated peers")
	prefix := flag.String("index", "", "also print the index entry of this path and of its children")
	n := flag.Int("n", 100, "entries per peer")
	root := flag.String("placeholders", "", "also list the placeholders whose path holds something in this data root")
	tree := flag.String("tree", "", "with -placeholders, the tree's paths from this file (one quoted path a line) instead of the root")
	flag.Parse()
	if err := run(*db, strings.Split(*peers, ","), *prefix, *n, *root, *tree); err != nil {
		fmt.Fprintln(os.Stderr, "dumpj:", err)
		os.Exit(1)
	}
}

func run(db string, peers []string, prefix string, n int, root, tree string) error {
	idx, err := index.Open(db)
	if err != nil {
		return err
	}
	defer idx.Close()
	j, err := journal.Open(idx, peers)
	if err != nil {
		return err
	}
	for _, p := range peers {
		es, err := j.Next(p, n, nil)
		if err != nil {
			return err
		}
		fmt.Printf("peer %s: %d pending\n", p, j.Stats(p).Files)
		for _, e := range es {
			fmt.Printf("  seq=%d op=%v %q size=%d\n", e.Seq, e.Op, e.Path, e.Size)
		}
	}
	if root != "" {
		held, err := treeHolds(root, tree)
		if err != nil {
			return err
		}
		if err := placeholders(idx, held); err != nil {
			return err
		}
	}
	if prefix == "" {
		return nil
	}
	return idx.View(func(tx *index.Tx) error {
		e, ok, err := tx.Get(prefix)
		if err != nil {
			return err
		}
		fmt.Printf("index %q held=%v %+v\n", prefix, ok, e)
		return tx.Children(prefix, func(name string, e index.Entry) error {
			fmt.Printf("index %q %+v\n", prefix+"/"+name, e)
			return nil
		})
	})
}

// treeHolds returns what reports whether the tree holds a path: root's
// (every path, where root cannot be looked at), or the paths listed in
// file.
func treeHolds(root, file string) (func(rel string) (string, bool), error) {
	if _, err := os.Stat(root); file == "" && err != nil {
		return func(string) (string, bool) { return "not known: " + err.Error(), true }, nil
	}
	if file == "" {
		return func(rel string) (string, bool) {
			fi, err := os.Lstat(filepath.Join(root, rel))
			if err != nil {
				return err.Error(), !os.IsNotExist(err)
			}
			return fi.Mode().Type().String(), true
		}, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	paths := make(map[string]bool)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		p, err := strconv.Unquote(l)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", file, l, err)
		}
		paths[p] = true
	}
	return func(rel string) (string, bool) { return "listed", paths[rel] }, nil
}

// placeholders prints the index's placeholders whose path the tree holds
// (held).
func placeholders(idx *index.Index, held func(rel string) (string, bool)) error {
	return idx.View(func(tx *index.Tx) error {
		return tx.EachBelow(".", func(rel string, e index.Entry) error {
			if !e.IsPlaceholder() {
				return nil
			}
			if what, ok := held(rel); ok {
				fmt.Printf("placeholder %q moved=%v, in the tree: %s\n", rel, e.IsMoved(), what)
			}
			return nil
		})
	})
}
