package rsync

import (
	"slices"
	"strings"
)

// pathIndex maps each listed root-relative path to its index in the run.
type pathIndex map[string]int

// maxQuotes bounds the quote pairs tried in one line.
const maxQuotes = 16

// attribute finds the one listed path an error line is about, by its
// unquoted and quoted names. A line in which more than one listed path can
// be read is taken for none (unattributed, which keeps every file of a
// failed run unconfirmed): a name may be made to look like another
// message's text, and the failure it would take for its own is another
// file's, which would then pass for sent. exact is false when the path
// was read only as a parent of the name quoted, or a suffix of it: the
// line is about something below it (a file of a listed directory, or that
// file's temp file, d/.f.XXXXXX), which may be another listed path's.
func (ix pathIndex) attribute(line string, roots []string) (i int, exact, ok bool) {
	found := -1
	exact = true
	one := func(m match) bool {
		if found >= 0 && found != m.i {
			return false
		}
		found = m.i
		exact = exact && m.exact
		return true
	}
	for _, m := range ix.namedUnquoted(line) {
		if !one(m) {
			return 0, false, false
		}
	}
	named, all := ix.named(line, roots)
	if !all {
		return 0, false, false // more quotes than were tried: another reading may name another path
	}
	for _, m := range named {
		if !one(m) {
			return 0, false, false
		}
	}
	return found, exact, found >= 0
}

// match is a listed path read in a line: exact when the name read is the
// path itself, not a name below it.
type match struct {
	i     int
	exact bool
}

// add appends m to ms unless its path is there; a path read once exactly
// and once below stays inexact (the line may be about the name below).
func add(ms []match, m match) []match {
	for j := range ms {
		if ms[j].i == m.i {
			ms[j].exact = ms[j].exact && m.exact
			return ms
		}
	}
	return append(ms, m)
}

// quotedSpans calls fn with every string between two of the line's
// quotes (names may hold quotes, so every pair is tried); it reports false
// for a line with more than maxQuotes quotes, of which only the first were
// tried.
func quotedSpans(line string, fn func(s string)) bool {
	var quotes []int
	for i := 0; i < len(line); i++ {
		if line[i] == '"' {
			if len(quotes) == maxQuotes {
				return false
			}
			quotes = append(quotes, i)
		}
	}
	for span := 1; span < len(quotes); span++ {
		for a := 0; a+span < len(quotes); a++ {
			fn(line[quotes[a]+1 : quotes[a+span]])
		}
	}
	return true
}

// namesReserved reports whether line quotes a name in one of the reserved
// directories (rsync's temp and partial directories, relative to the
// root; one without a leading slash may be in any directory, as rsync puts
// a relative one beside each file): such a failure is about the temp
// file of some listed file, which its name does not say (a discarded
// transfer: `mkstemp "/.jailsync/tmp/NAME.XXXXXX" failed`), whatever
// listed path the rest of the line can be read to name.
func namesReserved(line string, roots, reserved []string) bool {
	found := false
	quotedSpans(line, func(s string) {
		for _, rel := range rels(s, roots) {
			for _, r := range reserved {
				switch {
				case r == "":
				case strings.HasPrefix(r, "/"):
					found = found || strings.HasPrefix(rel, cleanRel(strings.TrimLeft(r, "/"))+"/")
				default:
					r = cleanRel(r)
					found = found || strings.HasPrefix(rel, r+"/") || strings.Contains(rel, "/"+r+"/")
				}
			}
		}
	})
	return found
}

// named returns the listed paths an error line can be read to name. rsync
// quotes file names in its messages (util1.c, full_fname): "<dir>/<name>",
// where <dir> is the sender's working directory (our root, as getcwd
// reports it) or, on the receiver, the directory under the module; some
// messages quote two names (rename "tmp" -> "name"). Names may hold
// quotes, so every pair of quotes is tried. The quoted name, without a
// root prefix, is looked up, then its parents (a failure inside a listed
// directory is that directory's failure); only when none is found, any
// suffix after a slash. all is false for a line with more than maxQuotes
// quotes, of which only the first were tried.
func (ix pathIndex) named(line string, roots []string) (out []match, all bool) {
	all = quotedSpans(line, func(s string) {
		for _, rel := range rels(s, roots) {
			if i, exact, ok := ix.lookupUp(rel); ok {
				out = add(out, match{i, exact})
			}
		}
	})
	if !all {
		return nil, false
	}
	if len(out) > 0 {
		return out, true
	}
	quotedSpans(line, func(s string) {
		for j := strings.IndexByte(s, '/'); j >= 0; {
			if i, ok := ix[cleanRel(s[j+1:])]; ok {
				out = add(out, match{i, false})
			}
			k := strings.IndexByte(s[j+1:], '/')
			if k < 0 {
				break
			}
			j += 1 + k
		}
	})
	return out, true
}

