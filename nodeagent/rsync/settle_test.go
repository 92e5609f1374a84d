package rsync

import "testing"

// TestOutput_settle: a path's outcome from its itemized line, its error line and
// the run's exit code. A file the client logged as sent is confirmed only
// by a run that went to its end: the client logs it once the data is
// sent, before the receiver has put it in place.
func TestOutput_settle(t *testing.T) {
	sent := item{change: "<f+++++++++", size: 5, transferred: 5}
	tests := []struct {
		name    string
		it      item
		hasItem bool
		pe      pathError
		hasErr  bool
		m       mode
		code    int
		// doubt: errors that named no listed path
		doubt bool
		want  Outcome
	}{
		{name: "sent, run ended well", it: sent, hasItem: true, want: Sent},
		{name: "sent, some other file failed (23)", it: sent, hasItem: true, code: 23, want: Sent},
		{name: "sent, some other file vanished (24)", it: sent, hasItem: true, code: 24, want: Sent},
		{name: "sent, then the receiver was killed (20)", it: sent, hasItem: true, code: 20, want: Unconfirmed},
		{name: "sent, then the connection broke (12)", it: sent, hasItem: true, code: 12, want: Unconfirmed},
		{name: "sent, then a timeout (30)", it: sent, hasItem: true, code: 30, want: Unconfirmed},
		{name: "sent, client killed (-1)", it: sent, hasItem: true, code: -1, want: Unconfirmed},
		{name: "unchanged on the peer, run cut", it: item{change: ".f         "}, hasItem: true, code: 20, want: Unchanged},
		{name: "attributes set by the peer, run cut", it: item{change: ".f..t......"}, hasItem: true, code: 12, want: Updated},
		{name: "directory made, run cut: itemized before mkdir", it: item{change: "cd+++++++++"}, hasItem: true, code: 20, want: Unconfirmed},
		{name: "directory times, run cut: set at the run's end", it: item{change: ".d..t......"}, hasItem: true, code: 12, want: Unconfirmed},
		{name: "directory made, run ended well", it: item{change: "cd+++++++++"}, hasItem: true, want: Updated},
		{name: "link made by the peer, run cut", it: item{change: "cL+++++++++"}, hasItem: true, code: 12, want: Updated},
		{name: "deleted by the peer, run cut", it: item{change: "*deleting  "}, hasItem: true, m: modeDelete, code: 20, want: Deleted},
		{name: "sent, exit 23 with an error that names no path (a discarded temp file)", it: sent, hasItem: true, code: 23, doubt: true, want: Unconfirmed},
		{name: "attributes set, exit 23 with an error that names no path (setting them may have failed)", it: item{change: ".f...p....."}, hasItem: true, code: 23, doubt: true, want: Unconfirmed},
		{name: "directory made, exit 23 with an error that names no path", it: item{change: "cd+++++++++"}, hasItem: true, code: 23, doubt: true, want: Unconfirmed},
		{name: "deleted, exit 23 with an error that names no path", it: item{change: "*deleting  "}, hasItem: true, m: modeDelete, code: 23, doubt: true, want: Deleted},
		{name: "unchanged, exit 23 with an error that names no path", it: item{change: ".f         "}, hasItem: true, code: 23, doubt: true, want: Unchanged},
		{name: "sent, exit 24 with an error that names no path", it: sent, hasItem: true, code: 24, doubt: true, want: Sent},
		{name: "named in an error", it: sent, hasItem: true, pe: pathError{reason: "rename failed"}, hasErr: true, code: 23, want: Failed},
		{name: "vanished", pe: pathError{vanished: true, reason: "file has vanished"}, hasErr: true, code: 24, want: Vanished},
		{name: "a delete's path made again here and sent by rsync instead (--delete-missing-args reads what exists)", it: item{change: "<f.st......"}, hasItem: true, m: modeDelete, want: Present},
		{name: "a delete's path made again here, the peer's the same", it: item{change: ".f         "}, hasItem: true, m: modeDelete, want: Present},
		{name: "a delete's directory, vanished as the missing parent of another listed path, and deleted", it: item{change: "*deleting  "}, hasItem: true,
			pe: pathError{vanished: true, reason: "file has vanished"}, hasErr: true, m: modeDelete, code: 24, want: Deleted},
		{name: "a delete's path said to have vanished, and nothing itemized", pe: pathError{vanished: true, reason: "file has vanished"}, hasErr: true, m: modeDelete, code: 24, want: Absent},
		{name: "nothing said, run cut", code: 12, want: Unconfirmed},
		{name: "nothing said about a delete, run ended well", m: modeDelete, want: Absent},
		{name: "nothing said about a push, run ended well", want: Vanished},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := output{code: tc.code, items: map[int]item{}, errs: map[int]pathError{}}
			if tc.hasItem {
				out.items[0] = tc.it
			}
			if tc.hasErr {
				out.errs[0] = tc.pe
			}
			if tc.doubt {
				out.unattributed = 1
			}
			var r PathResult
			out.settle(&r, 0, tc.m)
			if r.Outcome != tc.want {
				t.Errorf("outcome %v (%q), want %v", r.Outcome, r.Reason, tc.want)
			}
		})
	}
}
