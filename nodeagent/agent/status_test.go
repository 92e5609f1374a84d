package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
)

// TestReport_JSON: every peers field is written, zeros included, with the
// CRD's names, and the report reads back as it was.
func TestReport_JSON(t *testing.T) {
	r := Report{Group: "www", Node: "a", Peers: []syncv1.PeerStatus{{Source: "a", Target: "b"}, {Source: "a", Target: "c", PendingFiles: 3, LastError: "x"}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Group string           `json:"group"`
		Peers []map[string]any `json:"peers"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	want := []string{"source", "target", "pendingFiles", "pendingBytes", "lastSyncTime", "lagMilliseconds", "filesSynced", "bytesSynced", "conflicts", "lastError"}
	if raw.Group != "www" || len(raw.Peers) != 2 {
		t.Fatalf("report %s", b)
	}
	for _, p := range raw.Peers {
		for _, k := range want {
			if _, ok := p[k]; !ok {
				t.Errorf("peers entry %v has no %q", p, k)
			}
		}
		if len(p) != len(want) {
			t.Errorf("peers entry %v has other keys than %v", p, want)
		}
	}
	if raw.Peers[0]["pendingFiles"] != float64(0) {
		t.Errorf("pendingFiles of an idle peer = %v, want 0", raw.Peers[0]["pendingFiles"])
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Peers, r.Peers) {
		t.Errorf("read back %+v, want %+v", back.Peers, r.Peers)
	}
}
