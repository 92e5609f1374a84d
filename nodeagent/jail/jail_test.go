package jail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// jails is a stand-in for the kernel's jail table (jail_get(2) needs
// FreeBSD): the resolution logic on top of it runs on real directories.
type jails map[string]Info

func (j jails) lookup(name string) (Info, error) {
	if info, ok := j[name]; ok {
		return info, nil
	}
	return Info{}, ErrNotRunning
}

func TestTracker_Resolve(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "zroot/jails/web")
	for _, d := range []string{real + "/data/www", real + "/var/data", base + "/hostdata"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// /usr/jails is a symlink on the host: resolved.
	if err := os.Symlink(filepath.Join(base, "zroot/jails"), filepath.Join(base, "jails")); err != nil {
		t.Fatal(err)
	}
	// A symlink inside the jail, absolute in the jail's view: refused.
	if err := os.Symlink("/var/data", real+"/data/link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base+"/hostdata", real+"/escape"); err != nil {
		t.Fatal(err)
	}
	table := jails{"web": {JID: 3, Name: "web", Path: filepath.Join(base, "jails/web")}}

	tests := []struct {
		name     string
		jail     string
		path     string
		wantRoot string
		wantErr  error
	}{
		{"data inside a jail under a symlinked jails dir", "web", "/data/www", real + "/data/www", nil},
		{"a symlink inside the jail", "web", "/data/link", "", beneath.ErrOutside},
		{"a symlink leading to the host", "web", "/escape", "", beneath.ErrOutside},
		{"dot-dot cannot climb out", "web", "/../../hostdata", "", nil},
		{"a jail that is not running", "db", "/data", "", ErrNotRunning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Tracker{Lookup: table.lookup, Name: tc.jail, Path: tc.path}
			root, _, err := tr.Resolve()
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve = %q, %v; want %v", root, err, tc.wantErr)
				}
			case tc.wantRoot == "":
				if err == nil && !filepathHasPrefix(root, real) {
					t.Fatalf("Resolve = %q leaves the jail's root %s", root, real)
				}
			default:
				if err != nil || root != tc.wantRoot {
					t.Fatalf("Resolve = %q, %v; want %q", root, err, tc.wantRoot)
				}
			}
		})
	}
}

func filepathHasPrefix(p, prefix string) bool {
	rel, err := filepath.Rel(prefix, p)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../")
}

func TestTracker_NoticesRestart(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/data", 0o755); err != nil {
		t.Fatal(err)
	}
	table := jails{"web": {JID: 3, Name: "web", Path: dir}}
	tr := &Tracker{Lookup: table.lookup, Name: "web", Path: "/data"}
	steps := []struct {
		jid           int
		wantRestarted bool
	}{{3, false}, {3, false}, {7, true}, {7, false}}
	for i, s := range steps {
		table["web"] = Info{JID: s.jid, Name: "web", Path: dir}
		_, restarted, err := tr.Resolve()
		if err != nil || restarted != s.wantRestarted {
			t.Fatalf("step %d (jid %d): restarted=%v err=%v, want restarted=%v", i, s.jid, restarted, err, s.wantRestarted)
		}
	}
}

// TestTracker_Check: the data root the agent syncs is refused once the jail
// runs with another root; a jail stopped, or restarted with the same root,
// leaves it.
func TestTracker_Check(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a + "/data", b + "/data"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	table := jails{"web": {JID: 3, Name: "web", Path: a}}
	tr := &Tracker{Lookup: table.lookup, Name: "web", Path: "/data"}
	root, _, err := tr.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		jail  *Info // nil: not running
		moved bool
	}{
		{"running as it was", &Info{JID: 3, Name: "web", Path: a}, false},
		{"stopped", nil, false},
		{"restarted with the same root", &Info{JID: 8, Name: "web", Path: a}, false},
		{"running with a root that cannot be resolved for now", &Info{JID: 8, Name: "web", Path: a + "/gone"}, false},
		{"restarted with another root", &Info{JID: 9, Name: "web", Path: b}, true},
	}
	for _, s := range steps {
		delete(table, "web")
		if s.jail != nil {
			table["web"] = *s.jail
		}
		if err := tr.Check(root); errors.Is(err, ErrMoved) != s.moved {
			t.Errorf("%s: Check = %v, want moved: %v", s.name, err, s.moved)
		}
	}
}

// TestTracker_Watch: Watch checks again and again until the jail's data
// root moves, and returns ErrMoved then; a jail that stays put is watched
// until the context ends.
func TestTracker_Watch(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a + "/data", b + "/data"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		moveAfter int // lookups before the jail runs from b; 0: never
		want      error
	}{
		{"moves on the fourth check", 4, ErrMoved},
		{"stays until the context ends", 0, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookups := 0
			lookup := func(name string) (Info, error) {
				lookups++
				if tt.moveAfter > 0 && lookups > tt.moveAfter {
					return Info{JID: 9, Name: name, Path: b}, nil
				}
				return Info{JID: 3, Name: name, Path: a}, nil
			}
			tr := &Tracker{Lookup: lookup, Name: "web", Path: "/data"}
			root, _, err := tr.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err = tr.Watch(ctx, root, time.Millisecond)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Watch = %v, want %v", err, tt.want)
			}
			if tt.moveAfter > 0 && lookups != tt.moveAfter+1 {
				t.Errorf("Watch looked the jail up %d times, want %d (it must stop at the first move)", lookups, tt.moveAfter+1)
			}
			if tt.moveAfter == 0 && lookups < 3 {
				t.Errorf("Watch looked the jail up %d times in 300 ms at a 1 ms interval, want many", lookups)
			}
		})
	}
}
