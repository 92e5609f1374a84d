package v1alpha1_test

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
)

func keyOf(obj client.Object) client.ObjectKey { return client.ObjectKeyFromObject(obj) }

// applyPeers writes status.peers entries by server-side apply through the
// status subresource, as an agent does: manager owns exactly the entries it
// sends.
func applyPeers(ctx context.Context, group, manager string, peers ...map[string]any) error {
	list := make([]any, len(peers))
	for i, p := range peers {
		list[i] = p
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": syncv1.GroupVersion.String(),
		"kind":       "SyncGroup",
		"metadata":   map[string]any{"name": group},
		"status":     map[string]any{"peers": list},
	}}
	return k8sClient.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(manager), client.ForceOwnership)
}

func peer(source, target string, pendingFiles int64, lastError string) map[string]any {
	p := map[string]any{"source": source, "target": target, "pendingFiles": pendingFiles, "lagMilliseconds": int64(40)}
	if lastError != "" {
		p["lastError"] = lastError
	}
	return p
}

// peerKeys lists the group's status.peers as "source>target=pendingFiles".
func peerKeys(t *testing.T, ctx context.Context, name string) []string {
	t.Helper()
	sg := &syncv1.SyncGroup{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, sg); err != nil {
		t.Fatalf("get: %v", err)
	}
	var keys []string
	for _, p := range sg.Status.Peers {
		keys = append(keys, p.Source+">"+p.Target+"="+strconv.FormatInt(p.PendingFiles, 10))
	}
	sort.Strings(keys)
	return keys
}

func TestSyncGroupStatus_ServerSideApplyByTwoAgents(t *testing.T) {
	ctx := testContext(t)
	sg := membersGroup("status-ssa")
	if err := k8sClient.Create(ctx, sg); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, sg) })

	steps := []struct {
		name    string
		manager string
		peers   []map[string]any
		want    []string
	}{
		{"agent web-1 reports its peers", "jailsync-agent-web-1",
			[]map[string]any{peer("web-1", "web-2", 3, ""), peer("web-1", "web-3.example.org", 5, "")},
			[]string{"web-1>web-2=3", "web-1>web-3.example.org=5"}},
		{"agent web-2 reports its peers without erasing web-1's", "jailsync-agent-web-2",
			[]map[string]any{peer("web-2", "web-1", 7, "connection refused"), peer("web-2", "web-3.example.org", 0, "")},
			[]string{"web-1>web-2=3", "web-1>web-3.example.org=5", "web-2>web-1=7", "web-2>web-3.example.org=0"}},
		{"agent web-1 updates one entry and drops the other, web-2's stay", "jailsync-agent-web-1",
			[]map[string]any{peer("web-1", "web-2", 0, "")},
			[]string{"web-1>web-2=0", "web-2>web-1=7", "web-2>web-3.example.org=0"}},
		{"agent web-2 updates its entries, web-1's stay", "jailsync-agent-web-2",
			[]map[string]any{peer("web-2", "web-1", 1, ""), peer("web-2", "web-3.example.org", 2, "")},
			[]string{"web-1>web-2=0", "web-2>web-1=1", "web-2>web-3.example.org=2"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := applyPeers(ctx, sg.Name, st.manager, st.peers...); err != nil {
				t.Fatalf("apply status as %s: %v", st.manager, err)
			}
			got := peerKeys(t, ctx, sg.Name)
			if !slices.Equal(got, st.want) {
				t.Fatalf("status.peers after %s applied:\n got %v\nwant %v", st.manager, got, st.want)
			}
		})
	}

	t.Run("an entry without target is refused", func(t *testing.T) {
		err := applyPeers(ctx, sg.Name, "jailsync-agent-web-3", map[string]any{"source": "web-3.example.org"})
		if err == nil {
			t.Fatal("the API server accepted a peers entry without target")
		}
	})

	t.Run("status writes do not touch the spec", func(t *testing.T) {
		got := &syncv1.SyncGroup{}
		if err := k8sClient.Get(ctx, keyOf(sg), got); err != nil {
			t.Fatalf("get: %v", err)
		}
		if got.Spec.Path != sg.Spec.Path || len(got.Spec.Members) != len(sg.Spec.Members) {
			t.Fatalf("spec changed by status writes: %+v", got.Spec)
		}
	})
}
