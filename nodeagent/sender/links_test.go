package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/journal"
)

func TestAddLinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	path := func(rel string) string { return filepath.Join(root, rel) }
	must(os.MkdirAll(path("d"), 0o755))
	must(os.MkdirAll(path("busy"), 0o755))
	must(os.WriteFile(path("a"), []byte("a"), 0o644))
	for _, name := range []string{"b", "d/c", "busy/x"} {
		must(os.Link(path("a"), path(name)))
	}
	must(os.WriteFile(path("replaced"), []byte("other inode"), 0o644)) // the index lags
	must(os.WriteFile(path("single"), []byte("s"), 0o644))
	must(os.WriteFile(path("w"), []byte("w"), 0o644))
	must(os.Link(path("w"), path("w2")))
	must(os.WriteFile(filepath.Join(outside, "z"), []byte("z"), 0o644))
	must(os.Link(filepath.Join(outside, "z"), filepath.Join(outside, "z2")))
	must(os.Symlink(outside, path("evil")))
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(rootfd)
	ino := func(p string) uint64 {
		var st unix.Stat_t
		must(unix.Lstat(p, &st))
		return st.Ino
	}
	// What the index would list per inode, stale names included.
	index := map[uint64][]string{
		ino(path("a")): {"a", "b", "busy/x", "d/c", "replaced", "removed", "evil/z"},
		ino(path("w")): {"w", "w2"},
	}
	links := func(i uint64, limit int) []string { return index[i] }

	tests := []struct {
		name      string
		entries   []journal.Entry
		inflight  []string
		links     func(uint64, int) []string
		wantSends []string
		wantLinks []string
	}{
		{
			name:      "other names that are still the file go along",
			entries:   []journal.Entry{{Path: "a", Op: change.Write}},
			links:     links,
			wantSends: []string{"a"},
			wantLinks: []string{"b", "busy/x", "d/c"},
		},
		{
			name:      "names already in the batch are not added twice",
			entries:   []journal.Entry{{Path: "a", Op: change.Write}, {Path: "b", Op: change.Write}},
			links:     links,
			wantSends: []string{"a", "b"},
			wantLinks: []string{"busy/x", "d/c"},
		},
		{
			name:      "a file whose other name is in another run waits for it",
			entries:   []journal.Entry{{Path: "a", Op: change.Write}, {Path: "w", Op: change.Write}, {Path: "single", Op: change.Write}},
			inflight:  []string{"busy"},
			links:     links,
			wantSends: []string{"single", "w"},
			wantLinks: []string{"w2"},
		},
		{
			name:      "without a lookup nothing is added",
			entries:   []journal.Entry{{Path: "a", Op: change.Write}},
			wantSends: []string{"a"},
		},
		{
			name:      "single-link files are not looked up",
			entries:   []journal.Entry{{Path: "single", Op: change.Write}},
			links:     func(uint64, int) []string { t.Error("lookup for a single-link file"); return nil },
			wantSends: []string{"single"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{Links: tc.links, Log: logr.Discard()}
			s.defaults()
			for _, p := range tc.inflight {
				s.inflight.add(p)
			}
			b := plan(rootfd, tc.entries)
			s.addLinks(rootfd, &b)
			got := pathsOf(b.sends)
			slices.Sort(got)
			if !slices.Equal(got, tc.wantSends) {
				t.Errorf("sends %q, want %q", got, tc.wantSends)
			}
			slices.Sort(b.links)
			if !slices.Equal(b.links, tc.wantLinks) {
				t.Errorf("links %q, want %q", b.links, tc.wantLinks)
			}
		})
	}
}

// TestAddLinks_Bound: a file's other names all go in its run, however
// many (rsync -H links only the names one run lists); a later file whose
// names would take the run past MaxLinkNames waits for a run of its own,
// taken out of the batch, and then goes with all of its names. Before,
// the bound cut names, which stayed separate files on the peer.
func TestAddLinks_Bound(t *testing.T) {
	root := t.TempDir()
	index := map[uint64][]string{}
	// many and many2 each have MaxLinkNames+5 names; w has 2.
	for _, f := range []struct {
		name  string
		links int
	}{{"w", 1}, {"many", MaxLinkNames + 4}, {"many2", MaxLinkNames + 4}} {
		if err := os.WriteFile(filepath.Join(root, f.name), []byte(f.name), 0o644); err != nil {
			t.Fatal(err)
		}
		names := []string{f.name}
		for i := range f.links {
			name := fmt.Sprintf("%s-l%04d", f.name, i)
			if err := os.Link(filepath.Join(root, f.name), filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		fi, err := os.Lstat(filepath.Join(root, f.name))
		if err != nil {
			t.Fatal(err)
		}
		index[fi.Sys().(*syscall.Stat_t).Ino] = names
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	s := &Sender{Log: logr.Discard(), Links: func(ino uint64, limit int) []string {
		names := index[ino]
		if limit > 0 {
			names = names[:min(limit, len(names))]
		}
		return names
	}}
	s.defaults()
	entry := func(p string) journal.Entry { return journal.Entry{Path: p, Op: change.Write} }
	tests := []struct {
		name      string
		entries   []string
		wantSends []string
		wantLinks int
	}{
		{"a file with more names than the bound goes with all of them", []string{"many"}, []string{"many"}, MaxLinkNames + 4},
		{"a file that would take the run past the bound waits for a run of its own", []string{"w", "many"}, []string{"w"}, 1},
		{"so do later files once the bound is passed", []string{"many", "w", "many2"}, []string{"many"}, MaxLinkNames + 4},
		{"the file that waited then goes whole", []string{"many2"}, []string{"many2"}, MaxLinkNames + 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var es []journal.Entry
			for _, p := range tc.entries {
				es = append(es, entry(p))
			}
			b := plan(rootfd, es)
			s.addLinks(rootfd, &b)
			got := pathsOf(b.sends)
			slices.Sort(got)
			if !slices.Equal(got, tc.wantSends) {
				t.Errorf("sends %q, want %q", got, tc.wantSends)
			}
			if len(b.links) != tc.wantLinks {
				t.Errorf("%d other names added, want %d", len(b.links), tc.wantLinks)
			}
			for _, name := range b.links {
				if f, _, _ := strings.Cut(name, "-"); !slices.Contains(tc.wantSends, f) {
					t.Fatalf("%q added for a file that waits", name)
				}
			}
		})
	}
}
