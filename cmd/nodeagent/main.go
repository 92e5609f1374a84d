// Command nodeagent is jailsync's per-host agent. Change detection,
// replication and standalone mode arrive with their capabilities
// (docs/design.md); today it reports its version.
package main

import (
	"fmt"
	"os"
	"runtime"
)

// version is set at link time with -X main.version=...
var version = "dev"

const usage = `usage: nodeagent <command>

commands:
  version   print the agent's version, OS and architecture
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version":
		fmt.Printf("nodeagent %s %s/%s\n", version, runtime.GOOS, runtime.GOARCH)
	default:
		fmt.Fprintf(os.Stderr, "nodeagent: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