// lookupUp looks rel up, then each of its parents; exact says that rel
// itself is listed.
func (ix pathIndex) lookupUp(rel string) (i int, exact, ok bool) {
	for exact = true; rel != "" && rel != "."; exact = false {
		if i, ok := ix[rel]; ok {
			return i, exact, true
		}
		j := strings.LastIndexByte(rel, '/')
		if j < 0 {
			break
		}
		rel = rel[:j]
	}
	return 0, false, false
}

// rels are the relative names a quoted name may be: without a root prefix
// (the sender's side prints names under its working directory, the root),
// and without its leading slash (the receiver's side prints names under
// the module, "/" in its chroot). A root "/data" and a path "data/x" make
// "/data/x" both "x" and "data/x": if both are listed, the line names two.
func rels(s string, roots []string) []string {
	out := []string{cleanRel(strings.TrimLeft(s, "/"))}
	for _, r := range roots {
		if r != "" && r != "/" && strings.HasPrefix(s, r+"/") {
			if rel := cleanRel(s[len(r)+1:]); !slices.Contains(out, rel) {
				out = append(out, rel)
			}
		}
	}
	return out
}

// cleanRel drops "." and empty components, as rsync's clean_fname does
// ("./a//b" is "a/b"); names here never hold "..".
func cleanRel(s string) string {
	if !strings.Contains(s, "./") && !strings.Contains(s, "//") && !strings.HasSuffix(s, "/.") {
		return strings.TrimSuffix(s, "/")
	}
	var parts []string
	for c := range strings.SplitSeq(s, "/") {
		if c != "" && c != "." {
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/")
}

// namedUnquoted finds the listed path in the messages that print a name
// without quotes: delete.c's "delete_file: unlink(NAME) failed: ...",
// "could not make way for new regular file: NAME", "cannot delete
// non-empty directory: NAME", and receiver.c's "ERROR: NAME failed
// verification -- update discarded.", "temporary filename too long:
// NAME", "Unable to create partial-dir for NAME -- discarding ...". The
// name is relative to the module. Every message's reading is returned: a
// name may hold another message's text.
func (ix pathIndex) namedUnquoted(line string) []match {
	var out []match
	up := func(rel string) {
		if i, exact, ok := ix.lookupUp(rel); ok {
			out = add(out, match{i, exact})
		}
	}
	for _, m := range []struct{ prefix, suffix string }{
		{"ERROR: ", " failed verification -- update "},
		{"temporary filename too long: ", ""},
		{"Unable to create partial-dir for ", " -- discarding "},
	} {
		_, rest, ok := strings.Cut(line, m.prefix)
		if !ok {
			continue
		}
		if m.suffix != "" {
			j := strings.LastIndex(rest, m.suffix)
			if j < 0 {
				continue
			}
			rest = rest[:j]
		}
		up(cleanRel(strings.TrimLeft(rest, "/")))
	}
	if _, rest, ok := strings.Cut(line, "delete_file: "); ok {
		i := strings.IndexByte(rest, '(')
		j := strings.LastIndex(rest, ") failed: ")
		if i >= 0 && j > i {
			up(cleanRel(strings.TrimLeft(rest[i+1:j], "/")))
		}
	}
	for _, prefix := range []string{"could not make way for ", "cannot delete non-empty directory"} {
		if _, rest, ok := strings.Cut(line, prefix); ok {
			if _, name, ok := strings.Cut(rest, ": "); ok {
				up(cleanRel(strings.TrimLeft(name, "/")))
			}
		}
	}
	return out
}
