package rsyncd

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWrite_replacesAtomically: a rewrite puts a new file in place of the
// old one (rename), never rewrites the old one in place, so that a daemon
// reading rsyncd.conf or the secrets file for a connection (it re-reads
// both for every one) reads either the whole old file or the whole new
// one. No temporary file is left beside them.
func TestWrite_replacesAtomically(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	if err := Write(c); err != nil {
		t.Fatal(err)
	}
	files := []string{c.ConfigFile(), c.SecretsFile()}
	old := make([]*os.File, len(files))
	want := make([][]byte, len(files))
	for i, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = b
		// A reader that opened the file before the rewrite.
		if old[i], err = os.Open(p); err != nil {
			t.Fatal(err)
		}
		defer old[i].Close()
	}
	c.Password = "another secret"
	c.Modules = append(c.Modules, Module{Name: "second", Path: "/srv/second"})
	if err := Write(c); err != nil {
		t.Fatal(err)
	}
	for i, p := range files {
		got, err := io.ReadAll(old[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want[i]) {
			t.Errorf("%s: a reader of the old file read %q; want the old file whole, %q", p, got, want[i])
		}
		now, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(now) == string(want[i]) {
			t.Errorf("%s was not rewritten", p)
		}
	}
	des, err := os.ReadDir(filepath.Dir(c.ConfigFile()))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if n := de.Name(); n != filepath.Base(c.ConfigFile()) && n != filepath.Base(c.SecretsFile()) {
			t.Errorf("%s left in the state directory", n)
		}
	}
}
