package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
)

func TestCheckStateDir(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A link outside the root that points into it.
	if err := os.Symlink(root, filepath.Join(base, "into-root")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		stateDir string
		wantErr  string
		made     string // the directory that must exist afterwards; "" for none
		notMade  string // a path that must not exist afterwards
	}{
		{"outside, made with its parents", filepath.Join(outside, "a", "b"), "", filepath.Join(outside, "a", "b"), ""},
		{"the root itself", root, "inside the data root", "", ""},
		{"below the root, nothing made", filepath.Join(root, "state", "www"), "inside the data root", "", filepath.Join(root, "state")},
		{"through a link into the root, nothing made", filepath.Join(base, "into-root", "state"), "inside the data root", "", filepath.Join(root, "state")},
		{"relative to the root's parent", filepath.Join(root, "..", "outside", "c"), "", filepath.Join(outside, "c"), ""},
		{"above the root: the root inside it", base, "inside the state directory", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkStateDir(tc.stateDir, root)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("checkStateDir = %q, %v; want an error saying %q", got, err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if got != tc.made {
				t.Errorf("checkStateDir = %q, want %q", got, tc.made)
			}
			if tc.made != "" {
				if st, err := os.Stat(tc.made); err != nil || !st.IsDir() {
					t.Errorf("%s not made: %v", tc.made, err)
				}
			}
			if tc.notMade != "" {
				if _, err := os.Lstat(tc.notMade); err == nil {
					t.Errorf("%s was made inside the root", tc.notMade)
				}
			}
		})
	}
}

// testGroup is a SyncGroup "www" whose members a, b, ... have the
// addresses addrs.
func testGroup(addrs ...string) *syncv1.SyncGroup {
	sg := &syncv1.SyncGroup{}
	sg.Name = "www"
	for i, a := range addrs {
		sg.Spec.Members = append(sg.Spec.Members, syncv1.Member{Node: string(rune('a' + i)), Address: a})
	}
	return sg
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name     string
		addrs    []string
		node     string
		wantErr  string
		endpoint string
		peers    int
	}{
		{"endpoint on the next port", []string{"127.0.0.2:7873", "127.0.0.3:7873"}, "a", "", "127.0.0.2:7874", 1},
		{"highest port", []string{"127.0.0.2:65533", "127.0.0.3:7873"}, "a", "", "127.0.0.2:65534", 1},
		{"a port whose next ones wrap", []string{"127.0.0.2:7873", "127.0.0.3:65534"}, "a", "port must be 1-65533", "", 0},
		{"not a member", []string{"127.0.0.2:7873", "127.0.0.3:7873"}, "z", "--node z is not a member", "", 0},
		{"two members on one address, ports 3 apart", []string{"127.0.0.2:7873", "127.0.0.2:7876"}, "a", "", "127.0.0.2:7874", 1},
		{"two members on one address, one's daemon on the other's endpoint", []string{"127.0.0.2:7873", "127.0.0.2:7874"}, "a", "ports are less than 3 apart", "", 0},
		{"two members on one address, the metrics port taken", []string{"127.0.0.2:7875", "127.0.0.2:7873"}, "a", "ports are less than 3 apart", "", 0},
		{"two members on one address at the highest ports (no uint16 wrap)", []string{"127.0.0.2:65531", "127.0.0.2:65533"}, "a", "ports are less than 3 apart", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			self, peers, err := resolve(Config{Group: testGroup(tc.addrs...), Node: tc.node})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("resolve = %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if self.endpoint.String() != tc.endpoint || len(peers) != tc.peers {
				t.Errorf("self endpoint %s and %d peers, want %s and %d", self.endpoint, len(peers), tc.endpoint, tc.peers)
			}
		})
	}
}

func TestDataRoot(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		path      string // spec.path
		jail      string
		root      string // --root
		want      string
		wantError string
	}{
		{name: "spec.path", path: dir, want: dir},
		{name: "--root instead of spec.path", path: "/srv/www", root: dir, want: dir},
		{name: "a symlinked root resolved", path: link, want: dir},
		{name: "--root with a jail", path: "/srv/www", jail: "web", root: dir, wantError: "--root cannot be combined with a SyncGroup that names a jail"},
		{name: "a missing root", path: filepath.Join(dir, "missing"), wantError: "data root"},
		{name: "--root /", path: "/srv/www", root: "/", wantError: "is the host's root directory"},
		{name: "--root through .. to /", path: "/srv/www", root: dir + strings.Repeat("/..", strings.Count(dir, "/")), wantError: "is the host's root directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sg := &syncv1.SyncGroup{}
			sg.Spec.Path, sg.Spec.Jail = tc.path, tc.jail
			got, _, err := dataRoot(Config{Group: sg, Root: tc.root})
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("dataRoot = %q, %v; want an error saying %q", got, err, tc.wantError)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("dataRoot = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestRsyncOptions: the transport's compress and bandwidthLimit reach every
// push, and temp and partial files go to the reserved directory.
func TestRsyncOptions(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	tests := []struct {
		name      string
		transport syncv1.Transport
		compress  bool
		limit     int64
	}{
		{name: "defaults"},
		{name: "compress", transport: syncv1.Transport{Compress: true}, compress: true},
		{name: "binary limit", transport: syncv1.Transport{BandwidthLimit: q("1Mi")}, limit: 1 << 20},
		{name: "decimal limit", transport: syncv1.Transport{BandwidthLimit: q("10M")}, limit: 10_000_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := rsyncOptions(syncv1.SyncGroupSpec{Transport: tc.transport}, true)
			if o.Compress != tc.compress || o.BandwidthLimit != tc.limit || o.TempDir != "/.jailsync" || o.PartialDir != "/.jailsync/partial" {
				t.Errorf("options %+v; want compress %v, limit %d, the reserved temp and partial directories", o, tc.compress, tc.limit)
			}
			// An rsync that cannot resume from the partial directory gets none.
			if o := rsyncOptions(syncv1.SyncGroupSpec{Transport: tc.transport}, false); o.PartialDir != "" || o.TempDir != "/.jailsync" {
				t.Errorf("options without resume %+v; want the temp directory and no partial one", o)
			}
		})
	}
}
