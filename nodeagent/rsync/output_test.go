package rsync

import (
	"slices"
	"strings"
	"testing"
)

// TestParseItems reads an output as rsync 3.2 prints it with the agent's
// --out-format, --stats and, for a long run, --info=progress2 (its
// progress lines start with '\r', the last one of a file ends with
// '\n'; taken from a real run).
func TestParseItems(t *testing.T) {
	ix := pathIndex{"#hash": 0, "new\nline": 1, "a/b": 2, `lit\#012x`: 3, "d": 4, "gone": 5}
	out := strings.Join([]string{
		"jailsync1 .d..t...... 4096 0 ./",
		"\r          32768   0%    0.00kB/s    0:00:00  \r        4325376  51%    4.01MB/s    0:00:00  " +
			"\r        8388608  99%    4.10MB/s    0:00:01 (xfr#1, to-chk=1/3)",
		"jailsync1 <f+++++++++ 2 45 #hash",
		"\r        8388618 100%    4.10MB/s    0:00:01 (xfr#2, to-chk=0/3)",
		`jailsync1 <f.st...... 8 51 new\#012line`,
		"jailsync1 cd+++++++++ 4096 0 a/",
		"jailsync1 .f          3 0 a/b",
		"jailsync1 .d          4096 0 kept/",
		"jailsync1 .d...p..... 4096 0 kept/chmodded/",
		"jailsync1 .d..t...... 4096 0 kept/sp ace/",
		`jailsync1 hf          3 0 lit\#134#012x`,
		"jailsync1 *deleting   0 0 d/",
		"jailsync1 *deleting   0 0 d/inner",
		"jailsync1 *deleting   0 0 swapped/kept",
		"jailsync1 >f+++++++++ 5 5 swapped",
		"jailsync1 cL+++++++++ 0 0 relinked",
		"jailsync1 garbage",
		"",
		"Number of files: 13 (reg: 9, dir: 3, link: 1)",
		"Total bytes sent: 1,675",
		"Total bytes received: 199",
	}, "\n") + "\n"
	var progress []int64
	items, other, st, _, err := parseItems(strings.NewReader(out), ix, func(n int64) { progress = append(progress, n) })
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{32768, 4325376, 8388608, 8388618}; !slices.Equal(progress, want) {
		t.Errorf("progress %v, want %v", progress, want)
	}
	want := map[int]Outcome{0: Sent, 1: Sent, 2: Unchanged, 3: Updated, 4: Deleted}
	for i, o := range want {
		it, ok := items[i]
		if !ok {
			t.Errorf("index %d: no item", i)
			continue
		}
		if got := itemOutcome(it.change); got != o {
			t.Errorf("index %d %q: %v, want %v", i, it.change, got, o)
		}
	}
	if _, ok := items[5]; ok {
		t.Error("gone has an item")
	}
	if items[0].size != 2 || items[0].transferred != 45 {
		t.Errorf("#hash size/bytes %+v", items[0])
	}
	if other.n != 9 { // "./", "a/", the three below "kept", "d/inner", "swapped/kept", "swapped", "relinked"
		t.Errorf("other = %d, want 9", other.n)
	}
	// The implied directories rsync made or changed: not the root, not
	// one it left as it was, not the contents of a deleted directory.
	if want := []string{"a", "kept/chmodded", "kept/sp ace"}; !slices.Equal(other.dirs, want) {
		t.Errorf("implied directories made or changed %q, want %q", other.dirs, want)
	}
	if want := []string{"a"}; !slices.Equal(other.made, want) {
		t.Errorf("implied directories made %q, want %q", other.made, want)
	}
	if want := []string{"d", "d/inner", "swapped/kept"}; !slices.Equal(other.removed, want) {
		t.Errorf("removed %q, want %q", other.removed, want)
	}
	// Parents of listed paths sent as a file or a symlink (a directory
	// swapped with one while rsync read the list): not directories.
	if want := []string{"swapped", "relinked"}; !slices.Equal(other.notDirs, want) {
		t.Errorf("parents sent as no directory %q, want %q", other.notDirs, want)
	}
	if st.sent != 1675 || st.received != 199 {
		t.Errorf("stats %+v", st)
	}
}

