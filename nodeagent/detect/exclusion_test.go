package detect

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/exclude"
)

// TestAcrossExclusion: a rename with one side excluded is what the synced
// tree saw of it (the audit trail's source reports such renames whole).
func TestAcrossExclusion(t *testing.T) {
	excluded := func(rel string, _ bool) bool { return strings.HasPrefix(rel, "cache/") || rel == "local.conf" }
	// What is on disk now: the audit trail's renames carry no type.
	disk := map[string]bool{"b": false, "cache/f": false, "cache/d": true, "shared.conf": false, "d": true, "build": true, "cache/b": false}
	typeOf := func(rel string) (dir, exists bool) { dir, exists = disk[rel]; return dir, exists }
	tests := []acrossExclusionCase{
		{name: "within the tree", keep: true,
			in:   change.Change{Path: "b", OldPath: "a", Op: change.Rename, Finished: true},
			want: change.Change{Path: "b", OldPath: "a", Op: change.Rename, Finished: true}},
		{name: "out to an excluded name: the old name is removed", keep: true,
			in:   change.Change{Path: "cache/f", OldPath: "data/f", Op: change.Rename, Finished: true},
			want: change.Change{Path: "data/f", Op: change.Remove, Finished: true}},
		{name: "a directory out", keep: true,
			in:   change.Change{Path: "cache/d", OldPath: "d", Op: change.Rename | change.Subtree, Finished: true},
			want: change.Change{Path: "d", Op: change.Rmdir, Finished: true}},
		{name: "in from an excluded name: made here", keep: true,
			in:   change.Change{Path: "shared.conf", OldPath: "local.conf", Op: change.Rename, Finished: true},
			want: change.Change{Path: "shared.conf", Op: change.Create, Finished: true}},
		{name: "a directory in: its whole tree", keep: true,
			in:   change.Change{Path: "d", OldPath: "cache/d", Op: change.Rename | change.Subtree, Finished: true},
			want: change.Change{Path: "d", Op: change.Subtree, Finished: true}},
		{name: "a directory in, as the audit trail reports it (no type)", keep: true,
			in:   change.Change{Path: "build", OldPath: "cache/build", Op: change.Rename, Finished: true},
			want: change.Change{Path: "build", Op: change.Subtree, Finished: true}},
		{name: "both sides excluded", keep: false,
			in: change.Change{Path: "cache/b", OldPath: "cache/a", Op: change.Rename, Finished: true}},
	}
	checkAcrossExclusion(t, tests, excluded, typeOf)
}

// TestAcrossExclusion_directoryOnlyPattern: with the agent's own matcher,
// a directory renamed from or to a name that only a directory-only
// pattern ("build/") excludes leaves or enters the synced tree: the old
// name, gone by the time the rename is read, is matched as a directory.
// Left a rename, the peer would be asked to rename its own excluded
// build/, or, refused, have it deleted with --force.
func TestAcrossExclusion_directoryOnlyPattern(t *testing.T) {
	m, err := exclude.Compile([]string{"build/"})
	if err != nil {
		t.Fatal(err)
	}
	// On disk now: out and notes (build was renamed away).
	disk := map[string]bool{"out": true, "notes": false}
	typeOf := func(rel string) (dir, exists bool) { dir, exists = disk[rel]; return dir, exists }
	excluded := m.Match
	tests := []acrossExclusionCase{
		{name: "mv build out: a tree made", keep: true,
			in:   change.Change{Path: "out", OldPath: "build", Op: change.Rename | change.Subtree, Finished: true},
			want: change.Change{Path: "out", Op: change.Subtree, Finished: true}},
		{name: "mv build out, as the audit trail reports it (no type)", keep: true,
			in:   change.Change{Path: "out", OldPath: "build", Op: change.Rename, Finished: true},
			want: change.Change{Path: "out", Op: change.Subtree, Finished: true}},
		{name: "mv out build: a tree removed", keep: true,
			in:   change.Change{Path: "build", OldPath: "out", Op: change.Rename | change.Subtree, Finished: true},
			want: change.Change{Path: "out", Op: change.Rmdir, Finished: true}},
		{name: "a file named build is not excluded", keep: true,
			in:   change.Change{Path: "notes", OldPath: "build", Op: change.Rename, Finished: true},
			want: change.Change{Path: "notes", OldPath: "build", Op: change.Rename, Finished: true}},
	}
	checkAcrossExclusion(t, tests, excluded, typeOf)
}

