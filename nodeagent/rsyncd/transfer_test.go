package rsyncd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDaemon_Run_replicatesAttributes pushes files, a directory and a
// symlink with foreign owners, modes and times and checks that all arrive.
func TestDaemon_Run_replicatesAttributes(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 1
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)

	src := t.TempDir()
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	wants := map[string]attrs{
		"f":   {uid: 1234, gid: 5678, mode: unix.S_IFREG | 0o640},
		"d":   {uid: 42, gid: 43, mode: unix.S_IFDIR | 0o750},
		"d/g": {uid: 0, gid: 0, mode: unix.S_IFREG | 0o4755},
		"l":   {uid: 77, gid: 88, mode: unix.S_IFLNK | 0o777, link: "f"},
	}
	makeAttrTree(t, src, wants, mtime)

	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push: exit %d: %s", code, out)
	}
	root := d.Config.Modules[0].Path
	for name, w := range wants {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, name), &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != w.uid || int(st.Gid) != w.gid || uint32(st.Mode) != w.mode {
			t.Errorf("%s: uid %d gid %d mode %o, want %d %d %o", name, st.Uid, st.Gid, st.Mode, w.uid, w.gid, w.mode)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Errorf("%s: mtime %s, want %s", name, got, mtime)
		}
		if w.link != "" {
			if target, _ := os.Readlink(filepath.Join(root, name)); target != w.link {
				t.Errorf("%s: target %q, want %q", name, target, w.link)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "f")); string(b) != "content of f" {
		t.Errorf("f: content %q", b)
	}
}

// attrs are what TestDaemon_Run_replicatesAttributes expects to arrive.
type attrs struct {
	uid, gid int
	mode     uint32
	link     string
}

// makeAttrTree creates f, d/g and the link l in src with wants' owners,
// modes and link targets, all modified at mtime.
func makeAttrTree(t *testing.T, src string, wants map[string]attrs, mtime time.Time) {
	t.Helper()
	writeFile(t, filepath.Join(src, "f"), "content of f")
	writeFile(t, filepath.Join(src, "d", "g"), "content of g")
	if err := os.Symlink(wants["l"].link, filepath.Join(src, "l")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d/g", "f", "d", "l"} { // d after d/g: its mtime
		w, p := wants[name], filepath.Join(src, name)
		if err := os.Lchown(p, w.uid, w.gid); err != nil {
			t.Fatal(err)
		}
		if w.link == "" {
			if err := unix.Chmod(p, w.mode&0o7777); err != nil {
				t.Fatal(err)
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDaemon_Run_symlinksVerbatim checks that links arrive as links with
// their targets unchanged (no munging), and that a symlinked directory in
// the module that points outside is never written through.
func TestDaemon_Run_symlinksVerbatim(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 2
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)
	root := d.Config.Modules[0].Path
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}

	src := t.TempDir()
	links := map[string]string{"passwd": "/etc/passwd", "up": "../../outside", "dangling": "no/such/file"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(src, "evil", "secret"), "must not leave the module")
	dest := fmt.Sprintf("%s@%s::data/", DefaultUser, daemonAddr(n).Addr())
	from, port := peerAddr(n).String(), daemonAddr(n).Port()

	// Through the link: the destination path resolves inside the chroot,
	// where the link's target does not exist.
	if code, out := client(t, from, port, testPassword, "-a", filepath.Join(src, "evil", "secret"), dest+"evil/secret"); code == 0 {
		t.Errorf("push to evil/secret through a symlink: exit 0")
	} else {
		t.Logf("push to evil/secret: exit %d: %s", code, out)
	}
	if code, out := client(t, from, port, testPassword, "-a", "--temp-dir=/"+TempDir, filepath.Join(src, "evil", "secret"), dest+"evil/"); code == 0 {
		t.Errorf("push into evil/ through a symlink: exit 0")
	} else {
		t.Logf("push into evil/: exit %d: %s", code, out)
	}
	// The whole tree: the directory replaces the link in the module.
	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push: exit %d: %s", code, out)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("outside the module: %v written", entries)
	}
	if fi, err := os.Lstat(filepath.Join(root, "evil")); err != nil || !fi.IsDir() {
		t.Errorf("evil: %v, %v; want the pushed directory", fi, err)
	}
	for name, target := range links {
		got, err := os.Readlink(filepath.Join(root, name))
		if err != nil || got != target {
			t.Errorf("%s: %q, %v; want a link to %q", name, got, err, target)
		}
	}
}

// TestDaemon_Run_authentication checks the password rules: the daemon's
// secrets line takes ':' and spaces, Config.Password's trailing newline is
// trimmed, and a wrong password (or RSYNC_PASSWORD with the newline) is
// refused with exit 5 before anything is written.
func TestDaemon_Run_authentication(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 3
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)
	root := d.Config.Modules[0].Path
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		password string
		args     []string
		wantCode int
	}{
		{name: "wrong password", password: "wrong", wantCode: 5},
		{name: "empty password", password: "", wantCode: 5},
		{name: "RSYNC_PASSWORD with trailing newline", password: testPassword + "\n", wantCode: 5},
		{name: "password file with trailing newline", args: []string{"--password-file=" + pwFile}, wantCode: 0},
		{name: "right password", password: testPassword, wantCode: 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := fmt.Sprintf("%s@%s::data/%d/", DefaultUser, daemonAddr(n).Addr(), i)
			args := append(append([]string{"-a"}, tc.args...), src+"/", dest)
			code, out := client(t, peerAddr(n).String(), daemonAddr(n).Port(), tc.password, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, out)
			}
			if written := exists(filepath.Join(root, fmt.Sprint(i), "f")); written != (tc.wantCode == 0) {
				t.Errorf("written %v, want %v", written, tc.wantCode == 0)
			}
		})
	}
}

