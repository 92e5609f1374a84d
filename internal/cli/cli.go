// Package cli holds what the agent's subcommands share in parsing their
// arguments with the standard flag package.
package cli

import (
	"flag"
	"fmt"
)

// ParseInterspersed parses args with fs and returns the positional
// arguments, taking flags that come after them too (`decode FILE -o json`
// as well as `decode -o json FILE`): flag.Parse stops at the first
// positional argument. Everything after "--" is positional.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// NoArgs returns an error naming the first of args, for subcommands that
// take flags only.
func NoArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q: this command takes flags only", args[0])
	}
	return nil
}
