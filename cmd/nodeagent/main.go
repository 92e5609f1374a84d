// Command nodeagent is jailsync's per-host agent. Replication and
// standalone mode arrive with their capability (docs/design.md); today it
// decodes audit records and reports its version.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/jailsync/jailsync/nodeagent/auditcmd"
)

// version is set at link time with -X main.version=...
var version = "dev"

const usage = `usage: nodeagent <command> [arguments]

commands:
  audit decode   print BSM audit records from a trail, stdin or /dev/auditpipe
  version        print the agent's version, OS and architecture
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch os.Args[1] {
	case "audit":
		os.Exit(auditcmd.Main(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	case "version":
		fmt.Printf("nodeagent %s %s/%s\n", version, runtime.GOOS, runtime.GOARCH)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "nodeagent: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
