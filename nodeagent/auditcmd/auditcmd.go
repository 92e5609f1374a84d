// Package auditcmd is `nodeagent audit decode`: it prints BSM audit records
// from a trail file, standard input or the live /dev/auditpipe, one per
// line, as text (like praudit -l) or JSON, so that operators see what the
// agent sees.
package auditcmd

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"

	"github.com/jailsync/jailsync/internal/cli"
	"github.com/jailsync/jailsync/nodeagent/bsm"
	"github.com/jailsync/jailsync/nodeagent/source/auditpipe"
)

const usage = `usage: nodeagent audit decode [-o text|json] [--root DIR] [--pipe | FILE]

Prints audit records one per line: from FILE (an audit trail), from standard
input when FILE is absent or -, or from the live /dev/auditpipe (FreeBSD)
with --pipe. -o json prints one JSON object per record with event,
eventName, time, tokens and, for file events, change (relative to --root
when given). A record that cannot be decoded is printed with an error and
decoding goes on with the next one.
`

// Main runs `nodeagent audit ARGS...` and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "exec" {
		return execMain(args[1:], stderr)
	}
	if len(args) == 0 || args[0] != "decode" {
		fmt.Fprint(stderr, usage+"\n"+execUsage)
		return 2
	}
	fs := flag.NewFlagSet("nodeagent audit decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	format := fs.String("o", "text", "output format: text or json")
	root := fs.String("root", "", "data root: change paths in JSON are made relative to it")
	pipe := fs.Bool("pipe", false, "read the live /dev/auditpipe (FreeBSD, root)")
	files, err := cli.ParseInterspersed(fs, args[1:])
	if err != nil {
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "nodeagent audit decode: -o must be text or json, not %q\n", *format)
		return 2
	}
	in, closeIn, err := input(files, *pipe, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "nodeagent audit decode: %v\n", err)
		return 1
	}
	defer closeIn()
	stop := context.AfterFunc(ctx, func() { _ = closeIn() })
	defer stop()
	if *root != "" {
		r, err := filepath.EvalSymlinks(*root)
		if err != nil {
			fmt.Fprintf(stderr, "nodeagent audit decode: --root: %v\n", err)
			return 1
		}
		*root = r
	}
	if err := decode(in, stdout, *format, *root, *pipe); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "nodeagent audit decode: %v\n", err)
		return 1
	}
	return 0
}

func input(args []string, pipe bool, stdin io.Reader) (io.Reader, func() error, error) {
	switch {
	case pipe && len(args) > 0:
		return nil, nil, errors.New("give either --pipe or FILE, not both")
	case pipe:
		f, err := auditpipe.Open(bsm.AUIDUnset, logr.Discard())
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	case len(args) > 1:
		return nil, nil, errors.New("decode reads one FILE")
	case len(args) == 0 || args[0] == "-":
		return stdin, func() error { return nil }, nil
	}
	f, err := os.Open(args[0])
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// decode prints every record of in. Live output (the pipe) is flushed after
// each record; files are written through a buffer.
func decode(in io.Reader, out io.Writer, format, root string, live bool) error {
	w := bufio.NewWriterSize(out, 64<<10)
	defer w.Flush()
	r := bsm.NewReader(in)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if format == "json" {
			err = bsm.WriteJSON(w, rec, root)
		} else {
			err = bsm.WriteText(w, rec)
		}
		if err != nil {
			return err
		}
		if live {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}