// TestDaemon_Run_hostsAllow checks that only the members' addresses get
// in: a client bound to another address, or to none (on loopback it then
// connects from 127.0.0.1), is refused with exit 5, and a module without
// allowed hosts refuses everyone.
func TestDaemon_Run_hostsAllow(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 4
	cfg := testConfig(t, n)
	closed := testModule(t, "closed", n)
	closed.HostsAllow = nil
	cfg.Modules = append(cfg.Modules, closed)
	d := &Daemon{Config: cfg}
	startDaemon(t, d)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	tests := []struct {
		name     string
		from     string
		module   string
		wantCode int
	}{
		{name: "member address", from: peerAddr(n).String(), module: "data", wantCode: 0},
		{name: "other address", from: deniedClient, module: "data", wantCode: 5},
		{name: "loopback default source", from: "", module: "data", wantCode: 5},
		{name: "module without allowed hosts", from: peerAddr(n).String(), module: "closed", wantCode: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := fmt.Sprintf("%s@%s::%s/", DefaultUser, daemonAddr(n).Addr(), tc.module)
			args := []string{fmt.Sprintf("--port=%d", daemonAddr(n).Port()), "--contimeout=5", "--timeout=10", "-a", src + "/", dest}
			if tc.from != "" {
				args = append([]string{"--address=" + tc.from}, args...)
			}
			code, out := rawClient(t, testPassword, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, out)
			}
		})
	}
	if exists(filepath.Join(closed.Path, "f")) {
		t.Errorf("closed module written")
	}
}

// TestDaemon_Run_noAuth checks that a client without credentials can
// neither list the modules nor read one.
func TestDaemon_Run_noAuth(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 5
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)
	writeFile(t, filepath.Join(d.Config.Modules[0].Path, "secret"), "x")
	from, port := peerAddr(n).String(), daemonAddr(n).Port()
	url := fmt.Sprintf("rsync://%s:%d/", daemonAddr(n).Addr(), port)

	code, out := client(t, from, port, "", url)
	if code != 0 || strings.Contains(out, "data") {
		t.Errorf("module list: exit %d, %q; want no module listed", code, out)
	}
	dst := t.TempDir()
	for _, src := range []string{url + "data/secret", fmt.Sprintf("rsync://%s@%s:%d/data/secret", DefaultUser, daemonAddr(n).Addr(), port)} {
		if code, out := client(t, from, port, "", "-a", src, dst+"/"); code != 5 {
			t.Errorf("read %s without password: exit %d, want 5: %s", src, code, out)
		}
	}
	if exists(filepath.Join(dst, "secret")) {
		t.Errorf("secret was read")
	}
}

