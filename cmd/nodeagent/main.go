// Command nodeagent is jailsync's per-host agent: standalone mode (run),
// progress (status) and the audit record decoder (audit decode).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/jailsync/jailsync/nodeagent/auditcmd"
	"github.com/jailsync/jailsync/nodeagent/runcmd"
)

// version is set at link time with -X main.version=...
var version = "dev"

const usage = `usage: nodeagent <command> [arguments]

commands:
  run            run one SyncGroup from a file (standalone mode)
  status         print a running agent's per-peer progress
  audit decode   print BSM audit records from a trail, stdin or /dev/auditpipe
  audit exec     run a program under an audit user id (FreeBSD; the agent starts rsync so)
  version        print the agent's version, OS and architecture
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, the default action again: a second SIGTERM
	// or Ctrl-C ends the process at once, without the drain.
	context.AfterFunc(ctx, stop)
	switch os.Args[1] {
	case "run":
		os.Exit(runcmd.Run(ctx, os.Args[2:], os.Stderr))
	case "status":
		os.Exit(runcmd.Status(ctx, os.Args[2:], os.Stdout, os.Stderr))
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
