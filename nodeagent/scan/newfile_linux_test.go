package scan

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/change"
)

// TestScanner_NewEmptyFileSettles: a scan cannot tell a new empty file
// whose creator has yet to open it for writing from one that stays empty
// (open(2) with O_CREAT makes the file before it takes write access), so
// the change is left to settle, not finished by a lease; a written file
// that no writer holds is finished at once, one a writer holds is not.
func TestScanner_NewEmptyFileSettles(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.do(unix.Mknod(filepath.Join(f.root, "empty"), unix.S_IFREG|0o644, 0))
	f.write("written", "x")
	held, err := os.OpenFile(filepath.Join(f.root, "held"), os.O_CREATE|os.O_WRONLY, 0o644)
	f.do(err)
	defer held.Close()
	_, err = held.WriteString("half")
	f.do(err)

	out := make(chan change.Change, 16)
	if _, err := f.sc.Scan(context.Background(), ".", out); err != nil {
		t.Fatalf("scan: %v", err)
	}
	close(out)
	got := map[string]change.Change{}
	for c := range out {
		got[c.Path] = c
	}
	tests := []struct {
		path                  string
		op                    change.Op
		finished, needsSettle bool
	}{
		{"empty", change.Create | change.Found, false, true},
		{"written", change.Create | change.Write | change.Found, true, false},
		{"held", change.Create | change.Write | change.Found, false, false},
	}
	for _, tc := range tests {
		c, ok := got[tc.path]
		if !ok || c.Op != tc.op || c.Finished != tc.finished || c.NeedsSettle != tc.needsSettle {
			t.Errorf("%s: %+v; want op %s, finished %t, needsSettle %t", tc.path, c, tc.op, tc.finished, tc.needsSettle)
		}
	}
}
