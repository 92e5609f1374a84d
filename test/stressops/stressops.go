// Package stressops holds the operations of the randomized stress test
// (test/e2e, the stress tag): their JSON form in a run's ops.jsonl, how
// each is applied to a root, and the renames each makes. The stress test
// generates and logs them; hack/opsreplay replays a log into the fanotify
// source alone.
package stressops

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// Op is one operation of a stress run, as ops.jsonl holds it.
type Op struct {
	T     int64    `json:"t"` // ms since start
	Node  string   `json:"node"`
	Op    string   `json:"op"`
	P     []string `json:"p,omitempty"` // paths, relative to the root
	Size  int64    `json:"size,omitempty"`
	Mode  uint32   `json:"mode,omitempty"`
	Time  int64    `json:"time,omitempty"` // unix ns
	Seed  uint64   `json:"seed,omitempty"`
	Err   string   `json:"err,omitempty"`
	Phase int      `json:"phase"`
	Note  string   `json:"note,omitempty"`
	// Real holds the renames as the kernel made them where they differ
	// from P's: a directory on a path that is a symlink is followed (mv
	// d/c x/f, with x a symlink to d, renames d/c to d/f). Apply sets it.
	Real [][2]string `json:"real,omitempty"`
}

// Content is the content of a write of size bytes from seed.
func Content(seed uint64, size int64) []byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// Apply runs o on root.
func Apply(root string, o *Op) error {
	p := func(i int) string { return filepath.Join(root, o.P[i]) }
	o.Real = nil
	rename := func(i, j int) error {
		o.noteReal(root, o.P[i], o.P[j])
		return os.Rename(p(i), p(j))
	}
	switch o.Op {
	case "write": // create or overwrite (O_TRUNC), mode on create
		return os.WriteFile(p(0), Content(o.Seed, o.Size), fs.FileMode(o.Mode))
	case "atomicwrite": // write a temp then rename over
		if err := os.WriteFile(p(1), Content(o.Seed, o.Size), fs.FileMode(o.Mode)); err != nil {
			return err
		}
		return rename(1, 0)
	case "append":
		f, err := os.OpenFile(p(0), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.Write(Content(o.Seed, o.Size))
		return errors.Join(err, f.Close())
	case "truncate":
		return os.Truncate(p(0), o.Size)
	case "mkdirp":
		return os.MkdirAll(p(0), 0o755)
	case "rm":
		return os.Remove(p(0))
	case "rmr":
		return os.RemoveAll(p(0))
	case "mv": // mv a b [b c ...]: a chain
		for i := 0; i+1 < len(o.P); i++ {
			if err := rename(i, i+1); err != nil {
				return err
			}
		}
		return nil
	case "swap": // mv a tmp; mv b a; mv tmp b
		if err := rename(0, 2); err != nil {
			return err
		}
		if err := rename(1, 0); err != nil {
			return err
		}
		return rename(2, 1)
	case "chmod":
		return os.Chmod(p(0), fs.FileMode(o.Mode))
	case "touch":
		ts := []unix.Timespec{unix.NsecToTimespec(o.Time), unix.NsecToTimespec(o.Time)}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p(0), ts, unix.AT_SYMLINK_NOFOLLOW)
	case "ln":
		return os.Link(p(0), p(1))
	case "symlink": // P[0] = target (as written), P[1] = link
		return os.Symlink(o.P[0], p(1))
	case "sleep":
		time.Sleep(time.Duration(o.Size) * time.Millisecond)
		return nil
	}
	return fmt.Errorf("unknown op %q", o.Op)
}

// noteReal adds the rename of old to new, paths relative to root, to
// o.Real when a directory on either path is reached through a symlink:
// the kernel follows it, and the rename an event source reports names
// the directories where they are. Called before the rename, so that the
// directories are as the rename finds them. A path that does not resolve
// (a dangling link, a directory gone: the rename fails too) or resolves
// outside root is left out.
func (o *Op) noteReal(root, old, new string) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return
	}
	realOld, okOld := realPath(root, realRoot, old)
	realNew, okNew := realPath(root, realRoot, new)
	if okOld && okNew && (realOld != old || realNew != new) {
		o.Real = append(o.Real, [2]string{realOld, realNew})
	}
}

// realPath returns rel, a path relative to root (realRoot once its own
// symlinks are resolved), with its directory's symlinks resolved, and
// whether it resolved to a path under root.
func realPath(root, realRoot, rel string) (string, bool) {
	dir := filepath.Dir(rel)
	if dir == "." {
		return rel, true
	}
	realDir, err := filepath.EvalSymlinks(filepath.Join(root, dir))
	if err != nil {
		return "", false
	}
	r, in := change.Rel(realRoot, realDir)
	if !in {
		return "", false
	}
	return filepath.Join(r, filepath.Base(rel)), true
}

// Renames returns the renames (old, new) o makes, in order, or tried to:
// a chain that failed part way made the first ones. Where a directory on
// a path is a symlink, the rename as the kernel made it is there too
// (Real).
func (o *Op) Renames() [][2]string {
	var pairs [][2]string
	switch P := o.P; o.Op {
	case "mv":
		for i := 0; i+1 < len(P); i++ {
			pairs = append(pairs, [2]string{P[i], P[i+1]})
		}
	case "swap":
		pairs = [][2]string{{P[0], P[2]}, {P[1], P[0]}, {P[2], P[1]}}
	case "atomicwrite":
		pairs = [][2]string{{P[1], P[0]}}
	}
	return append(pairs, o.Real...)
}

// Read returns the operations of an ops.jsonl that ran, notes, sleeps
// and those that failed when recorded left out, their times and errors
// cleared.
func Read(file string) ([]Op, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var out []Op
	for sc.Scan() {
		var o Op
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if o.Op == "note" || o.Op == "sleep" || o.Err != "" {
			continue
		}
		o.Err, o.T = "", 0
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, nil
}
