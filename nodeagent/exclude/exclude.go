// Package exclude matches root-relative paths against a SyncGroup's exclude
// patterns with rsync's semantics for the subset the API accepts (see
// docs/api.md): *, **, ?, [...] classes, a leading / anchoring at the root,
// a trailing / for directories only, and a pattern without / or ** matching
// the last name at any depth. A path is excluded when it or any of its
// parent directories matches, as rsync does not descend into an excluded
// directory. The agent's own .jailsync directory is always excluded.
//
// Written here because no maintained Go library implements rsync's
// anchoring rules; the tests compare it with the real rsync.
//
// rsync matches bytes (its wildmatch.c: ? and a class take one byte, and a
// name is any bytes but / and NUL), while Go's regexp matches UTF-8 runes.
// Patterns and paths are therefore matched as Latin-1: each byte one rune
// (latin1), so that a pattern's non-ASCII letters, and paths that are not
// UTF-8 at all, match exactly as rsync matches them.
package exclude

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// reserved is the agent's own directory in every root (index.ReservedDir).
const reserved = ".jailsync"

// Matcher holds compiled patterns.
type Matcher struct {
	rules []rule
}

type rule struct {
	re      *regexp.Regexp
	dirOnly bool
}

// Compile compiles rsync exclude patterns.
func Compile(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, p := range append([]string{"/" + reserved}, patterns...) {
		r, err := compile(p)
		if err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
		m.rules = append(m.rules, r)
	}
	return m, nil
}

func compile(p string) (rule, error) {
	var r rule
	if p == "" {
		return r, fmt.Errorf("empty pattern")
	}
	if strings.HasSuffix(p, "/") {
		r.dirOnly = true
		p = strings.TrimRight(p, "/")
	}
	anchored := strings.HasPrefix(p, "/")
	p = strings.TrimPrefix(p, "/")
	var b strings.Builder
	b.WriteString(`(?s)`) // ** matches a newline too, as any other byte
	switch {
	case anchored:
		b.WriteString(`^`)
	default:
		// Unanchored: matched against the end of the path, starting at a
		// name boundary (a pattern without / is thus the last name).
		b.WriteString(`(?:^|/)`)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				b.WriteString(`.*`)
				i++
			} else {
				b.WriteString(`[^/]*`)
			}
		case '?':
			b.WriteString(`[^/]`)
		case '[':
			end := classEnd(p, i)
			if end < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := p[i+1 : end]
			b.WriteByte('[')
			if strings.HasPrefix(class, "!") || strings.HasPrefix(class, "^") {
				b.WriteByte('^')
				class = class[1:]
			}
			for j := 0; j < len(class); j++ {
				switch c := class[j]; c {
				case '\\', '[':
					b.WriteByte('\\')
					b.WriteByte(c)
				default:
					b.WriteRune(rune(c))
				}
			}
			b.WriteByte(']')
			i = end
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(string(rune(p[i]))))
			} else {
				b.WriteString(`\\`)
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(rune(c))))
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return r, err
	}
	r.re = re
	return r, nil
}

// classEnd returns the index of the ] closing the class opened at p[i], or
// -1. A ] right after [ or [! is a member, as in fnmatch.
func classEnd(p string, i int) int {
	j := i + 1
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for ; j < len(p); j++ {
		if p[j] == ']' {
			return j
		}
	}
	return -1
}

// Match reports whether rel (root-relative, "a/b/c"), a directory when isDir,
// is excluded: it matches a pattern, or one of its parents does.
func (m *Matcher) Match(rel string, isDir bool) bool {
	if m == nil || rel == "." || rel == "" {
		return false
	}
	rel = latin1(rel)
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && m.matchOne(rel[:i], true) {
			return true
		}
	}
	return m.matchOne(rel, isDir)
}

func (m *Matcher) matchOne(rel string, isDir bool) bool {
	for _, r := range m.rules {
		if r.dirOnly && !isDir {
			continue
		}
		if r.re.MatchString(rel) {
			return true
		}
	}
	return false
}

// latin1 returns s with each byte as one rune (its Latin-1 reading), as the
// patterns are compiled; ASCII is itself, and returned as it is.
func latin1(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]rune, 0, len(s))
	for j := 0; j < len(s); j++ {
		b = append(b, rune(s[j]))
	}
	return string(b)
}
