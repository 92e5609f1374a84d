package exclude

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// tree is the test tree: directories end in /.
var tree = []string{
	"a.tmp", "b.txt", "cache/", "cache/x", "cache/deep/", "cache/deep/y.tmp",
	"src/", "src/cache/", "src/cache/z", "src/main.go", "src/main.go.tmp", "src/.git/", "src/.git/HEAD",
	"logs/", "logs/2026/", "logs/2026/app.log", "logs/app.log", "x/", "x/logs/", "x/logs/app.log",
	"[br]acket", "q1", "q22", "-dash", "#hash", "sp ace.tmp", "\xff\xfe.tmp",
	// Non-ASCII names, and names with a newline: rsync matches bytes.
	"Données/", "Données/a", "dé", "dx", "é.tmp", "logs/x\ny", "a\nb.tmp", "src/n\nl/", "src/n\nl/HEAD",
}

var patterns = []string{
	"*.tmp", "cache/", "/cache/", "cache", "logs/*.log", "/logs/*.log", "logs/**", "**/.git/", ".git",
	"src/cache", "q?", "[ab].*", "[!ab].*", "/src/", "2026/", "-dash", "#hash", "*/app.log", "**.log",
	"\\[br\\]acket", "x/logs/", "sp ace.tmp",
	"/Données/", "Données", "d?", "d??", "*é*", "[é]*", "src/**/HEAD", "n?l/",
}

func TestMatcher_AgreesWithRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Fatal("rsync is not installed: the test compares with the real rsync (apt-get install rsync)")
	}
	src := t.TempDir()
	for _, p := range tree {
		full := filepath.Join(src, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, pat := range patterns {
		t.Run(pat, func(t *testing.T) {
			out, err := exec.Command("rsync", "-r", "--dry-run", "--out-format=%n", "--exclude="+pat, src+"/", t.TempDir()+"/").CombinedOutput()
			if err != nil {
				t.Fatalf("rsync: %v\n%s", err, out)
			}
			var want []string
			for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
				if l = strings.TrimSuffix(unescape(l), "/"); l != "" && l != "." {
					want = append(want, l)
				}
			}
			m, err := Compile([]string{pat})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range tree {
				isDir := strings.HasSuffix(p, "/")
				rel := strings.TrimSuffix(p, "/")
				if !m.Match(rel, isDir) {
					got = append(got, rel)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Fatalf("pattern %q keeps\n got %q\nrsync %q", pat, got, want)
			}
		})
	}
}

func TestMatcher_AlwaysExcludesReservedDir(t *testing.T) {
	m, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel   string
		isDir bool
		want  bool
	}{
		{".jailsync", true, true},
		{".jailsync", false, true}, // whatever type a source says it is
		{".jailsync/tmp/x", false, true},
		{"sub/.jailsync", true, false},
		{"file", false, false},
	}
	for _, tc := range tests {
		if got := m.Match(tc.rel, tc.isDir); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.rel, got, tc.want)
		}
	}
}

// unescape decodes rsync's \#ooo escapes of non-printable bytes in its
// output (a backslash itself stays as it is unless followed by #ooo).
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 < len(s)+0 && s[i+1] == '#' && isOctal(s[i+2]) && isOctal(s[i+3]) && isOctal(s[i+4]) {
			b.WriteByte((s[i+2]-'0')<<6 | (s[i+3]-'0')<<3 | (s[i+4] - '0'))
			i += 4
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