// TestScanDirs: a rescan of a file, a symlink or a path gone is a scan of
// the nearest directory above it that exists (a scan reads directories: of
// a file it compared nothing), each directory once; a tree's request
// (scanQueue.addTree) of a path that is no directory now is dropped.
func TestScanDirs(t *testing.T) {
	disk := map[string]bool{"d": true, "d/e": true, "d/f": false, "link": false}
	typeOf := func(rel string) (dir, exists bool) { dir, exists = disk[rel]; return dir, exists }
	lost := func(paths ...string) []scanRequest {
		var reqs []scanRequest
		for _, p := range paths {
			reqs = append(reqs, scanRequest{path: p})
		}
		return reqs
	}
	tree := func(p string) scanRequest { return scanRequest{path: p, tree: true} }
	tests := []struct {
		in   []scanRequest
		want []string
	}{
		{lost("d/e"), []string{"d/e"}},
		{lost("d/f"), []string{"d"}},
		{lost("link"), []string{"."}},
		{lost("d/gone/deeper"), []string{"d"}},
		{lost("gone"), []string{"."}},
		{lost("d/f", "d", "d/gone"), []string{"d"}},
		{lost("."), []string{"."}},
		{[]scanRequest{tree("d/e")}, []string{"d/e"}},
		{[]scanRequest{tree("gone")}, []string{}},
		{[]scanRequest{tree("d/gone"), tree("d/f"), tree("link")}, []string{}},
		{[]scanRequest{tree("d/gone"), {path: "d/f"}}, []string{"d"}},
		{[]scanRequest{tree(".")}, []string{"."}},
	}
	for _, tt := range tests {
		if got := scanDirs(tt.in, typeOf); !slices.Equal(got, tt.want) {
			t.Errorf("scanDirs(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestScanQueue: a path asked for both as a tree and for lost events is
// scanned as the latter, in either order; past maxQueuedScans the queue
// is one scan of the whole root.
func TestScanQueue(t *testing.T) {
	var q scanQueue
	q.addTree("a")
	q.add("a")
	q.add("b")
	q.addTree("b")
	q.addTree("c")
	got := q.take()
	slices.SortFunc(got, func(x, y scanRequest) int { return strings.Compare(x.path, y.path) })
	if want := []scanRequest{{path: "a"}, {path: "b"}, {path: "c", tree: true}}; !slices.Equal(got, want) {
		t.Errorf("take() = %v, want %v", got, want)
	}
	if got := q.take(); len(got) != 0 {
		t.Errorf("take() again = %v, want nothing", got)
	}
	for i := range maxQueuedScans + 1 {
		q.addTree(fmt.Sprint("t", i))
	}
	if got, want := q.take(), []scanRequest{{path: "."}}; !slices.Equal(got, want) {
		t.Errorf("take() past maxQueuedScans = %v, want %v", got, want)
	}
}

// acrossExclusionCase is one rename and what acrossExclusion makes of it.
type acrossExclusionCase struct {
	name string
	in   change.Change
	want change.Change
	keep bool
}

func checkAcrossExclusion(t *testing.T, tests []acrossExclusionCase, excluded func(string, bool) bool, typeOf func(string) (bool, bool)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, keep := acrossExclusion(tt.in, excluded, typeOf)
			if keep != tt.keep || keep && got != tt.want {
				t.Errorf("acrossExclusion = %+v, %v; want %+v, %v", got, keep, tt.want, tt.keep)
			}
		})
	}
}
