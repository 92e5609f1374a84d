package rsync

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// itemPrefix starts every line the --out-format below makes. rsync escapes
// control characters in every line it prints (see unescape), so a name can
// never hold a raw newline, and no name can forge a line: each line that
// starts with the prefix is one item.
const itemPrefix = "jailsync1 "

// outFormat is %i (11 characters since rsync 3.1: type, then one column
// per attribute, "*deleting  " for a deletion), %l (the length of the
// file), %b (bytes transferred for it), %n (its name, "/" after a
// directory). Numbers print as plain digits without the ' flag (log.c,
// log_formatted). %b in the format makes rsync log a file after its
// transfer, not before (options.c: log_before_transfer).
const outFormat = itemPrefix + "%i %l %b %n"

// item is one itemized line.
type item struct {
	change      string // %i
	size        int64  // %l
	transferred int64  // %b
}

// stats are the --stats figures this package keeps.
type stats struct {
	sent, received int64
}

// maxLine bounds one output line: a path (4096 bytes on Linux, 1024 on
// FreeBSD) with every byte escaped to four more.
const maxLine = 64 << 10

// cannotDelete starts the line of a directory rsync could not delete.
const cannotDelete = "cannot delete non-empty directory: "

// unlisted is what rsync itemized of names that were not listed: implied
// parent directories (--relative), the contents of a deleted directory,
// the root ".".
type unlisted struct {
	n int // how many
	// dirs are the implied directories rsync made or changed (mode, owner,
	// times) on the receiver, in the order itemized: not the root, and
	// not a directory it only listed unchanged.
	dirs []string
	// made are those of dirs rsync created there ("cd+++++++++").
	made []string
	// removed are the names rsync itemized as deleted ("*deleting"),
	// listed or not, in the order itemized.
	removed []string
	// notDirs are the unlisted names rsync sent as something other than a
	// directory (Result.NotDirs).
	notDirs []string
}

// parseItems reads rsync's standard output: itemized lines for the listed
// paths go into the returned map by index; the others are counted, and
// the implied directories rsync made or changed kept (unlisted). A
// directory rsync could not delete is returned as an error. With
// --info=progress2, each progress line's byte count goes to progress
// (when not nil).
func parseItems(r io.Reader, ix pathIndex, progress func(int64)) (map[int]item, unlisted, stats, map[int]pathError, error) {
	items := make(map[int]item)
	errs := make(map[int]pathError)
	var other unlisted
	var st stats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	sc.Split(scanLines)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, itemPrefix)
		if !ok {
			if n, ok := progressBytes(line); ok {
				if progress != nil {
					progress(n)
				}
				continue
			}
			st.parse(line)
			// rsync prints this one as information (delete.c): the rest
			// of the line is the name, whatever other message it holds.
			if name, ok := strings.CutPrefix(line, cannotDelete); ok {
				if i, _, ok := ix.lookupUp(cleanRel(strings.TrimLeft(Unescape(name), "/"))); ok {
					errs[i] = pathError{reason: Unescape(line)}
				}
			}
			continue
		}
		name, it, ok := parseItem(rest)
		if !ok {
			continue
		}
		if itemOutcome(it.change) == Deleted {
			other.removed = append(other.removed, name)
		}
		if i, ok := ix[name]; ok {
			items[i] = it
		} else {
			other.n++
			switch o := itemOutcome(it.change); {
			case name == "." || o == Unchanged || o == Deleted:
			case isDir(it.change):
				other.dirs = append(other.dirs, name)
				if created(it.change) {
					other.made = append(other.made, name)
				}
			default:
				other.notDirs = append(other.notDirs, name)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return items, other, st, errs, fmt.Errorf("read rsync output: %w", err)
	}
	return items, other, st, errs, nil
}

// scanLines splits rsync's standard output into lines ended by '\n' or
// '\r': a progress line (--info=progress2) starts with '\r' and is
// rewritten in place by the next one. Neither byte can be part of an
// itemized line: rsync escapes control characters in names (see unescape).
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\n' || b == '\r' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// progressBytes reads a progress line, "   8388608  99%    4.10MB/s
// 0:00:01 (xfr#1, to-chk=1/3)" (progress.c, rprint_progress): the bytes
// gone through so far, as plain digits with --no-human-readable.
func progressBytes(line string) (int64, bool) {
	fields := strings.Fields(line)
	if len(fields) < 2 || !strings.HasSuffix(fields[1], "%") {
		return 0, false
	}
	n, err := number(fields[0])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// number reads a count as rsync prints it: plain digits, or with commas
// between thousands where --no-human-readable was not given.
func number(s string) (int64, error) {
	return strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 10, 64)
}

