package rsync

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostileNames are names a user may create, each a trap for some layer:
// option parsing, comments in --files-from, shell expansion, globbing,
// rsync's output escaping, line splitting, UTF-8 handling.
func hostileNames() []string {
	return []string{
		"plain.txt",
		"with space",
		"new\nline",
		"-dash",
		"--option=like",
		"#hash",
		";semi",
		"$(touch executed)",
		"`touch executed`",
		"*",
		"?",
		"[ab]",
		`back\slash`,
		`lit\#012x`,
		`trail\`,
		"tab\there",
		"cr\r",
		"quo\"te",
		"\x01ctl\x1b[31m",
		"\xff\xfe not utf-8",
		"é ü utf-8",
		"trailing space ",
		" leading space",
		strings.Repeat("n", 255),
		strings.Repeat("\n", 200) + strings.Repeat("\xff", 55),
		"dir with space/#nested;\n",
		"sub/-deep/" + strings.Repeat("\\", 255),
	}
}

func TestPush_HostileNamesArriveByteExact(t *testing.T) {
	d := startDaemon(t, 0)
	root := t.TempDir()
	names := hostileNames()
	for _, n := range names {
		write(t, root, n, []byte("v1 of "+n))
	}
	res, err := Push(context.Background(), root, names, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	if res.Code != 0 || res.Class != OK {
		t.Errorf("exit %d class %v", res.Code, res.Class)
	}
	want := map[string]Outcome{}
	for _, n := range names {
		want[n] = Sent
	}
	wantOutcomes(t, res, want)
	checkSame(t, root, d.dir, names)

	// Change half of them: those are sent again, the rest are unchanged.
	for i, n := range names {
		if i%2 == 0 {
			write(t, root, n, []byte("version two of "+n))
			want[n] = Sent
		} else {
			want[n] = Unchanged
		}
	}
	res, err = Push(context.Background(), root, names, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("second push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, want)
	checkSame(t, root, d.dir, names)

	// Nothing was run by a shell.
	cwd, _ := os.Getwd()
	for _, dir := range []string{root, d.dir, cwd} {
		if _, err := os.Lstat(filepath.Join(dir, "executed")); err == nil {
			t.Errorf("a name was executed: %s/executed exists", dir)
		}
	}
	if t.Failed() {
		t.Logf("args %q", res.Args)
	}
}

// checkSame compares names between two trees: content, and that each is
// a regular file.
func checkSame(t *testing.T, root, peer string, names []string) {
	t.Helper()
	for _, n := range names {
		want, err := os.ReadFile(filepath.Join(root, n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(peer, n))
		switch {
		case err != nil:
			t.Errorf("%q on the peer: %v", n, err)
		case !bytes.Equal(got, want):
			t.Errorf("%q on the peer holds %q, want %q", n, got, want)
		}
	}
}

// TestPush_CommentEntriesNeedDotSlash pins rsync's trap: a --files-from
// entry starting with '#' or ';' is a comment and silently dropped, with
// exit 0. Push prefixes every entry with "./".
func TestPush_CommentEntriesNeedDotSlash(t *testing.T) {
	d := startDaemon(t, 1)
	root := t.TempDir()
	names := []string{"#hash", ";semi"}
	for _, n := range names {
		write(t, root, n, []byte(n))
	}
	// Bare rsync, no "./": the entries vanish without an error.
	cmd := exec.Command("rsync", "--from0", "--files-from=-", "--address="+clientAddr, ".", "rsync://"+testUser+"@"+d.addr.String()+"/data/")
	cmd.Dir = root
	cmd.Env = environ(testSecret)
	cmd.Stdin = strings.NewReader("#hash\x00;semi\x00")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bare rsync: %v\n%s", err, out)
	}
	for _, n := range names {
		if _, err := os.Lstat(d.path(n)); err == nil {
			t.Fatalf("bare rsync sent %q: the comment trap is gone, revisit the doc", n)
		}
	}
	res, err := Push(context.Background(), root, names, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"#hash": Sent, ";semi": Sent})
	checkSame(t, root, d.dir, names)
}

func TestPush_CreatesParentsAndSendsDirectoriesWithoutContents(t *testing.T) {
	d := startDaemon(t, 2)
	root := t.TempDir()
	write(t, root, "a/b/c/file", []byte("deep"))
	write(t, root, "listed-dir/unlisted", []byte("not sent"))
	must(t, os.Chmod(filepath.Join(root, "a/b"), 0o750))
	res, err := Push(context.Background(), root, []string{"a/b/c/file", "listed-dir"}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"a/b/c/file": Sent, "listed-dir": Updated})
	checkSame(t, root, d.dir, []string{"a/b/c/file"})
	var st unix.Stat_t
	must(t, unix.Lstat(d.path("a/b"), &st))
	if st.Mode&0o7777 != 0o750 {
		t.Errorf("implied parent a/b mode %o, want 750", st.Mode&0o7777)
	}
	if _, err := os.Lstat(d.path("listed-dir/unlisted")); err == nil {
		t.Error("a listed directory's contents were sent")
	}
	if res.Other < 3 { // ".", "a", "a/b", "a/b/c"
		t.Errorf("other itemized names %d, want the implied parents", res.Other)
	}
}

func TestPush_ModesTimesOwnersLinksDevices(t *testing.T) {
	d := startDaemon(t, 3)
	root := t.TempDir()
	write(t, root, "setuid", []byte("x"))
	write(t, root, "private", []byte("y"))
	write(t, root, "owned", []byte("z"))
	must(t, os.Chmod(filepath.Join(root, "setuid"), 0o4755))
	must(t, os.Chmod(filepath.Join(root, "private"), 0o600))
	must(t, os.Lchown(filepath.Join(root, "owned"), 12345, 23456)) // ids with no name
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	must(t, os.Chtimes(filepath.Join(root, "private"), mtime, mtime))
	links := map[string]string{
		"abs-link":      "/etc/passwd",
		"rel-link":      "../../outside/../x",
		"dangling":      "does/not/exist",
		"weird-target":  "new\nline \xff\\#012",
		"link-to-dir":   ".",
		"link to space": "with space",
	}
	for name, target := range links {
		must(t, os.Symlink(target, filepath.Join(root, name)))
	}
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	must(t, mknodChar(filepath.Join(root, "chardev"), 1, 3))
	files := []string{"setuid", "private", "owned", "fifo", "chardev"}
	for name := range links {
		files = append(files, name)
	}
	res, err := Push(context.Background(), root, files, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	for _, p := range res.Paths {
		if !p.Outcome.Done() {
			t.Errorf("%q: %v %s", p.Path, p.Outcome, p.Reason)
		}
	}
	for _, name := range files {
		var want, got unix.Stat_t
		must(t, unix.Lstat(filepath.Join(root, name), &want))
		if err := unix.Lstat(d.path(name), &got); err != nil {
			t.Errorf("%q on the peer: %v", name, err)
			continue
		}
		if got.Mode != want.Mode || got.Uid != want.Uid || got.Gid != want.Gid || got.Rdev != want.Rdev {
			t.Errorf("%q: mode %o uid %d gid %d rdev %x, want %o %d %d %x", name, got.Mode, got.Uid, got.Gid, got.Rdev, want.Mode, want.Uid, want.Gid, want.Rdev)
		}
		if want.Mode&unix.S_IFMT != unix.S_IFLNK && got.Mtim != want.Mtim {
			t.Errorf("%q: mtime %v, want %v", name, got.Mtim, want.Mtim)
		}
	}
	for name, target := range links {
		if got, err := os.Readlink(d.path(name)); err != nil || got != target {
			t.Errorf("link %q -> %q (%v), want %q verbatim", name, got, err, target)
		}
	}
}

func TestPush_SymlinkedDirectoryIsNeverFollowed(t *testing.T) {
	d := startDaemon(t, 4)
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	write(t, outside, "secret", []byte("outside the root"))
	write(t, root, "ok", []byte("fine"))
	write(t, root, "realdir/inner", []byte("inner"))
	must(t, os.Symlink(outside, filepath.Join(root, "evil")))
	must(t, os.Symlink("realdir", filepath.Join(root, "alias")))
	files := []string{"evil/secret", "evil", "ok", "alias/inner", "../outside/secret", "/etc/passwd"}
	res, err := Push(context.Background(), root, files, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{
		"evil/secret": Dropped, "alias/inner": Dropped, "../outside/secret": Dropped, "/etc/passwd": Dropped,
		"evil": Updated, "ok": Sent,
	})
	if got, err := os.Readlink(d.path("evil")); err != nil || got != outside {
		t.Errorf("evil on the peer: %q %v, want a link to %q", got, err, outside)
	}
	// The peer's evil is a link (to this host's outside, as both run
	// here): nothing else of the outside arrived.
	// Where a followed name would land (--relative keeps the path; a
	// leading "/" or ".." stripped): none of them.
	for _, p := range []string{"secret", "alias", "realdir", "etc", "outside"} {
		if _, err := os.Lstat(d.path(p)); err == nil {
			t.Errorf("%s reached the peer", p)
		}
	}
	// Nor anything through the peer's link to this host's outside.
	if es, err := os.ReadDir(outside); err != nil || len(es) != 1 || es[0].Name() != "secret" {
		t.Errorf("the directory outside the root holds %v (%v), want only secret", es, err)
	}
	if !strings.Contains(res.Paths[0].Reason, "symlink") {
		t.Errorf("dropped reason %q", res.Paths[0].Reason)
	}
}

func TestPush_HardLinksInOneRunShareAnInode(t *testing.T) {
	d := startDaemon(t, 5)
	root := t.TempDir()
	write(t, root, "one", []byte("shared content"))
	must(t, os.Link(filepath.Join(root, "one"), filepath.Join(root, "two")))
	must(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(t, os.Link(filepath.Join(root, "one"), filepath.Join(root, "sub/#three")))
	res, err := Push(context.Background(), root, []string{"one", "two", "sub/#three"}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	var a, b, c unix.Stat_t
	must(t, unix.Lstat(d.path("one"), &a))
	must(t, unix.Lstat(d.path("two"), &b))
	must(t, unix.Lstat(d.path("sub/#three"), &c))
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("inodes %d %d %d, links %d: want one inode with 3 links", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
	for _, p := range res.Paths {
		if p.Outcome != Sent && p.Outcome != Updated {
			t.Errorf("%q: %v %q", p.Path, p.Outcome, p.Change)
		}
	}
}

// TestPush_IgnoresUserPoptAliases: rsync reads option aliases from
// $HOME/.popt, where "rsync alias --links --copy-links" would turn links
// into copies of their targets. Push runs rsync with HOME pointing nowhere.
func TestPush_IgnoresUserPoptAliases(t *testing.T) {
	d := startDaemon(t, 6)
	home := t.TempDir()
	must(t, os.WriteFile(filepath.Join(home, ".popt"), []byte("rsync alias --links --copy-links\n"), 0o644))
	t.Setenv("HOME", home)
	root := t.TempDir()
	write(t, root, "target", []byte("x"))
	must(t, os.Symlink("target", filepath.Join(root, "link")))
	res, err := Push(context.Background(), root, []string{"link"}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	if got, err := os.Readlink(d.path("link")); err != nil || got != "target" {
		t.Errorf("link on the peer: %q %v: the alias in ~/.popt applied", got, err)
	}
}

// TestPush_NamesCannotForgeItemLines: a name holding a newline and the
// text of an itemized line prints as one escaped line, so it cannot make
// a missing path look sent.
func TestPush_NamesCannotForgeItemLines(t *testing.T) {
	d := startDaemon(t, 7)
	root := t.TempDir()
	forger := "x\njailsync1 <f+++++++++ 1 1 victim\n"
	write(t, root, forger, []byte("forger"))
	res, err := Push(context.Background(), root, []string{forger, "victim"}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{forger: Sent, "victim": Vanished})
}

// TestPush_FileReplacesPeerDirectory: a directory that became a file here
// replaces the peer's non-empty directory (--force), and the root itself
// can be listed.
func TestPush_FileReplacesPeerDirectory(t *testing.T) {
	d := startDaemon(t, 8)
	root := t.TempDir()
	write(t, d.dir, "was-dir/inside/x", []byte("old"))
	write(t, root, "was-dir", []byte("now a file"))
	res, err := Push(context.Background(), root, []string{"was-dir", "."}, d.target(), fastOptions())
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	wantOutcomes(t, res, map[string]Outcome{"was-dir": Sent})
	if o := res.Paths[1].Outcome; o != Updated && o != Unchanged {
		t.Errorf(". : %v", o)
	}
	checkSame(t, root, d.dir, []string{"was-dir"})
}

// TestPush_Checked: with Options.Checked the caller has resolved the paths
// beneath the root; Push still settles each one from rsync's output (a
// path gone before rsync read it is Vanished, not Sent) and still drops a
// name it cannot list.
func TestPush_Checked(t *testing.T) {
	d := startDaemon(t, 0)
	root := t.TempDir()
	names := []string{"here", "#hash", "-dash", "sub/new\nline"}
	for _, n := range names {
		write(t, root, n, []byte("content of "+n))
	}
	o := fastOptions()
	o.Checked = true
	res, err := Push(context.Background(), root, append(names, "gone", "nul\x00name"), d.target(), o)
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	want := map[string]Outcome{"gone": Vanished, "nul\x00name": Dropped}
	for _, n := range names {
		want[n] = Sent
	}
	wantOutcomes(t, res, want)
	checkSame(t, root, d.dir, names)
}
