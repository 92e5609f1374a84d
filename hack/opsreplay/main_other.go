//go:build !linux

// Command opsreplay replays stress runs' operation logs into the fanotify
// source, which is Linux's (main_linux.go).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "opsreplay: the fanotify source is Linux's")
	os.Exit(1)
}
