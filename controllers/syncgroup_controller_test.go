package controllers

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/internal/poll"
)

// applyStatus writes status fields by server-side apply as manager.
func applyStatus(ctx context.Context, name, manager string, status map[string]any) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": syncv1.GroupVersion.String(), "kind": "SyncGroup",
		"metadata": map[string]any{"name": name}, "status": status,
	}}
	return k8sClient.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager), client.ForceOwnership)
}

func conditionIs(sg *syncv1.SyncGroup, typ string, status metav1.ConditionStatus) error {
	c := meta.FindStatusCondition(sg.Status.Conditions, typ)
	switch {
	case c == nil:
		return fmt.Errorf("%s not set, want %s", typ, status)
	case c.Status != status || c.ObservedGeneration != sg.Generation:
		return fmt.Errorf("%s is %s (%s: %s, generation %d), want %s", typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, status)
	}
	return nil
}

func TestSyncGroupReconciler_ConditionsFollowAgentReports(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sg := &syncv1.SyncGroup{
		ObjectMeta: metav1.ObjectMeta{Name: "www"},
		Spec: syncv1.SyncGroupSpec{Path: "/data/www", Members: []syncv1.Member{
			{Node: "web-1", Address: "127.0.0.2:7873"}, {Node: "web-2", Address: "127.0.0.3:7873"}}},
	}
	if err := k8sClient.Create(ctx, sg); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), sg) })

	get := func() (*syncv1.SyncGroup, error) {
		got := &syncv1.SyncGroup{}
		return got, k8sClient.Get(ctx, client.ObjectKeyFromObject(sg), got)
	}

	t.Run("no reports: not ready, 0/2", func(t *testing.T) {
		poll.Until(t, 20*time.Second, func() error {
			got, err := get()
			if err != nil {
				return err
			}
			if got.Status.MembersReady != "0/2" {
				return fmt.Errorf("membersReady is %q, want 0/2", got.Status.MembersReady)
			}
			return conditionIs(got, syncv1.ReadyCondition, metav1.ConditionFalse)
		})
	})

	t.Run("members in sync and peers idle: Ready and Synced, kubectl wait agrees", func(t *testing.T) {
		err := applyStatus(ctx, sg.Name, "test-membership", map[string]any{"members": []any{
			map[string]any{"node": "web-1", "phase": "InSync"}, map[string]any{"node": "web-2", "phase": "InSync"}}})
		if err != nil {
			t.Fatalf("apply members: %v", err)
		}
		for _, agent := range []struct{ src, dst string }{{"web-1", "web-2"}, {"web-2", "web-1"}} {
			err := applyStatus(ctx, sg.Name, "jailsync-agent-"+agent.src, map[string]any{"peers": []any{
				map[string]any{"source": agent.src, "target": agent.dst, "filesSynced": int64(10)}}})
			if err != nil {
				t.Fatalf("apply peers of %s: %v", agent.src, err)
			}
		}
		kc, err := admin.Kubectl()
		if err != nil {
			t.Fatalf("kubectl: %v", err)
		}
		for _, cond := range []string{"Ready", "Synced"} {
			stdout, stderr, err := kc.Run("wait", "--for=condition="+cond, "--timeout=30s", "syncgroup/"+sg.Name)
			if err != nil {
				out, _ := io.ReadAll(stdout)
				errOut, _ := io.ReadAll(stderr)
				t.Fatalf("kubectl wait --for=condition=%s: %v\n%s%s", cond, err, out, errOut)
			}
		}
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.MembersReady != "2/2" || got.Status.ReadyMembers != 2 || got.Status.MemberCount != 2 {
			t.Errorf("members summary %q (%d/%d), want 2/2", got.Status.MembersReady, got.Status.ReadyMembers, got.Status.MemberCount)
		}
	})

	t.Run("a failing peer: Degraded, not Synced, max lag shown", func(t *testing.T) {
		err := applyStatus(ctx, sg.Name, "jailsync-agent-web-1", map[string]any{"peers": []any{
			map[string]any{"source": "web-1", "target": "web-2", "pendingFiles": int64(3), "lagMilliseconds": int64(2500), "lastError": "rsync exit 10: connection refused"}}})
		if err != nil {
			t.Fatalf("apply peers: %v", err)
		}
		poll.Until(t, 20*time.Second, func() error {
			got, err := get()
			if err != nil {
				return err
			}
			if err := conditionIs(got, syncv1.DegradedCondition, metav1.ConditionTrue); err != nil {
				return err
			}
			if err := conditionIs(got, syncv1.SyncedCondition, metav1.ConditionFalse); err != nil {
				return err
			}
			if got.Status.MaxLagMilliseconds != 2500 {
				return fmt.Errorf("maxLagMilliseconds is %d, want 2500", got.Status.MaxLagMilliseconds)
			}
			// The other agent's entry survives the controller's writes.
			if len(got.Status.Peers) != 2 {
				return fmt.Errorf("%d peers entries, want 2: %+v", len(got.Status.Peers), got.Status.Peers)
			}
			return nil
		})
	})
}