// TestDaemon_Run_refusedOptions checks refuse options and the reserved
// directory's filter: --delete, --inplace and --remove-source-files are
// refused (exit 4), --delete-missing-args and --temp-dir/--partial-dir in
// the reserved directory work, and names under it cannot be written.
func TestDaemon_Run_refusedOptions(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 14
	cfg := testConfig(t, n)
	root := cfg.Modules[0].Path
	if err := os.MkdirAll(filepath.Join(root, PartialDir), 0o755); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Config: cfg}
	startDaemon(t, d)
	writeFile(t, filepath.Join(root, "victim"), "only on the peer")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	dest := fmt.Sprintf("%s@%s::data/", DefaultUser, daemonAddr(n).Addr())
	// refused: the daemon says so, and the client exits 4 (10 on a pull,
	// whose receiver sees the connection reset first).
	const refused = -1
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{name: "delete", args: []string{"-a", "--delete", src + "/", dest}, wantCode: refused},
		{name: "delete-after", args: []string{"-a", "--delete-after", src + "/", dest}, wantCode: refused},
		{name: "inplace", args: []string{"-a", "--inplace", src + "/", dest}, wantCode: refused},
		{name: "append", args: []string{"-a", "--append", src + "/", dest}, wantCode: refused},
		{name: "remove-source-files", args: []string{"-a", "--remove-source-files", dest + "victim", t.TempDir() + "/"}, wantCode: refused},
		{name: "remove-sent-files (its old name, another value)", args: []string{"-a", "--remove-sent-files", dest + "victim", t.TempDir() + "/"}, wantCode: refused},
		{name: "--del sent as is (a hand-built client)", args: []string{"-a", "-M--del", src + "/", dest}, wantCode: refused},
		{name: "temp and partial dirs", args: []string{"-a", "--temp-dir=" + TempDir, "--partial-dir=" + PartialDir, src + "/", dest}, wantCode: 0},
		{name: "absolute temp and partial dirs into a subdirectory", args: []string{"-a", "--temp-dir=/" + TempDir, "--partial-dir=/" + PartialDir, src + "/", dest + "sub/"}, wantCode: 0},
		{name: "relative temp dir into a subdirectory", args: []string{"-a", "--temp-dir=" + TempDir, src + "/", dest + "sub/"}, wantCode: 1},
		{name: "into the reserved directory", args: []string{"-a", src + "/f", dest + reservedDir + "/f"}, wantCode: 3},
		{name: "into the temp directory", args: []string{"-a", src + "/f", dest + TempDir + "/f"}, wantCode: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := client(t, peerAddr(n).String(), daemonAddr(n).Port(), testPassword, tc.args...)
			if tc.wantCode == refused {
				if code == 0 || !strings.Contains(out, "configured to refuse") {
					t.Fatalf("exit %d, want a refusal: %s", code, out)
				}
				return
			}
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, out)
			}
		})
	}
	if !exists(filepath.Join(root, "victim")) {
		t.Errorf("victim deleted or moved")
	}
	for _, p := range []string{reservedDir + "/f", TempDir + "/f"} {
		if exists(filepath.Join(root, p)) {
			t.Errorf("%s written", p)
		}
	}

}

// TestDaemon_Run_noListFiles: a client cannot read its --files-from list
// from a file of the reserved directory (--files-from=:PATH, which the
// daemon opens): the filter refuses them, the temp directory's included
// (its list files passed from the twenty-fifth to the twenty-ninth
// session). The partial directory's files pass, as partial transfers
// must, and a list in the synced tree is read as any file of the module
// may be: either names only what the client itself sends.
func TestDaemon_Run_noListFiles(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 32
	cfg := testConfig(t, n)
	root := cfg.Modules[0].Path
	d := &Daemon{Config: cfg}
	startDaemon(t, d)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	writeFile(t, filepath.Join(src, "#g"), "y")
	list := "./f\x00./#g\x00"
	writeFile(t, filepath.Join(root, TempDir, "list-1"), list)
	writeFile(t, filepath.Join(root, reservedDir, "list-1"), list)
	writeFile(t, filepath.Join(root, PartialDir, "list-1"), list)
	writeFile(t, filepath.Join(root, "list-in-the-tree"), list)
	dest := fmt.Sprintf("%s@%s::data/", DefaultUser, daemonAddr(n).Addr())
	tests := []struct {
		name   string
		list   string
		wantOK bool
	}{
		{name: "a file of the temp directory", list: "/" + TempDir + "/list-1"},
		{name: "a file of the reserved directory", list: "/" + reservedDir + "/list-1"},
		{name: "a file of the partial directory", list: "/" + PartialDir + "/list-1", wantOK: true},
		{name: "a file of the synced tree", list: "/list-in-the-tree", wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := client(t, peerAddr(n).String(), daemonAddr(n).Port(), testPassword,
				"-a", "--from0", "--files-from=:"+tc.list, src+"/", dest)
			if (code == 0) != tc.wantOK {
				t.Fatalf("exit %d, want success %v: %s", code, tc.wantOK, out)
			}
		})
	}
}

