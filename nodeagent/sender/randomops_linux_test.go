package sender

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/index"
)

// opsTree is the tree the random operations start from, on both members:
// each file holds its path and has its own mtime (rsync's quick check and
// the peer's rename check tell files apart by size and mtime).
var opsTreeDirs, opsTreeFiles = []string{"a", "a/b", "c", "c/d"}, []string{"a/f1", "a/b/f2", "c/f3", "c/d/f4", "f5"}

// opsRig is a rig holding opsTree on both members, with the peer's
// receiver serving it, and its root known to the index (scannable).
func opsRig(t *testing.T, slot int, port uint16) *rig {
	t.Helper()
	r := newRig(t, slot)
	rc := peerReceiver(t, r)
	serveHandler(t, r, rc, port)
	r.scannable()
	r.onBoth(opsTreeDirs, opsTreeFiles)
	for i, f := range opsTreeFiles {
		mt := time.Unix(1_700_000_000+int64(i), 0)
		for _, root := range []string{r.root, r.peerRoot} {
			if err := os.Chtimes(filepath.Join(root, f), mt, mt); err != nil {
				t.Fatal(err)
			}
		}
		r.settle(f)
	}
	// The peer's index holds its tree, as an agent's does after its
	// first scan.
	if err := rc.Index.Update(func(tx *index.Tx) error {
		for _, p := range slices.Concat(opsTreeDirs, opsTreeFiles) {
			if err := tx.Record(rc.RootFD, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// do applies one operation here and journals it as the detector does:
// "mv x y", "swap x y" (mv x t; mv y x; mv t y, t beside x), "rm x" (rm
// -r: each path below x removed, deepest first), "write f" (n is its
// content's number), "mkdir d".
func (r *rig) do(op string, n int) {
	r.t.Helper()
	verb, args, _ := strings.Cut(op, " ")
	a, b, _ := strings.Cut(args, " ")
	switch verb {
	case "mv":
		r.mvDetected(a, b)
	case "swap":
		t := filepath.Join(filepath.Dir(a), "swaptmp"+strconv.Itoa(n))
		r.mvDetected(a, t)
		r.mvDetected(b, a)
		r.mvDetected(t, b)
	case "rm":
		var gone []string
		err := filepath.WalkDir(filepath.Join(r.root, a), func(p string, _ fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(r.root, p)
			gone = append(gone, rel)
			return err
		})
		if err == nil {
			err = os.RemoveAll(filepath.Join(r.root, a))
		}
		if err != nil {
			r.t.Fatal(err)
		}
		slices.Reverse(gone)
		cs := make([]change.Change, len(gone))
		for i, g := range gone {
			cs[i] = change.Change{Path: g, Op: change.Remove}
		}
		r.journalFinished(cs...)
	case "write":
		if err := os.WriteFile(filepath.Join(r.root, a), []byte(fmt.Sprint(a, n)), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.journalFinished(change.Change{Path: a, Op: change.Create | change.Write})
	case "mkdir":
		if err := os.Mkdir(filepath.Join(r.root, a), 0o755); err != nil {
			r.t.Fatal(err)
		}
		r.journalFinished(change.Change{Path: a, Op: change.Mkdir})
	default:
		r.t.Fatalf("unknown operation %q", op)
	}
}

// doAll applies ops in turn (do).
func (r *rig) doAll(ops ...string) {
	r.t.Helper()
	for i, op := range ops {
		r.do(op, 100+i)
	}
}

// opsGen makes random operations (randomOps): its numbers make each new
// name unique.
type opsGen struct {
	rng  *rand.Rand
	next int
}

// randomOps returns n random operations on the rig's tree as it becomes,
// applying each (do): renames into random directories, swaps, removals,
// writes and mkdirs, the stress test's mix on a small tree.
func (r *rig) randomOps(g *opsGen, n int) []string {
	r.t.Helper()
	var ops []string
	rng := g.rng
	fresh := func(dir, prefix string) string {
		g.next++
		name := prefix + strconv.Itoa(g.next)
		if dir == "." {
			return name
		}
		return dir + "/" + name
	}
	for len(ops) < n {
		dirs, files := []string{"."}, []string(nil)
		err := filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(r.root, p)
			switch {
			case err != nil || rel == ".":
				return err
			case rel == ".jailsync":
				return filepath.SkipDir
			case d.IsDir():
				dirs = append(dirs, rel)
			default:
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			r.t.Fatal(err)
		}
		all := slices.Concat(dirs[1:], files)
		pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
		var op string
		switch k := rng.IntN(10); {
		case k < 3 && len(all) > 0:
			x, d := pick(all), pick(dirs)
			if !atOrBelow(d, x) {
				op = "mv " + x + " " + fresh(d, "m")
			}
		case k < 5 && len(all) > 1:
			x, y := pick(all), pick(all)
			if !atOrBelow(x, y) && !atOrBelow(y, x) {
				op = "swap " + x + " " + y
			}
		case k < 6 && len(all) > 0:
			op = "rm " + pick(all)
		case k < 8:
			if len(files) > 0 && rng.IntN(2) == 0 {
				op = "write " + pick(files)
			} else {
				op = "write " + fresh(pick(dirs), "f")
			}
		default:
			op = "mkdir " + fresh(pick(dirs), "d")
		}
		if op != "" {
			r.do(op, g.next)
			g.next++
			ops = append(ops, op)
		}
	}
	return ops
}

// TestSender_Start_randomOperationsEndIdentical: random renames, swaps,
// removals, writes and mkdirs on a small tree, all journaled before the
// sender starts (a peer that was away, or a burst), end with the peer's
// tree identical to this member's. Ten fixed seeds; RANDOM_OPS_SEEDS,
// RANDOM_OPS_FIRST and RANDOM_OPS_STEPS run others. Each case lists its
// operations, which a test of its own replays (doAll). RANDOM_OPS_LIVE=1
// starts the sender first and applies the operations while it runs, a
// few milliseconds apart, as the stress test does (its runs then meet
// the operations at times no seed fixes).
func TestSender_Start_randomOperationsEndIdentical(t *testing.T) {
	seeds, first, steps := 10, 0, 12
	live := 0
	for env, v := range map[string]*int{"RANDOM_OPS_SEEDS": &seeds, "RANDOM_OPS_FIRST": &first, "RANDOM_OPS_STEPS": &steps, "RANDOM_OPS_LIVE": &live} {
		if s := os.Getenv(env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("%s: %v", env, err)
			}
			*v = n
		}
	}
	for seed := first; seed < first+seeds; seed++ {
		t.Run(strconv.Itoa(seed), func(t *testing.T) {
			r := opsRig(t, 600+seed%20, basePort+500+uint16(seed%20))
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			g := &opsGen{rng: rng, next: 10}
			if live == 0 {
				ops := r.randomOps(g, steps)
				t.Logf("operations: %q", ops)
				r.runUntilIdentical()
				return
			}
			// A path that raced (gone or back while rsync read it) is
			// retried after the agent's own backoff, not the rig's hour.
			r.sender.Backoff, r.sender.BackoffCap = DefaultBackoff, DefaultBackoffCap
			r.start()
			var ops []string
			for range steps {
				ops = append(ops, r.randomOps(g, 1)...)
				select {
				case r.sender.Wake <- struct{}{}:
				default:
				}
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			}
			t.Logf("operations: %q", ops)
			r.untilNothingPending()
			if here, there := treeOf(t, r.root), treeOf(t, r.peerRoot); !slices.Equal(here, there) {
				t.Errorf("the peer's tree differs:\n here:  %q\n there: %q", here, there)
			}
		})
	}
}

// TestSender_Start_operationsEndIdentical replays sequences of operations
// (do) that random ones found, all journaled before the sender starts,
// each ending with the peer's tree identical to this member's.
func TestSender_Start_operationsEndIdentical(t *testing.T) {
	for i, tc := range []struct {
		name string
		ops  []string
	}{
		{
			// c/d/f4 is renamed out of c/d, c/d moves to f/f1 with c, and
			// c becomes a file. The old name c/d/f4 is below that file, but
			// the peer's c/d/f4 is not gone with the directory the file
			// replaces there: the rename of c moves it to f/f1/d/f4 first.
			// The rename out of it waits for that one, and its old name is
			// then deleted where it moved (journal.Journal.MovedOn). Before,
			// the peer kept f/f1/d/f4 for good.
			name: "a rename out of a directory renamed away and replaced by a file",
			ops:  []string{"mv f5 c/d/c2", "mv c/d/f4 a/m2", "mv a f", "swap f/f1 c"},
		},
		{
			// The same with the directory's rename applied on the peer: c
			// moves to g there, and c/d/f4, renamed out of it before, with
			// it, to g/d/f4, a name gone here, which the rename out of it
			// deletes once it waited for c's rename.
			name: "a rename out of a directory renamed away on the peer and replaced by a file",
			ops:  []string{"mv c/d/f4 a/m2", "mv a f", "mv c g", "write c"},
		},
		{
			// The same through a swap, with the new name of the rename
			// out of it removed since: its entry's Seq is the removal's,
			// after the swap's renames, so the wait compared the swap's
			// rename of c/d with the removal, not with when c/d/f4 was
			// left, and did not wait. The peer moved its c/d/f4 to
			// c/m11/f4 with the swap and kept it for good (random seed
			// 178, minimized).
			name: "a rename out of a directory swapped with a file, its new name removed",
			ops:  []string{"mv c/f3 c/m11", "mv c/d/f4 a/m13", "swap c/m11 c/d", "rm a/m13"},
		},
		{
			// The same with the file swapped in removed too: its removal
			// covers c/d/f4's deletion, and both went after the swap
			// (random seed 178, whole). c/d/f4 is now deleted before the
			// renames, as a deletion of its own is (batch.oldNamesFirst).
			name: "a rename out of a directory swapped with a file, both removed",
			ops:  []string{"mv c/f3 c/m11", "mv c/d/f4 a/m13", "swap c/m11 c/d", "rm a/m13", "rm c/d"},
		},
		{
			// The same, three operations (random seed 1016, minimized).
			name: "a rename out of a directory swapped away, its new name removed",
			ops:  []string{"mv c/d m22", "swap c a/f1", "rm m22"},
		},
		{
			// The scan of m16 (renamed in) journals m16/d/f4, and that
			// entry stays when f4 is renamed away (a Found entry keeps no
			// removal). Its deletion, the batch's own, stood for the old
			// name's, and went after the swap's renames, which had moved
			// the peer's f4 to m16/f3/f4, where it stayed. The old name
			// is now deleted as such, and moves on with the swap (random
			// seed 1068, minimized).
			name: "an old name that the batch deletes for a scan's entry",
			ops: []string{"mv c a/b/m11", "mv a/f1 a/m13", "swap a/m13 a/b/m11", "mv a/m13 m16", "mv m16/d/f4 m16/m20",
				"swap m16/d m16/f3", "rm m16/m20", "mkdir m16/f3/d41", "mv m16/d m16/f3/d41/m54"},
		},
		{
			// m11, a name written, renamed away and renamed onto again
			// (swap m11 c), comes first in the journal, its entry keeping
			// the place of the first change. Asked first, the rename c ->
			// m11 moved c/f3 away on the peer before the renames made
			// before it (the swap of c/f3 and a) were asked for: refused.
			// Renames now go in the order they were made (RenameSeq).
			// Joining the swap's renames (chainRenames) also made a rename
			// of a onto a: the rename onto c/f3 came after the one that
			// left it, and is not its chain. And one old name's deletion
			// that found its name here again held back every removal
			// below the batch's deleted directories (coveredBy).
			name: "a swap after a name renamed onto again",
			ops: []string{"mv f5 m11", "write a/b/f2", "rm a/b", "swap c/f3 a", "mkdir c/d/d14",
				"write c/f3/f1", "write m11", "swap m11 c", "mkdir m11/f3/d18"},
		},
		{
			// c/d/f4 -> c/m14 -> a/m19, joined into one rename (c/d/f4 ->
			// a/m19), is asked for where its first rename was made: before
			// the swap that moves c/d on the peer. Asked where its last
			// was made, it was refused there, and c/d/f4 stayed on the peer
			// under a/m17/f2.
			name: "a chain of renames out of a directory swapped later",
			ops: []string{"mv f5 c/d/m11", "mkdir a/b/d12", "mv c/d/m11 c/d/m13", "rm c/f3", "mv c/d/f4 c/m14",
				"mkdir c/d15", "mv a/b/d12 c/d15/m16", "mv a/b a/m17", "swap a/m17/f2 c/d", "mv c/m14 a/m19", "mkdir a/d20"},
		},
		{
			// Two swaps of a/b, both refused on the peer (the joined
			// rename's new name is taken there), then the directory now at
			// a/b is renamed to a/m34: the peer's a/b was still its old
			// tree, which that rename moved to a/m34, where a/m34/f2
			// stayed. A rename that follows from a refused one is not
			// tried now (peer.Rename.After, batch.follows).
			name: "a rename of a name that a refused swap left",
			ops:  []string{"swap a/f1 a/b", "mkdir d22", "swap a/b d22", "mv a/b a/m34"},
		},
		{
			// c -> m14 -> m42, joined into c -> m42, and a rename out of
			// m14 between whose new name went with it: its old name is
			// deleted where the chain put it on the peer (alongChain).
			// Deleted at m14/f3, it found nothing, and the peer kept
			// m42/f3.
			name: "a rename out of a chain's middle name",
			ops:  []string{"mv c m14", "mkdir m14/d/d20", "mv m14/f3 m14/d/d20/m38", "mv m14 m42"},
		},
		{
			// The same with the rename's new name below the middle name.
			name: "a rename within a chain's middle name",
			ops:  []string{"mv a c/m12", "mv c/m12/b/f2 c/m12/m16", "mv c/m12 c/m34"},
		},
		{
			// The swap's renames refused, the rename of c, which follows
			// from them, is not tried (peer.Rename.After): tried, it moved
			// the peer's own c, the tree that was not swapped there.
			name: "a swapped directory moved into the other",
			ops:  []string{"swap c a/b", "mv c a/b/d/m19"},
		},
		{
			// Two swaps applied on the peer as renames (swapTemps), the
			// second below a directory the first put in place: a/b/d, sent
			// with c's tree found at a/b, is not made on the peer before the
			// renames (dirsAboveRenames): made then, in the peer's old a/b,
			// it went with that tree to c.
			name: "a swap below a swapped directory",
			ops:  []string{"swap a/b c", "swap a/b/d/f4 f5"},
		},
		{
			name: "a swap of a directory a file was renamed out of",
			ops:  []string{"write a/b/f11", "mv c/d/f4 a/b/m16", "mkdir a/d29", "swap c/d a/d29", "mv a/b/f11 a/d29/m40", "rm a/b"},
		},
		{
			// a -> m16/m35/d28 applied, and m16/m35/d28/f1, made here
			// since, pushed in the same run: the old name of the rename
			// a/f1 -> m23, pending, is not moved onto that name (MovedOn's
			// skip); moved, the next run renamed the pushed directory away.
			name: "a rename out of a directory renamed onto a name the run pushes",
			ops: []string{"mkdir d11", "mv c/d m16", "swap c m16", "swap m16/f3 a/b", "rm c", "mv a/b m23", "swap a/f1 m16/f3",
				"mkdir d11/d28", "swap m23 a/f1", "swap a/f1 d11/d28", "mv d11 m16/m35", "swap m16/m35/d28 a"},
		},
		{
			// The journal keeps the second swap's renames onto a/b and c
			// alone, and the peer is asked for one swap: it holds c's
			// tree at a/b, whose a/b/d, made here by the first swap and
			// gone, is deleted there. Taken as moved with the rename of
			// a/b away (movedWithARename), it was left, empty (seed 66).
			name: "a swap made twice",
			ops:  []string{"swap a/b c", "swap a/b c"},
		},
		{
			// swap c a, then swap c a/f17: the rename a -> c, superseded
			// in c's entry by a/f17 -> c, is kept where c went (the
			// swap's temporary name, journal's movedOnFrom). Journaled as
			// a's removal, the peer was asked to rename its c onto its a,
			// refused, and kept its old a/b/f2 and a/f1 (seed 74).
			name: "a swap of a name swapped before",
			ops:  []string{"swap c a", "write a/f17", "swap c a/f17"},
		},
		{
			// a/f1 -> t1 -> a/b -> t2 -> d22, the journal keeping t2 <-
			// t1 (movedOnFrom) and a swap through t2: t1's rename is
			// joined into t2's (chainRenames), or the rename to t1, its
			// new name gone here, deleted the peer's a/f1. And a/b, an
			// old name deleted on the peer (its object went to a/f1 and
			// was removed), is deleted before a/b -> a/m34 is asked
			// (renamesAboveDeletes): asked first, it moved the peer's old
			// a/b there, with a/b/f2 (seed 117).
			name: "a name renamed out of, removed, and swapped through",
			ops:  []string{"swap a/f1 a/b", "rm a/f1", "mkdir d22", "swap a/b d22", "mv a/b a/m34"},
		},
		{
			// c/f3 -> a, then a -> d12: d12 was made and renamed away
			// between, so the superseded c/f3 -> a is not kept as c/f3
			// -> d12 (movedOnFrom's conditions): the peer's d12 is not the
			// object that moved there (seed 4 with the journal's first
			// movedOnFrom).
			name: "a superseded rename onto a name made between",
			ops:  []string{"swap a c/f3", "mkdir d12", "swap f5 c", "swap d12 a"},
		},
		{
			// a -> c/m12 -> c/m34 joined, and a rename out of the middle
			// name, itself joined (c/m12/b/f2 -> c/m12/m16 -> c/m24): it
			// is asked from c/m34/b/f2, where the first puts it on the
			// peer (alongChain). Asked from c/m12/b/f2, it was refused and
			// the peer kept c/m34/b/f2 (seed 94; failing before this
			// session).
			name: "a chained rename out of a chain's middle name",
			ops:  []string{"mv a c/m12", "mv c/m12/b/f2 c/m12/m16", "mv c/m12/m16 c/m24", "mv c/m12 c/m34"},
		},
		{
			// a/f1 -> m12, superseded by the second swap and not kept
			// (movedOnFrom), is journaled as a/f1's removal, below the
			// file now at a. The swap's renames move the peer's a, with
			// a/f1, to c/d before the file's push replaces a there:
			// a/f1 is deleted where they put it (underFileMoved). Before,
			// the peer kept c/d/f1 (a live case of the thirty-first
			// session, failing journaled before the sender starts too).
			name: "a removal below a file, moved by a swap",
			ops:  []string{"mv a/f1 m12", "swap a c/d", "swap a m12"},
		},
		{
			// a/f1 -> c/d/m11 -> a, superseded in c/d/m11's entry by the
			// swap: a, the name it went on to, held the peer's own a until
			// the swap renamed that away, so the rename is not kept as
			// a/f1 -> a (movedOnFrom's rename out of it between). Kept, the
			// peer's a/f1 stayed under m31 (seed 71).
			name: "a superseded rename onto a name renamed away between",
			ops:  []string{"mv a/f1 c/d/m11", "swap a c/d/m11", "mv a c/m19", "mv c/d/m11 m31", "rm c/m19"},
		},
		{
			// c -> a/b -> c (two swaps), and a/b/d/f4 -> a/m16 between:
			// the peer's c is the directory that went there and back,
			// and a/m16 is asked from c/d/f4 (journal's backWhereItWas).
			// Asked from a/b/d/f4, it was refused, and the peer kept
			// c/d/f4 (RANDOM_OPS_LIVE seed 66).
			name: "a rename out of a directory swapped there and back",
			ops:  []string{"swap a/b c", "mv a/b/d/f4 a/m16", "swap c a/b"},
		},
		{
			// The same with the directory moved on (c -> a/b -> m9, kept
			// as c -> m9): a/m16 is asked from m9/d/f4.
			name: "a rename out of a directory swapped there and moved on",
			ops:  []string{"swap a/b c", "mv a/b/d/f4 a/m16", "mv a/b m9", "mv f5 a/b"},
		},
		{
			// The swap of a/b and c/f3 is told (swapTemps) though its last
			// new name, c/f3, is gone here: the later renames of c moved
			// it on to f5/f3 (movedOnBy). Asked as c/f3 -> a/b, refused,
			// the peer kept an empty c/d (seed 45).
			name: "a swap whose names directories renamed later moved on",
			ops:  []string{"swap a/b c/f3", "swap c f5", "swap c f5/d"},
		},
		{
			// c/d -> a/b, its new name gone here because a went on to m36
			// later, is asked as it was made (batch.renamedAlong), and so
			// is c/d/f2 -> c/m14, whose new name went on with c to m18.
			// Taken as gone, c/d was deleted on the peer (its files went
			// again) and the renames of c waited for c/m14's deletion;
			// the peer kept m36/b/f2 (seed 119).
			name: "renames into directories renamed later",
			ops:  []string{"swap a/b c/d", "mv c/d/f2 c/m14", "mv c m18", "mv f5 m36", "swap m36 a"},
		},
		{
			// c/d18 -> c/f3, asked though c/f3 went on to c/m34/m27 here,
			// is refused (the peer never had c/d18); the peer's own c/f3,
			// the file that went on to c/m24 through a swap the journal
			// lost, is still deleted as the old name of c/f3 -> c/t (a
			// name asked so is not taken as one the batch lists). Before
			// that, the peer kept c/f3 (seed 94; the thirty-second
			// session's attempt at movedOnBy broke it).
			name: "a rename asked through later renames, refused, over a name to delete",
			ops: []string{"swap c/f3 c/d", "mv a c/m12", "mv c/m12/b/f2 c/m12/m16", "mkdir c/d18", "swap c/f3 c/d18",
				"mv c/m12/m16 c/m24", "swap c/m24 c/d", "mv c/f3 c/m12/m27", "mv c/m12 c/m34"},
		},
		{
			// t -> a/b (the first swap's last rename) is asked because the
			// later swap of a and f5 moves it on to f5/b here; that swap is
			// refused on the peer (its f5 exists there), so the peer holds
			// the object at a/b still, a name gone here: deleted
			// (renamedAlongLeft). Before, the peer kept a/b (seed 81).
			name: "a rename asked through a later rename that is refused",
			ops:  []string{"mv c/f3 c/d/m11", "swap c/d/m11 a/b", "mkdir c/d14", "swap a f5", "swap c/d14 a"},
		},
		{
			// c is renamed out of twice: by the swap (c -> a/b), then to
			// a/m31. The swap is told by the rename out of c made between
			// its first and last (swapTemps); told by the last one, it was
			// not, its joined a/b -> c (asked since c went on to
			// d18/d27/m31 here, movedOnBy) was refused, and the peer kept
			// d18/d27/b/f2 (live seed 52 after the first cut of movedOnBy).
			name: "a swap of a name renamed out of again",
			ops:  []string{"swap a/b c", "mkdir d18", "mkdir d18/d27", "mv c a/m31", "swap a d18/d27"},
		},
		{
			// The journal keeps t <- c -> m36 though m36's entry began with
			// mv f5 m36 (movedOnFrom: renames alone, nothing renamed out
			// of m36 between), and c/d/f2, found by the scan of the first
			// swap's tree and gone here only because c moved on to m36, is
			// neither deleted nor waited for (foundMovedOn): the joined c
			// -> m36 goes, and with it the first swap, told through it.
			// Before, the peer kept its old a/b under m18/b (seed 119).
			name: "a swap whose tree a chain of swaps moved on",
			ops:  []string{"swap a/b c/d", "mv c m18", "swap m18 a", "mv f5 m36", "swap m36 a"},
		},
		{
			// c/d/f4 -> m1, then c -> x, then m1 removed: m1's entry is
			// not asked, and its old name is deleted (oldNamesGone) after
			// the run's renames, which took the peer's c/d/f4 to x/d/f4:
			// it is deleted there (batch.oldNamesMovedOn). Before, the
			// deletion found nothing, and the peer kept x/d/f4 (the
			// stress test, seed 23: #1/d2/d29/h3).
			name: "a rename out of a directory renamed later, its new name removed since",
			ops:  []string{"mv c/d/f4 m1", "mv c x", "rm m1"},
		},
		{
			// c/d leaves for a swap's temporary name, which the journal
			// keeps as a removal (its tree went on to a/d22 and a/f19,
			// names made here since: sent as content), and c then moves
			// to a/b, taking the peer's c/d, f4 in it, to a/b/d. That
			// name is a directory here again (a/d22, made here, came
			// there through c/d), so the deletion could not follow the
			// rename there (oldNamesMovedOn). It goes before the renames
			// now (oldNamesFirst). Before, the peer kept a/b/d/f4 (the
			// random operations minimizer).
			name: "a removed old name that a later rename takes to a directory made here",
			ops:  []string{"write a/f19", "mkdir a/d22", "swap c/d a/d22", "swap a/b c", "swap a/f19 a/d22"},
		},
		{
			// c/d/f4 went on through c/d/m12/m14 and c/m19 to c/m21/m36,
			// removed since; c/d moved to c/m21 after it left, a/b to
			// c/d/m12 before, beside it. Its old name goes before the
			// renames (oldNamesFirst), the earlier rename not being one
			// that touches it. Before, the peer kept c/m21/f4 (random
			// seed 166).
			name: "a removed chain's first name, a rename beside it made before",
			ops:  []string{"mv a/b c/d/m12", "mv c/d/f4 c/d/m12/m14", "mv c/d/m12/m14 c/m19", "mv c/d c/m21", "mv c/m19 c/m21/m36", "rm c/m21/m36"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := opsRig(t, 73+i, basePort+100+uint16(i))
			r.doAll(tc.ops...)
			r.runUntilIdentical()
		})
	}
}

// TestSender_Start_aDeletionMovedOnLeavesNothingInFlight: mv c/d/f4 m1;
// mv c x; rm m1. The run deletes m1's old name where the rename of c put
// it on the peer (batch.oldNamesMovedOn), and that rewrote the batch's
// deletion in place: the run then took x/d/f4 out of flight instead of
// c/d/f4, which stayed in flight for good, and every later entry at or
// above it was skipped as another run's (the stress test, seed 32: a
// rename of D11, whose old name stayed on both receivers while the
// sender planned it every waitAgain). The directory made again at c now
// goes too.
func TestSender_Start_aDeletionMovedOnLeavesNothingInFlight(t *testing.T) {
	r := opsRig(t, 76, basePort+103)
	r.doAll("mv c/d/f4 m1", "mv c x", "rm m1")
	r.start()
	r.untilNothingPending()
	r.doAll("mkdir c", "write c/f9")
	select {
	case r.sender.Wake <- struct{}{}:
	default:
	}
	r.untilNothingPending()
	if here, there := treeOf(t, r.root), treeOf(t, r.peerRoot); !slices.Equal(here, there) {
		t.Errorf("the peer's tree differs:\n here:  %q\n there: %q", here, there)
	}
}

// TestSender_Start_aSwapIsRenamedOnThePeer: swaps of two directories and
// of two files (mv a t; mv b a; mv t b) are applied on the peer as the
// three renames they were (swapTemps): every file keeps its inode there,
// nothing goes again as content. Joined into a -> b and b -> a before,
// both were refused (each new name taken there) and every file went again.
func TestSender_Start_aSwapIsRenamedOnThePeer(t *testing.T) {
	r := opsRig(t, 77, basePort+104)
	before := r.peerInodes([]string{"a/b/f2", "c/d/f4", "a/f1", "c/f3"})
	r.doAll("swap a/b c/d", "swap a/f1 c/f3")
	r.runUntilIdentical()
	r.noneResent(before, []string{"c/d/f2", "a/b/f4", "c/f3", "a/f1"})
}
