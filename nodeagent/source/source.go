// Package source defines what every change source (auditpipe on FreeBSD,
// fanotify on Linux, the scanner everywhere) provides to the agent.
package source

import (
	"context"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// Source reports changes under one data root.
type Source interface {
	// Run sends every change under the root to out, one event at a time
	// (coalescing is the consumer's job, see change.Coalescer), until ctx
	// ends; it returns nil then, or an error that stops the source. Lost
	// events are reported as a change.Rescan of the affected path ("." for
	// the whole root), never dropped silently.
	Run(ctx context.Context, out chan<- change.Change) error
	// SeesClose reports whether the source observes the close of a written
	// file. Where it does not, a change is ready only after the settle
	// period without further change.
	SeesClose() bool
}

// Options are what every source needs to know.
type Options struct {
	// Root is the data root, absolute, clean and with symlinks resolved.
	Root string
	// Exclude reports whether a root-relative path is never replicated (the
	// agent's own .jailsync directory, spec.exclude); sources drop such
	// changes early. Nil excludes nothing.
	Exclude func(rel string) bool
	// OwnPID reports whether pid is this agent's own (the agent process,
	// which applies peers' renames and removals, or its rsync receiver
	// where it can be told); changes it made are marked Echo (a hint only,
	// see change.Change.Echo). Nil marks nothing.
	OwnPID func(pid int32) bool
	// Quiet names root-relative directories whose entries' events a source
	// may have the kernel drop before they are queued: the rsync daemon's
	// temp and partial directories, which every rsync receive writes into
	// and which Exclude drops anyway. Only a cost saving: a source that
	// cannot do it (or a directory that is replaced later) still relies on
	// Exclude.
	Quiet []string
}
