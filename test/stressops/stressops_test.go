package stressops

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOp_Renames: the renames each op makes, which the stress test and
// hack/opsreplay compare with what a member or its source reported.
func TestOp_Renames(t *testing.T) {
	tests := []struct {
		op   Op
		want [][2]string
	}{
		{Op{Op: "mv", P: []string{"a", "b"}}, [][2]string{{"a", "b"}}},
		{Op{Op: "mv", P: []string{"a", "b", "c"}}, [][2]string{{"a", "b"}, {"b", "c"}}},
		{Op{Op: "swap", P: []string{"a", "b", "t"}}, [][2]string{{"a", "t"}, {"b", "a"}, {"t", "b"}}},
		{Op{Op: "atomicwrite", P: []string{"f", ".tmp-1"}}, [][2]string{{".tmp-1", "f"}}},
		{Op{Op: "write", P: []string{"f"}}, nil},
		{Op{Op: "rmr", P: []string{"d"}}, nil},
	}
	for _, tt := range tests {
		if got := tt.op.Renames(); !slices.Equal(got, tt.want) {
			t.Errorf("%s %q: Renames() = %q, want %q", tt.op.Op, tt.op.P, got, tt.want)
		}
	}
}

// TestApply_swapAndRead: a swap applied exchanges two names, and Read
// returns the ops of a log that ran (no notes, sleeps or failed ones).
func TestApply_swapAndRead(t *testing.T) {
	root := t.TempDir()
	for _, o := range []Op{
		{Op: "write", P: []string{"a"}, Size: 3, Seed: 1, Mode: 0o644},
		{Op: "mkdirp", P: []string{"d/e"}},
		{Op: "swap", P: []string{"a", "d", "tmp"}},
	} {
		if err := Apply(root, &o); err != nil {
			t.Fatalf("%s %q: %v", o.Op, o.P, err)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "a/e")); err != nil || !st.IsDir() {
		t.Errorf("after the swap, a/e: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "d")); err != nil || !slices.Equal(b, Content(1, 3)) {
		t.Errorf("after the swap, d holds %q (%v), want a's content", b, err)
	}

	log := filepath.Join(t.TempDir(), "ops.jsonl")
	lines := `{"t":0,"node":"","op":"note","phase":0,"note":"seed 1"}
{"t":1,"node":"n1","op":"mv","p":["a","b"],"phase":1}
{"t":2,"node":"n1","op":"rm","p":["x"],"err":"no such file","phase":1}
{"t":3,"node":"n1","op":"sleep","size":10,"phase":1}
{"t":4,"node":"n2","op":"mkdirp","p":["d"],"phase":2}
`
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	ops, err := Read(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{{Node: "n1", Op: "mv", P: []string{"a", "b"}, Phase: 1}, {Node: "n2", Op: "mkdirp", P: []string{"d"}, Phase: 2}}
	if len(ops) != len(want) {
		t.Fatalf("Read = %+v, want %+v", ops, want)
	}
	for i := range want {
		if ops[i].Node != want[i].Node || ops[i].Op != want[i].Op || !slices.Equal(ops[i].P, want[i].P) || ops[i].Phase != want[i].Phase || ops[i].T != 0 {
			t.Errorf("Read()[%d] = %+v, want %+v", i, ops[i], want[i])
		}
	}
}

// TestApply_renameThroughASymlink: a rename whose path goes through a
// symlinked directory is noted as the kernel made it (Real), and Renames
// has it beside the rename as written: seed 840 of the fifty-eighth
// session's stress run moved d5/f11/c11 to d5/f20/f11/d9/f22 with d9 a
// symlink to d5/f11, and the member reported d5/f11/c11 -> d5/f11/f22, a
// rename that matched no operation.
func TestApply_renameThroughASymlink(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		want [][2]string // Real
	}{
		{"new name through a link", Op{Op: "mv", P: []string{"d/c", "l/f"}}, [][2]string{{"d/c", "d/f"}}},
		{"old name through a link", Op{Op: "mv", P: []string{"l/c", "e/c"}}, [][2]string{{"d/c", "e/c"}}},
		{"no link on the paths", Op{Op: "mv", P: []string{"d/c", "e/c"}}, nil},
		{"a link renamed itself", Op{Op: "mv", P: []string{"l", "e/l"}}, nil},
		{"a link out of the root", Op{Op: "mv", P: []string{"d/c", "out/c"}}, nil},
		{"a chain", Op{Op: "mv", P: []string{"d/c", "e/c", "l/g"}}, [][2]string{{"e/c", "d/g"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			outside := t.TempDir()
			for _, d := range []string{"d", "e"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(root, "d/c"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("d", filepath.Join(root, "l")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
				t.Fatal(err)
			}
			o := tt.op
			if err := Apply(root, &o); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !slices.Equal(o.Real, tt.want) {
				t.Errorf("Real = %q, want %q", o.Real, tt.want)
			}
			written := (&Op{Op: o.Op, P: o.P}).Renames()
			if got := o.Renames(); !slices.Equal(got, append(written, tt.want...)) {
				t.Errorf("Renames() = %q, want %q then %q", got, written, tt.want)
			}
		})
	}
}
