// Command dumpj prints what a stopped agent's journal holds pending for
// each peer, and optionally the index entries under a prefix: a debugging
// aid for the stress test's leftovers (test/e2e/stress_linux_test.go keeps
// each agent's state directory under JAILSYNC_STRESS_OUT).
//
//	go run ./hack/dumpj -db OUT/n2/index.db -peers n1,n3 [-index PREFIX]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

func main() {
	db := flag.String("db", "", "the agent's index.db (the agent stopped)")
	peers := flag.String("peers", "", "comma-separated peers")
	prefix := flag.String("index", "", "also print the index entry of this path and of its children")
	n := flag.Int("n", 100, "entries per peer")
	flag.Parse()
	if err := run(*db, strings.Split(*peers, ","), *prefix, *n); err != nil {
		fmt.Fprintln(os.Stderr, "dumpj:", err)
		os.Exit(1)
	}
}

func run(db string, peers []string, prefix string, n int) error {
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
