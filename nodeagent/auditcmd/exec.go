package auditcmd

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

const execUsage = `usage: nodeagent audit exec --auid N -- PROGRAM [ARGS...]

Sets this process's audit user id to N (FreeBSD setauid(2)) and replaces it
with PROGRAM: same pid, no shell. The agent starts its rsync daemon this
way, under the receiver's dedicated audit user id, whose records its own
/dev/auditpipe reader masks out, so that files arriving from peers are not
taken for local changes. Needs root; FreeBSD only.
`

// execMain runs `nodeagent audit exec`; it returns only on failure.
func execMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodeagent audit exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, execUsage) }
	auid := fs.String("auid", "", "audit user id to set (0-4294967294)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	n, err := strconv.ParseUint(*auid, 10, 32)
	if err != nil || n == 0xFFFFFFFF {
		fmt.Fprintf(stderr, "nodeagent audit exec: --auid %q: give a number from 0 to 4294967294 (4294967295 means unset)\n", *auid)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, execUsage)
		return 2
	}
	path, err := exec.LookPath(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "nodeagent audit exec: %v\n", err)
		return 127
	}
	if err := setAUID(uint32(n)); err != nil {
		fmt.Fprintf(stderr, "nodeagent audit exec: set audit user id %d: %v\n", n, err)
		return 1
	}
	err = syscall.Exec(path, fs.Args(), os.Environ())
	fmt.Fprintf(stderr, "nodeagent audit exec: %s: %v\n", path, err)
	return 126
}
