// Package nodeagent is the root of the per-host agent: change detection,
// the index and journal, rsync workers and the managed rsync daemon live in
// its subpackages, one per concern.
package nodeagent
