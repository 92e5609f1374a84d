//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailsync/jailsync/internal/poll"
)

// TestStandalone_RenameDoesNotResend shows the issue's requirement: "a
// rename of a directory with 10,000 files must not resend them", and the
// same for one large file. The sender asks each peer's agent to apply the
// rename locally (nodeagent/peer, nodeagent/receiver); rsync then only
// verifies the new names.
//
// Two proofs per peer:
//
//   - Inodes. A rename applied on the peer keeps every file's inode; a
//     resend writes a new file (rsync's temp file renamed into place) and
//     a delete of the old name, so new inodes. Every file under moved/ on
//     a peer must have the inode its big/ name had before.
//   - Bytes on the wire. The sender's rsync runs report --stats "Total
//     bytes sent" (rsync.Result.BytesSent, summed per run as sender.Run
//     Bytes and logged at -v as "run done" ... "bytes"): everything the
//     client wrote to the peer's daemon, file list and file data. The
//     status's BytesSynced and jailsync_bytes_synced_total do not measure
//     that: they add the journaled size of every path the run confirmed,
//     and rsync confirms a path it found unchanged (quick check) as well
//     as one whose content it sent, so verifying 10,000 renamed files
//     counts 40 MiB there without a byte of content going. Only the wire
//     bytes (and the inodes) tell a verified rename from a resend; they
//     are reported here next to the status figures, and the test first
//     checks that they do count content (the first replication of each
//     tree sent at least its size). What a rename leaves on the wire is
//     rsync's file list for the verification of the moved tree (the
//     detector rescans it and journals every path, some 16 bytes each):
//     about 0.4% of 40 MiB, where a resend would be over 100%.
func TestStandalone_RenameDoesNotResend(t *testing.T) {
	begin := time.Now()
	c := startVerbose(t, 3, 18515)
	r1 := c.roots["n1"]
	peers := []string{"n2", "n3"}

	const (
		subdirs  = 100
		perDir   = 100
		files    = subdirs * perDir
		fileSize = 4 << 10
		total    = files * fileSize // 40 MiB
	)
	// Distinct content per file (a seeded stream each), so that rsync
	// cannot match one file's blocks in another's.
	buf := make([]byte, fileSize)
	for d := range subdirs {
		dir := filepath.Join(r1, "big", fmt.Sprintf("s%02d", d))
		must(t, os.MkdirAll(dir, 0o755))
		for f := range perDir {
			i := d*perDir + f
			fill(buf, i)
			must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), buf, 0o644))
		}
	}
	c.converged("n1")
	t.Logf("10,000 files replicated after %s", time.Since(begin).Round(time.Millisecond))

	// 1. A directory of 10,000 files.
	{
		before := c.settledSends("n1")
		for _, p := range peers {
			// The counter counts content: the tree's first replication
			// put all of it on the wire.
			t.Logf("%s: first replication sent %d bytes on the wire", p, before[p].wire)
			if before[p].wire < total {
				t.Fatalf("%s: the first replication of %d bytes of files sent %d bytes: the wire counter misses content", p, total, before[p].wire)
			}
		}
		inodes := map[string]map[string]uint64{}
		for _, p := range peers {
			inodes[p] = treeInodes(t, filepath.Join(c.roots[p], "big"))
			if len(inodes[p]) != files+subdirs {
				t.Fatalf("%s: %d entries under big/, want %d", p, len(inodes[p]), files+subdirs)
			}
		}
		renamed := time.Now()
		must(t, os.Rename(filepath.Join(r1, "big"), filepath.Join(r1, "moved")))
		c.converged("n1") // every peer: moved/ as n1 has it, no big/
		t.Logf("rename replicated after %s", time.Since(renamed).Round(time.Millisecond))
		after := c.settledSends("n1")

		for _, p := range peers {
			if _, err := os.Lstat(filepath.Join(c.roots[p], "big")); err == nil {
				t.Errorf("%s still has big/", p)
			}
			got := treeInodes(t, filepath.Join(c.roots[p], "moved"))
			kept, reported := 0, 0
			for rel, ino := range inodes[p] {
				if got[rel] == ino {
					kept++
				} else if reported++; reported <= 5 {
					t.Errorf("%s: moved/%s has inode %d, big/%s had %d: it was sent again, not renamed", p, rel, got[rel], rel, ino)
				}
			}
			if kept != len(inodes[p]) {
				t.Errorf("%s: %d of %d entries kept their inode across the rename", p, kept, len(inodes[p]))
			}
			wire := after[p].wire - before[p].wire
			t.Logf("%s: rename sent %d bytes on the wire (%.3f%% of %d); status: +%d files, +%d bytes synced; inodes kept: %d/%d",
				p, wire, 100*float64(wire)/total, total, after[p].files-before[p].files, after[p].bytes-before[p].bytes, kept, len(inodes[p]))
			if wire > total/100 {
				t.Errorf("%s: the rename sent %d bytes to the peer, over 1%% of the %d bytes of the tree: content was resent", p, wire, total)
			}
		}
	}

	// 2. One 8 MiB file.
	{
		const size = 8 << 20
		data := make([]byte, size)
		fill(data, files)
		prev := c.settledSends("n1")
		must(t, os.WriteFile(filepath.Join(r1, "a"), data, 0o644))
		c.converged("n1")
		before := c.settledSends("n1")
		for _, p := range peers {
			// The counter counts content: creating a sent all of it.
			t.Logf("%s: creating a sent %d bytes on the wire", p, before[p].wire-prev[p].wire)
			if sent := before[p].wire - prev[p].wire; sent < size {
				t.Fatalf("%s: sending the %d bytes of a took %d bytes on the wire: the wire counter misses content", p, size, sent)
			}
		}
		inodes := map[string]uint64{}
		for _, p := range peers {
			inodes[p] = inode(t, filepath.Join(c.roots[p], "a"))
		}
		renamed := time.Now()
		must(t, os.Rename(filepath.Join(r1, "a"), filepath.Join(r1, "b")))
		c.converged("n1")
		t.Logf("rename replicated after %s", time.Since(renamed).Round(time.Millisecond))
		after := c.settledSends("n1")
		for _, p := range peers {
			if got := inode(t, filepath.Join(c.roots[p], "b")); got != inodes[p] {
				t.Errorf("%s: b has inode %d, a had %d: it was sent again, not renamed", p, got, inodes[p])
			}
			wire := after[p].wire - before[p].wire
			t.Logf("%s: rename sent %d bytes on the wire (%.3f%% of %d); status: +%d files, +%d bytes synced; inode kept: %v",
				p, wire, 100*float64(wire)/size, size, after[p].files-before[p].files, after[p].bytes-before[p].bytes, inode(t, filepath.Join(c.roots[p], "b")) == inodes[p])
			if wire > size/100 {
				t.Errorf("%s: the rename sent %d bytes to the peer, over 1%% of the file's %d: its content was resent", p, wire, size)
			}
		}
	}
	t.Logf("total %s", time.Since(begin).Round(time.Millisecond))
}