// TestDaemon_Run_deleteMissingArgs deletes as the engine does: the
// removed name in --files-from, --delete-missing-args --force; "refuse
// options" lets it through.
func TestDaemon_Run_deleteMissingArgs(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 17
	d := &Daemon{Config: testConfig(t, n)}
	startDaemon(t, d)
	root := d.Config.Modules[0].Path
	writeFile(t, filepath.Join(root, "gone"), "removed on the sender")
	writeFile(t, filepath.Join(root, "dir", "sub", "file"), "removed with its directory")
	src := t.TempDir()
	dest := fmt.Sprintf("%s@%s::data/", DefaultUser, daemonAddr(n).Addr())
	args := []string{"-a", "--from0", "--files-from=" + writeList(t, "./gone", "./dir"), "--delete-missing-args", "--force", src + "/", dest}
	if code, out := client(t, peerAddr(n).String(), daemonAddr(n).Port(), testPassword, args...); code != 0 {
		t.Fatalf("--delete-missing-args: exit %d: %s", code, out)
	}
	for _, name := range []string{"gone", "dir"} {
		if exists(filepath.Join(root, name)) {
			t.Errorf("%s not deleted", name)
		}
	}
}

func writeList(t *testing.T, names ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "list")
	if err := os.WriteFile(p, []byte(strings.Join(names, "\x00")+"\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWrite_oddPathServed serves a module whose path has characters that
// mean something elsewhere in rsyncd.conf or to a shell, and a listen
// address and secrets that Write produced: rsync reads them verbatim.
func TestWrite_oddPathServed(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 15
	cfg := testConfig(t, n)
	odd := filepath.Join(t.TempDir(), "data root, [x] = #1 ;2 50%off %% $HOME 'q' \"dq\" é")
	if err := os.MkdirAll(filepath.Join(odd, TempDir), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Modules[0].Path = odd
	d := &Daemon{Config: cfg}
	startDaemon(t, d)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	if code, out := push(t, n, "data", src); code != 0 {
		t.Fatalf("push: exit %d: %s", code, out)
	}
	if !exists(filepath.Join(odd, "f")) {
		t.Errorf("f not received in %q", odd)
	}
}

// TestDaemon_Run_withoutAuthentication: a daemon without authentication (the agent's
// --insecure) takes a member's client with no user or password, writes no
// secrets file, and still refuses any other address.
func TestDaemon_Run_withoutAuthentication(t *testing.T) {
	requireRsync(t)
	t.Parallel()
	const n = 18
	cfg := testConfig(t, n)
	cfg.NoAuth, cfg.Password = true, ""
	d := &Daemon{Config: cfg}
	startDaemon(t, d)
	if exists(cfg.SecretsFile()) {
		t.Errorf("secrets file %s written without authentication", cfg.SecretsFile())
	}
	root := cfg.Modules[0].Path
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "x")
	tests := []struct {
		name     string
		from     string
		wantCode int
	}{
		{"a member, no user or password", peerAddr(n).String(), 0},
		{"a stranger", "127.0.9.250", 5},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := fmt.Sprintf("rsync://%s/data/%d/", daemonAddr(n).Addr(), i)
			code, out := client(t, tc.from, daemonAddr(n).Port(), "", "-a", src+"/", dest)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, out)
			}
			if written := exists(filepath.Join(root, fmt.Sprint(i), "f")); written != (tc.wantCode == 0) {
				t.Errorf("written %v, want %v", written, tc.wantCode == 0)
			}
		})
	}
}
