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
// file's, which would then pass for sent.
func (ix pathIndex) attribute(line string, roots []string) (int, bool) {
	found := -1
	one := func(i int) bool {
		if found >= 0 && found != i {
			return false
		}
		found = i
		return true
	}
	for _, i := range ix.namedUnquoted(line) {
		if !one(i) {
			return 0, false
		}
	}
	named, all := ix.named(line, roots)
	if !all {
		return 0, false // more quotes than were tried: another reading may name another path
	}
	for _, i := range named {
		if !one(i) {
			return 0, false
		}
	}
	return found, found >= 0
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
func (ix pathIndex) named(line string, roots []string) (out []int, all bool) {
	var quotes []int
	for i := 0; i < len(line); i++ {
		if line[i] == '"' {
			if len(quotes) == maxQuotes {
				return nil, false
			}
			quotes = append(quotes, i)
		}
	}
	for span := 1; span < len(quotes); span++ {
		for a := 0; a+span < len(quotes); a++ {
			s := line[quotes[a]+1 : quotes[a+span]]
			for _, rel := range rels(s, roots) {
				if i, ok := ix.lookupUp(rel); ok && !slices.Contains(out, i) {
					out = append(out, i)
				}
			}
		}
	}
	if len(out) > 0 {
		return out, true
	}
	for span := 1; span < len(quotes); span++ {
		for a := 0; a+span < len(quotes); a++ {
			s := line[quotes[a]+1 : quotes[a+span]]
			for j := strings.IndexByte(s, '/'); j >= 0; {
				if i, ok := ix[cleanRel(s[j+1:])]; ok && !slices.Contains(out, i) {
					out = append(out, i)
				}
				k := strings.IndexByte(s[j+1:], '/')
				if k < 0 {
					break
				}
				j += 1 + k
			}
		}
	}
	return out, true
}

// lookupUp looks rel up, then each of its parents.
func (ix pathIndex) lookupUp(rel string) (int, bool) {
	for rel != "" && rel != "." {
		if i, ok := ix[rel]; ok {
			return i, true
		}
		j := strings.LastIndexByte(rel, '/')
		if j < 0 {
			break
		}
		rel = rel[:j]
	}
	return 0, false
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
func (ix pathIndex) namedUnquoted(line string) []int {
	var out []int
	add := func(i int, ok bool) {
		if ok && !slices.Contains(out, i) {
			out = append(out, i)
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
		add(ix.lookupUp(cleanRel(strings.TrimLeft(rest, "/"))))
	}
	if _, rest, ok := strings.Cut(line, "delete_file: "); ok {
		i := strings.IndexByte(rest, '(')
		j := strings.LastIndex(rest, ") failed: ")
		if i >= 0 && j > i {
			add(ix.lookupUp(cleanRel(strings.TrimLeft(rest[i+1:j], "/"))))
		}
	}
	for _, prefix := range []string{"could not make way for ", "cannot delete non-empty directory"} {
		if _, rest, ok := strings.Cut(line, prefix); ok {
			if _, name, ok := strings.Cut(rest, ": "); ok {
				add(ix.lookupUp(cleanRel(strings.TrimLeft(name, "/"))))
			}
		}
	}
	return out
}