// sends is what one sender has done so far: bytes on the wire (rsync's
// "Total bytes sent", from the agent's -v log) and the status's files and
// bytes synced (paths confirmed and their journaled sizes).
type sends struct{ wire, files, bytes int64 }

// settledSends waits until node has nothing pending for any peer and its
// figures have stopped moving, then returns them per peer.
func (c *cluster) settledSends(node string) map[string]sends {
	c.t.Helper()
	var last map[string]sends
	stable := 0
	poll.Until(c.t, 30*time.Second, func() error {
		r, err := c.status(node)
		if err != nil {
			return err
		}
		cur := c.wireBytes(node)
		for _, p := range r.Peers {
			if p.PendingFiles != 0 {
				stable = 0
				return fmt.Errorf("%s -> %s: %d files pending", node, p.Target, p.PendingFiles)
			}
			s := cur[p.Target]
			s.files, s.bytes = p.FilesSynced, p.BytesSynced
			cur[p.Target] = s
		}
		if fmt.Sprint(cur) != fmt.Sprint(last) {
			last, stable = cur, 0
			return fmt.Errorf("%s: figures still moving", node)
		}
		// Unchanged for 500 ms (10 polls): a run whose journal entries
		// were just done has logged and reported by then.
		if stable++; stable < 10 {
			return fmt.Errorf("%s: figures settling", node)
		}
		return nil
	})
	return last
}