func TestItemOutcome(t *testing.T) {
	tests := []struct {
		change string
		want   Outcome
	}{
		{"<f+++++++++", Sent},
		{"<f.st......", Sent},
		{">f..t......", Sent},
		{"cd+++++++++", Updated},
		{"cL+++++++++", Updated},
		{"cD+++++++++", Updated},
		{"hf+++++++++", Updated},
		{".d..t......", Updated},
		{".f...p.....", Updated},
		{".L..T......", Updated},
		{".f          ", Unchanged},
		{".d          ", Unchanged},
		{"*deleting  ", Deleted},
		{"", Unconfirmed},
	}
	for _, tc := range tests {
		if got := itemOutcome(tc.change); got != tc.want {
			t.Errorf("itemOutcome(%q) = %v, want %v", tc.change, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	ix := pathIndex{"ro/f": 0, "p/q": 1, "d1": 2, `we"ird`: 3, "x": 4, "f.WCkx8g": 5, "vanish": 6, "sub": 7,
		"d2/big": 8, "long/name": 9, "huge": 10}
	roots := []string{"/src/root"}
	stderr := strings.Join([]string{
		`rsync: [receiver] rename "/.jailsync/tmp/f.WCkx8g" (in data) -> "ro/f": Operation not permitted (1)`,
		`file has vanished: "/src/root/p"`,
		`rsync: [generator] delete_file: unlink(d1/immutable) failed: Operation not permitted (1)`,
		`rsync: [receiver] mkstemp "/.we"ird.AbCdEf" (in data) failed: Permission denied (13)`,
		`file has vanished: "/src/root/./vanish"`,
		`rsync: [generator] delete_file: rmdir(sub) failed: Directory not empty (39)`,
		`rsync: [sender] link_stat "/src/root/x" failed: No such file or directory (2)`,
		`WARNING: d2/big failed verification -- update discarded (will try again).`,
		`ERROR: d2/big failed verification -- update discarded.`,
		`rsync: [receiver] temporary filename too long: long/name`,
		`Unable to create partial-dir for huge -- discarding partial file.`,
		`rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]`,
	}, "\n") + "\n"
	el, err := parseErrors(strings.NewReader(stderr), ix, roots, []string{"/.jailsync/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	errs, tail := el.errs, el.tail
	want := map[int]bool{0: false, 2: false, 4: true, 6: true, 7: false, 8: false, 9: false, 10: false} // index: vanished
	if pe := errs[8]; !strings.HasPrefix(pe.reason, "ERROR: ") {
		t.Errorf("d2/big: %q, want the ERROR line (the WARNING is followed by a second attempt)", pe.reason)
	}
	// Unattributed: "p" (the parent of p/q, not listed) and the temp file
	// that could not be made; the WARNING is neither. Attributed and
	// counted as unattributed too: d1's failure, read from a name below
	// it, and ro/f's, whose line names a temp file (either may be about
	// another listed file: see parseErrors).
	if el.unattributed != 4 {
		t.Errorf("unattributed %d, want 4", el.unattributed)
	}
	for i, v := range want {
		pe, ok := errs[i]
		if !ok {
			t.Errorf("index %d: no error", i)
			continue
		}
		if pe.vanished != v {
			t.Errorf("index %d: vanished %v, want %v (%s)", i, pe.vanished, v, pe.reason)
		}
	}
	// "p" is the parent of p/q, not p/q; the temp name is not a listed
	// name even though one path is spelled like it.
	for _, i := range []int{1, 5} {
		if pe, ok := errs[i]; ok {
			t.Errorf("index %d matched %q", i, pe.reason)
		}
	}
	if !strings.Contains(tail, "(code 23)") {
		t.Errorf("tail %q", tail)
	}
}

func TestPathIndexAttribute(t *testing.T) {
	ix := pathIndex{"a b": 0, "dir": 1, `q"x`: 2, "f": 3, "dir2/sub": 4,
		// Names made to look like parts of messages about v.
		" (in grp) -> ": 5, "v": 6, "x ERROR: v failed verification -- update ": 7}
	roots := []string{"/root"}
	tests := []struct {
		line  string
		want  int  // -1: none
		exact bool // the path itself is named, not a name below it
	}{
		{`rsync: [sender] send_files failed to open "/root/a b": Permission denied (13)`, 0, true},
		{`rsync: [generator] delete_file: unlink "dir/deep/file" failed`, 1, false},
		{`rsync: [sender] "/root/dir2/sub/x" failed`, 4, false},
		{`rsync: [receiver] open "/q"x" (in data) failed`, 2, true},
		{`rsync: [receiver] rename "/.jailsync/tmp/g.123" (in data) -> "f": Invalid argument (22)`, 3, true},
		{`rsync: [receiver] mkstemp "/elsewhere/dir2/sub" (in data) failed`, 4, false},
		// Without a temp directory, the temp file is beside the file.
		{`rsync: [receiver] mkstemp "/dir/.f.rKckpj" (in data) failed: Operation not permitted (1)`, 1, false},
		{`rsync: nothing quoted here`, -1, false},
		{`rsync: [sender] "/root/other" failed`, -1, false},
		// v's failure, readable as the crafted names' too: taken for none.
		{`rsync: [receiver] rename "/.jailsync/tmp/.v.AbC" (in grp) -> "v": No such file or directory (2)`, -1, false},
		{`rsync: [sender] send_files failed to open "/root/x ERROR: v failed verification -- update ": No such device (6)`, -1, false},
		{`ERROR: v failed verification -- update discarded.`, 6, true},
	}
	for _, tc := range tests {
		i, exact, ok := ix.attribute(tc.line, roots)
		if !ok {
			i = -1
		}
		if i != tc.want || ok && exact != tc.exact {
			t.Errorf("attribute(%q) = %d (exact %v), want %d (exact %v)", tc.line, i, exact, tc.want, tc.exact)
		}
	}
}

// TestNamesReserved: a line quoting a name in rsync's temp or partial
// directory is about some listed file's temp file, whatever listed name
// the rest of the line shows (a name may be made to hold quotes); a
// relative directory may be beside any file.
func TestNamesReserved(t *testing.T) {
	roots := []string{"/root"}
	reserved := []string{"/.jailsync/tmp", ".partial"}
	for _, tc := range []struct {
		line string
		want bool
	}{
		{`rsync: [receiver] mkstemp "/.jailsync/tmp/x" "same" "y.kMzr0h" (in data) failed: Operation not permitted (1)`, true},
		{`rsync: [receiver] rename "/.jailsync/tmp/f.WCkx8g" (in data) -> "ro/f": Operation not permitted (1)`, true},
		{`rsync: [receiver] open "/d/.partial/f" (in data) failed`, true},
		{`rsync: [receiver] open "/.partial/f" (in data) failed`, true},
		{`rsync: [sender] send_files failed to open "/root/.jailsync-tmp/x": Permission denied (13)`, false},
		{`rsync: [sender] send_files failed to open "/root/d/x": Permission denied (13)`, false},
		{`rsync: [receiver] mkstemp "/d/.jailsync/tmp/x.AbC" (in data) failed`, false},
	} {
		if got := namesReserved(tc.line, roots, reserved); got != tc.want {
			t.Errorf("namesReserved(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestPathIndexNamedUnquoted(t *testing.T) {
	ix := pathIndex{"d1": 0, "a (b) failed: c": 1, "x y": 2, "top": 3}
	tests := []struct {
		line string
		want int
	}{
		{"rsync: [generator] delete_file: unlink(d1/immutable) failed: Operation not permitted (1)", 0},
		{"rsync: [generator] delete_file: rmdir(a (b) failed: c) failed: Directory not empty (39)", 1},
		{"could not make way for new regular file: x y", 2},
		{"cannot delete non-empty directory: top/inner", 3},
		{"cannot delete non-empty directory: other", -1},
	}
	for _, tc := range tests {
		var got []int
		for _, m := range ix.namedUnquoted(tc.line) {
			got = append(got, m.i)
		}
		want := []int{tc.want}
		if tc.want < 0 {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("namedUnquoted(%q) = %v, want %v", tc.line, got, want)
		}
	}
}

// TestPathIndexAttribute_NamesMadeToReadAsTwo: a line that can be read to
// name two listed paths is taken for none, and so is one with more quotes
// than are tried (its closing quote may be among those not tried).
func TestPathIndexAttribute_NamesMadeToReadAsTwo(t *testing.T) {
	manyQuotes := `q"b"` + strings.Repeat(`"`, 14)
	tests := []struct {
		name  string
		ix    pathIndex
		roots []string
		line  string
		want  int // -1: none
	}{
		{"a receiver's name that starts like the sender's root", pathIndex{"data/x": 0, "x": 1}, []string{"/data"},
			`rsync: [generator] failed to set times on "/data/x" (in data): Operation not permitted (1)`, -1},
		{"the same, only one of the two listed", pathIndex{"data/x": 0}, []string{"/data"},
			`rsync: [generator] failed to set times on "/data/x" (in data): Operation not permitted (1)`, 0},
		{"a name with more quotes than are tried", pathIndex{"b": 0, manyQuotes: 1}, []string{"/root"},
			`rsync: [receiver] rename "/.jailsync/tmp/.` + manyQuotes + `.AbC123" (in data) -> "` + manyQuotes + `": Operation not permitted (1)`, -1},
		{"a name holding another message's text", pathIndex{"a": 0, "d temporary filename too long: a": 1}, nil,
			"could not make way for new directory: d temporary filename too long: a", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i, _, ok := tc.ix.attribute(tc.line, tc.roots)
			if !ok {
				i = -1
			}
			if i != tc.want {
				t.Errorf("attribute(%q) = %d, want %d", tc.line, i, tc.want)
			}
		})
	}
}

// TestParseItems_CannotDeleteNamesTheRestOfTheLine: the directory rsync
// could not delete is the whole rest of the line, even when its name
// holds another message's text.
func TestParseItems_CannotDeleteNamesTheRestOfTheLine(t *testing.T) {
	y := "d temporary filename too long: a"
	ix := pathIndex{"a": 0, y: 1}
	_, _, _, errs, err := parseItems(strings.NewReader(cannotDelete+y+"\n"), ix, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := errs[1]; !ok || len(errs) != 1 {
		t.Errorf("errors %v, want one for %q", errs, y)
	}
}

// TestIsVanished: rsync's vanished messages, and not a failure of a file
// whose name holds their words.
func TestIsVanished(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{`file has vanished: "/src/root/p"`, true},
		{`rsync: [sender] link_stat "/src/root/x" failed: No such file or directory (2)`, true},
		{`rsync: [sender] link_stat "/src/root/d/x" failed: Not a directory (20)`, true},
		{`rsync: [sender] send_files failed to open "/src/root/link_stat x": Not a directory (20)`, false},
		{`rsync: [sender] send_files failed to open "/src/root/file has vanished: x": Permission denied (13)`, false},
		{`rsync: [sender] send_files failed to open "/src/root/link_stat x": No such file or directory (2)`, false},
		{`rsync: [sender] link_stat "/src/root/x" failed: Permission denied (13)`, false},
	} {
		if got := isVanished(tc.line); got != tc.want {
			t.Errorf("isVanished(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

// TestPathResult_NotDir: the itemized change of a file, a symlink or a
// device is no directory's; a directory's and a deletion's are not.
func TestPathResult_NotDir(t *testing.T) {
	for _, tc := range []struct {
		change string
		want   bool
	}{
		{"<f+++++++++", true},
		{".f..t......", true},
		{"cL+++++++++", true},
		{"cD+++++++++", true},
		{"hf+++++++++", true},
		{"cd+++++++++", false},
		{".d..t......", false},
		{"*deleting  ", false},
		{"", false},
	} {
		if got := (PathResult{Change: tc.change}).NotDir(); got != tc.want {
			t.Errorf("NotDir of %q = %v, want %v", tc.change, got, tc.want)
		}
	}
}