// parseItem splits "%i %l %b %n" and decodes the name.
func parseItem(s string) (string, item, bool) {
	const width = 11
	if len(s) < width+1 || s[width] != ' ' {
		return "", item{}, false
	}
	it := item{change: s[:width]}
	fields := strings.SplitN(s[width+1:], " ", 3)
	if len(fields) != 3 {
		return "", item{}, false
	}
	var err1, err2 error
	it.size, err1 = strconv.ParseInt(fields[0], 10, 64)
	it.transferred, err2 = strconv.ParseInt(fields[1], 10, 64)
	if err1 != nil || err2 != nil {
		return "", item{}, false
	}
	name := Unescape(fields[2])
	if name != "/" {
		name = strings.TrimSuffix(name, "/") // %n marks directories
	}
	if name == "" {
		name = "."
	}
	return name, it, true
}

// parse keeps the --stats totals ("Total bytes sent: 675"); with
// --no-human-readable they print as plain digits.
func (st *stats) parse(line string) {
	num := func(v string) int64 {
		n, _ := number(v)
		return n
	}
	if v, ok := strings.CutPrefix(line, "Total bytes sent:"); ok {
		st.sent = num(v)
	} else if v, ok := strings.CutPrefix(line, "Total bytes received:"); ok {
		st.received = num(v)
	}
}

// pathError is what an error line said about one listed path.
type pathError struct {
	vanished bool   // "file has vanished", or a missing file
	reason   string // the line, decoded
}

// tailSize bounds the standard error kept for Result.Stderr.
const tailSize = 4096

// errorLines is what rsync's standard error said.
type errorLines struct {
	// errs are the listed paths named in error lines.
	errs map[int]pathError
	// unattributed counts the error lines that named no listed path (a
	// temp file that could not be made names only the temp file, as do
	// a few others): a file the client logged as sent may be among what
	// they discarded.
	unattributed int
	// tail is the end of the output, as printed (tailSize bytes).
	tail string
	// unmade are the parents the receiver aborted on (Result.Unmade).
	unmade []string
}

// invalidPath starts the line of a receiver that found a path below a
// parent that the list holds as no directory, and stopped (generator.c,
// recv_generator: "%s/%s", the parent and the name).
const invalidPath = "ABORTING due to invalid path from sender: "

// parseErrors reads rsync's standard error. A line that names a listed
// path (or a path under a listed directory) marks it failed, or vanished;
// the last tailSize bytes are returned as they were printed. A line that
// names a listed path only through a name below it, or that names a file
// in one of the reserved directories (reserved: Options.TempDir and
// PartialDir), counts as unattributed too: it may be about another listed
// file (its temp file), which must not pass for sent (settle).
func parseErrors(r io.Reader, ix pathIndex, roots, reserved []string) (errorLines, error) {
	errs := make(map[int]pathError)
	unattributed := 0
	var tail, unmade []string
	tailLen := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for sc.Scan() {
		raw := sc.Text()
		tail = append(tail, raw)
		for tailLen += len(raw) + 1; tailLen > tailSize && len(tail) > 1; tail = tail[1:] {
			tailLen -= len(tail[0]) + 1
		}
		line := Unescape(raw)
		if strings.HasPrefix(line, "rsync error: ") || strings.HasPrefix(line, "rsync warning: ") {
			continue // the summary of the run: its exit code says it
		}
		if strings.HasPrefix(line, "WARNING: ") && strings.Contains(line, " failed verification -- update ") {
			continue // sent again in the same run (receiver.c): that attempt decides
		}
		if name, ok := strings.CutPrefix(line, invalidPath); ok {
			if d := path.Dir(cleanRel(name)); d != "." && d != "/" {
				unmade = append(unmade, d)
			}
		}
		i, exact, ok := ix.attribute(line, roots)
		if !ok {
			if strings.TrimSpace(line) != "" {
				unattributed++
			}
			continue
		}
		if !exact || namesReserved(line, roots, reserved) {
			unattributed++
		}
		if _, seen := errs[i]; seen {
			continue // keep the first reason
		}
		errs[i] = pathError{vanished: isVanished(line), reason: line}
	}
	s := strings.Join(tail, "\n")
	if len(s) > tailSize {
		s = s[len(s)-tailSize:]
	}
	out := errorLines{errs: errs, unattributed: unattributed, tail: s, unmade: unmade}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read rsync errors: %w", err)
	}
	return out, nil
}

// isVanished reports a line saying a file was gone on the sending side:
// "file has vanished: ..." (flist.c make_file, sender.c send_files) or a
// failed link_stat with ENOENT or ENOTDIR (flist.c send_file_list, without
// --ignore-missing-args). ENOTDIR is a directory on the path replaced by a
// file since the sender looked (a swap): gone, as the sender's own check
// before the run says (check). Read as a failure, a name that an
// earlier push of the run had made on the peer was left out of the
// confirmation, and the peer took it for a change of its own (the stress
// test, seed 211 of the fifty-first session). The message's words are
// looked for before the first quote only: a name holding them ("file has
// vanished: x") does not make another failure of it read as vanished,
// which backs off less.
func isVanished(line string) bool {
	head := line
	if i := strings.IndexByte(line, '"'); i >= 0 {
		head = line[:i]
	}
	return strings.Contains(head, "file has vanished: ") ||
		(strings.Contains(head, "link_stat ") && (strings.HasSuffix(line, "No such file or directory (2)") || strings.HasSuffix(line, "Not a directory (20)")))
}