// wireBytes sums, per peer, the "bytes" of node's "run done" log lines
// (sender.Run.Bytes: rsync's --stats "Total bytes sent" of each run).
func (c *cluster) wireBytes(node string) map[string]sends {
	c.t.Helper()
	f, err := os.Open(filepath.Join(c.states[node], "agent.log"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	out := map[string]sends{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"run done"`) {
			continue
		}
		var rec struct {
			Msg   string `json:"msg"`
			Peer  string `json:"peer"`
			Bytes *int64 `json:"bytes"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec.Msg != "run done" {
			continue // a partly written last line
		}
		if rec.Bytes == nil || rec.Peer == "" {
			c.t.Fatalf("%s: a run-done log line without peer or bytes: %s", node, line)
		}
		s := out[rec.Peer]
		s.wire += *rec.Bytes
		out[rec.Peer] = s
	}
	if err := sc.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// fill fills buf with the pseudo-random stream of seed.
func fill(buf []byte, seed int) {
	var key [32]byte
	copy(key[:], fmt.Sprintf("jailsync rename %d", seed))
	_, _ = rand.NewChaCha8(key).Read(buf)
}

// treeInodes maps every path below dir (relative to it) to its inode.
func treeInodes(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = inode(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// startVerbose is start with the agents logging at -v, where each sender
// run logs the bytes rsync put on the wire ("run done").
func startVerbose(t *testing.T, n int, port int) *cluster {
	t.Helper()
	return startCluster(t, n, port, clusterOptions{args: []string{"-v"}})
}

// TestStandalone_RemovedAroundADirectoryRename: a file removed just before
// its directory was renamed (rm d/x; mv d e, journaled in one batch), or
// just after (mv d e; rm e/x, before the scan of e recorded it), is gone on
// every peer too. Asked first, the rename moved d/x to e/x on the peer, and
// the deletion of d/x then found nothing there: the rename now waits for
// the next run. Removed after the rename, e/x matched no index entry (the
// index dropped d's with the rename and held e's only once a scan found
// them), and its removal was dropped: the index now holds the renamed
// tree's entries under the new name (index.Moved) until that scan. A file
// renamed out of the renamed directory (mv d e; mv e/v v2) is gone from
// it on every peer too: asked while d was in flight, the peer refused the
// rename of e/v it did not hold yet, v2 went as content and e/v as a
// deletion that found nothing, and d's rename then put e/v there for good.
// Such a rename now waits for the one it depends on. For every other
// directory the old name is made again right after the rename, and the
// removals in the renamed tree must go all the same.
func TestStandalone_RemovedAroundADirectoryRename(t *testing.T) {
	c := start(t, 3, 18598) // 18598-18600: the last base of the e2e range
	r1 := c.roots["n1"]
	for i := range 5 {
		d := fmt.Sprintf("b%d", i)
		must(t, os.MkdirAll(filepath.Join(r1, d, "sub"), 0o755))
		for _, f := range []string{"x", "y", "z", "v", "sub/w"} {
			must(t, os.WriteFile(filepath.Join(r1, d, f), []byte(d+f), 0o644))
		}
	}
	c.converged("n1")
	for i := range 5 {
		b := filepath.Join(r1, fmt.Sprintf("b%d", i))
		must(t, os.Remove(filepath.Join(b, "x")))
		must(t, os.Rename(b, b+"-renamed"))
		if i%2 == 1 {
			must(t, os.Mkdir(b, 0o755)) // the old name back at once (mv build build.old; mkdir build)
		}
		must(t, os.Remove(filepath.Join(b+"-renamed", "y")))
		must(t, os.RemoveAll(filepath.Join(b+"-renamed", "sub")))
		must(t, os.Rename(filepath.Join(b+"-renamed", "v"), b+"-v"))
	}
	c.converged("n1")
	for _, node := range c.nodes {
		for i := range 5 {
			d := fmt.Sprintf("b%d-renamed", i)
			for _, gone := range []string{"x", "y", "sub", "v"} {
				if _, err := os.Lstat(filepath.Join(c.roots[node], d, gone)); err == nil {
					t.Errorf("%s: %s/%s, removed on n1, is still there", node, d, gone)
				}
			}
			if _, err := os.Lstat(filepath.Join(c.roots[node], d, "z")); err != nil {
				t.Errorf("%s: %s/z: %v", node, d, err)
			}
			v := fmt.Sprintf("b%d-v", i)
			if got, err := os.ReadFile(filepath.Join(c.roots[node], v)); err != nil || string(got) != fmt.Sprintf("b%dv", i) {
				t.Errorf("%s: %s: %q, %v; want the content of b%d/v", node, v, got, err, i)
			}
		}
	}
}

// TestStandalone_OldNameMadeAgainEndsIdentical: directories renamed and
// their old names made again at once, so that the peers never apply the
// renames (mv d e; mkdir d; rm -r e, the new name gone before the run), or
// refuse them (a swap: mv s t; mv u s; mv t u), end identical on every
// member. Before, a peer's old directory kept the old tree's files for
// good, since pushing a directory with --dirs removes nothing below it.
func TestStandalone_OldNameMadeAgainEndsIdentical(t *testing.T) {
	c := start(t, 3, 18620)
	r1 := c.roots["n1"]
	for _, d := range []string{"b0", "b1", "b2", "s", "u"} {
		must(t, os.MkdirAll(filepath.Join(r1, d, "sub"), 0o755))
		for _, f := range []string{"x", "y", "sub/w"} {
			must(t, os.WriteFile(filepath.Join(r1, d, f), []byte(d+"/"+f), 0o644))
		}
	}
	c.converged("n1")
	for i, d := range []string{"b0", "b1", "b2"} {
		b := filepath.Join(r1, d)
		must(t, os.Rename(b, b+".old"))
		must(t, os.MkdirAll(filepath.Join(b, "sub"), 0o755))
		if i == 1 {
			must(t, os.WriteFile(filepath.Join(b, "x"), []byte("new x"), 0o644)) // a name of the old tree, made again
		}
		must(t, os.RemoveAll(b+".old"))
	}
	must(t, os.Rename(filepath.Join(r1, "s"), filepath.Join(r1, "t")))
	must(t, os.Rename(filepath.Join(r1, "u"), filepath.Join(r1, "s")))
	must(t, os.Rename(filepath.Join(r1, "t"), filepath.Join(r1, "u")))
	c.converged("n1")
}
