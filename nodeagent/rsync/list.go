package rsync

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jailsync/jailsync/nodeagent/beneath"
	"golang.org/x/sys/unix"
)

// listing is the input of one run after the checks: the paths (one
// PathResult each, deduplicated, in the caller's order), the ones given to
// rsync, and the --from0 list.
type listing struct {
	results []PathResult
	index   pathIndex // listed paths only
	list    []byte    // "./path\x00" for each listed path
}

// buildListing checks every path beneath root before it is listed. rsync's
// sender follows a symlinked directory on the way to a listed name (evil ->
// /outside makes "evil/secret" read /outside/secret), so a path that leaves
// the root or passes through a symlink is dropped. A Push lists what
// exists; a Delete lists what is gone. With checked, the caller has done
// that check (Options.Checked) and only NUL bytes are looked for.
func buildListing(root string, paths []string, m mode, checked bool) (listing, error) {
	rootfd := -1
	if !checked {
		fd, err := beneath.OpenRoot(root)
		if err != nil {
			return listing{}, err
		}
		defer unix.Close(fd)
		rootfd = fd
	}
	size := 0
	for _, p := range paths {
		size += ListedBytes(p)
	}
	l := listing{index: make(pathIndex, len(paths)), results: make([]PathResult, 0, len(paths)), list: make([]byte, 0, size)}
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		r := PathResult{Path: p}
		if checked {
			r.Outcome, r.Reason = checkName(p)
		} else {
			r.Outcome, r.Reason = check(rootfd, p, m)
		}
		if r.Outcome == Unconfirmed {
			l.index[p] = len(l.results)
			// Every entry starts with "./": rsync drops entries that start
			// with '#' or ';' as comments, even with --from0 (rsync(1),
			// --files-from).
			l.list = append(append(append(l.list, "./"...), p...), 0)
		}
		l.results = append(l.results, r)
	}
	return l, nil
}

// ListedBytes is what path p takes in a run's --from0 list: "./", the
// path, a NUL.
func ListedBytes(p string) int { return len("./") + len(p) + 1 }

// check decides whether p goes into the run (Unconfirmed, to be settled by
// rsync's output) or is settled now.
func check(rootfd int, p string, m mode) (Outcome, string) {
	if o, why := checkName(p); o != Unconfirmed {
		return o, why
	}
	if m == modeDelete && p == "." {
		return Dropped, "the data root itself is never deleted"
	}
	var st unix.Stat_t
	err := beneath.Lstat(rootfd, p, &st)
	switch {
	case errors.Is(err, beneath.ErrOutside):
		return Dropped, err.Error()
	case err == nil && m == modeDelete:
		return Present, "exists here: push it instead"
	case err == nil:
		return Unconfirmed, ""
	case errors.Is(err, unix.ENOTDIR) && m == modeDelete:
		// rsync would fail on it (link_stat: not a directory); pushing
		// the parent replaces the peer's directory (--force).
		return Present, "a parent is not a directory here: push it instead"
	case errors.Is(err, fs.ErrNotExist) && m == modeDelete:
		return Unconfirmed, ""
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return Vanished, "gone before the run"
	default:
		return Failed, fmt.Sprintf("check before the run: %v", err)
	}
}

// checkName is what check decides from the name alone: a NUL byte cannot
// be listed (--from0 ends the name there), nor an entry of MAXPATHLEN
// bytes or more: rsync keeps its first MAXPATHLEN-1 bytes and drops the
// rest without a word (io.c read_line), so a Delete would act on another
// path and a Push would find it gone.
func checkName(p string) (Outcome, string) {
	if strings.IndexByte(p, 0) >= 0 {
		return Dropped, "the path holds a NUL byte"
	}
	if len("./")+len(p) >= unix.PathMax {
		return Dropped, fmt.Sprintf("the path is %d bytes long, rsync lists at most %d", len(p), unix.PathMax-1-len("./"))
	}
	return Unconfirmed, ""
}

// String shows the --from0 list readably, for test failures.
func (l listing) String() string {
	return string(bytes.ReplaceAll(l.list, []byte{0}, []byte{'\n'}))
}
