package rsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// filler returns n names long enough that, with the hostile ones, a run's
// list is over RemoteListMin.
func filler(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("filler-%04d-%s", i, strings.Repeat("x", 16))
	}
	return names
}

// listOnPeer is an Options.RemoteList that writes the list into the
// daemon's module, as the receiving agent does, and counts its calls.
type listOnPeer struct {
	module string
	calls  int
	// answer, when set, replaces the path returned (a peer that answers
	// nonsense); err fails the call.
	answer string
	err    error
}

func (l *listOnPeer) place(_ context.Context, list []byte) (string, error) {
	l.calls++
	if l.err != nil {
		return "", l.err
	}
	name := fmt.Sprintf("list-%d", l.calls)
	if err := os.MkdirAll(filepath.Join(l.module, "lists"), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(l.module, "lists", name), list, 0o600); err != nil {
		return "", err
	}
	if l.answer != "" {
		return l.answer, nil
	}
	return "/lists/" + name, nil
}

// TestPush_RemoteList: a long list is read by the daemon from the file
// the peer placed (--files-from=:PATH), and every name, hostile ones
// included, arrives byte-exact and is confirmed per path, for pushes and
// deletes; a short list, a failed placement or a path that rsync would
// read otherwise (relative, naming a host, unclean) leaves the list on
// standard input, with the same outcome.
func TestPush_RemoteList(t *testing.T) {
	tests := []struct {
		name       string
		files      int // filler files beside the hostile names
		answer     string
		err        error
		wantCalls  int
		wantRemote bool
	}{
		{name: "a long list is read on the peer", files: 400, wantCalls: 1, wantRemote: true},
		{name: "a short list stays on standard input", files: 0, wantCalls: 0},
		{name: "a peer that takes no lists", files: 400, err: errors.New("not taken"), wantCalls: 1},
		{name: "a relative path", files: 400, answer: "lists/list-1", wantCalls: 1},
		{name: "a path that names a host", files: 400, answer: "/evil:lists/list-1", wantCalls: 1},
		{name: "an unclean path", files: 400, answer: "/lists/../lists/list-1", wantCalls: 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, 53+i)
			root := t.TempDir()
			names := append(hostileNames(), filler(tc.files)...)
			for _, n := range names {
				write(t, root, n, []byte("content of "+n))
			}
			lp := &listOnPeer{module: d.dir, answer: tc.answer, err: tc.err}
			o := fastOptions()
			o.RemoteList = lp.place
			res, err := Push(context.Background(), root, names, d.target(), o)
			if err != nil {
				t.Fatalf("push: %v\n%s", err, res.Stderr)
			}
			want := make(map[string]Outcome, len(names))
			for _, n := range names {
				want[n] = Sent
			}
			wantOutcomes(t, res, want)
			checkSame(t, root, d.dir, names)
			if lp.calls != tc.wantCalls {
				t.Errorf("RemoteList called %d times, want %d", lp.calls, tc.wantCalls)
			}
			remote := slices.Contains(res.Args, "--files-from=:/lists/list-1")
			stdin := slices.Contains(res.Args, "--files-from=-")
			if remote != tc.wantRemote || stdin == tc.wantRemote {
				t.Errorf("args %q: list read on the peer %v, from standard input %v; want on the peer %v", res.Args, remote, stdin, tc.wantRemote)
			}

			// Deleted here: their deletion goes the same way.
			top := filler(tc.files)
			for _, n := range hostileNames() {
				first, _, _ := strings.Cut(n, "/")
				if !slices.Contains(top, first) {
					top = append(top, first)
				}
			}
			for _, n := range top {
				must(t, os.RemoveAll(filepath.Join(root, n)))
			}
			lp.calls = 0
			res, err = Delete(context.Background(), root, top, d.target(), o)
			if err != nil {
				t.Fatalf("delete: %v\n%s", err, res.Stderr)
			}
			for _, n := range top {
				if _, err := os.Lstat(filepath.Join(d.dir, n)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%q still on the peer (%v)", n, err)
				}
			}
			wantDel := map[string]Outcome{}
			for _, n := range top {
				wantDel[n] = Deleted
			}
			wantOutcomes(t, res, wantDel)
			if lp.calls != tc.wantCalls {
				t.Errorf("delete: RemoteList called %d times, want %d", lp.calls, tc.wantCalls)
			}
		})
	}
}

// TestWarm_ReadsItsListFromStandardInput: a prepared client's arguments
// were sent before its list existed; RemoteList is never asked.
func TestWarm_ReadsItsListFromStandardInput(t *testing.T) {
	d := startDaemon(t, 59)
	root := t.TempDir()
	names := filler(400)
	for _, n := range names {
		write(t, root, n, []byte(n))
	}
	lp := &listOnPeer{module: d.dir}
	o := fastOptions()
	o.RemoteList = lp.place
	w, err := Prepare(root, d.target(), o)
	must(t, err)
	res, err := w.Push(context.Background(), names)
	if err != nil {
		t.Fatalf("push: %v\n%s", err, res.Stderr)
	}
	if lp.calls != 0 || !slices.Contains(res.Args, "--files-from=-") {
		t.Errorf("RemoteList called %d times, args %q: want none, and the list on standard input", lp.calls, res.Args)
	}
	checkSame(t, root, d.dir, names)
}
