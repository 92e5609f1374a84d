package v1alpha1_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/api/v1alpha1/validationcases"
)

// membersGroup is a valid SyncGroup that lists its members.
func membersGroup(name string) *syncv1.SyncGroup { return validationcases.MembersGroup(name) }

// replicasGroup is a valid SyncGroup that picks its members by selector.
func replicasGroup(name string) *syncv1.SyncGroup {
	return &syncv1.SyncGroup{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: syncv1.SyncGroupSpec{
			Path:         "/usr/jails/web/data",
			Jail:         "web",
			Replicas:     ptr.To[int32](3),
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"jailsync.io/pool": "www"}},
		},
	}
}

func nodes(n int) []syncv1.Member {
	ms := make([]syncv1.Member, n)
	for i := range ms {
		ms[i] = syncv1.Member{Node: fmt.Sprintf("node-%d", i)}
	}
	return ms
}

func TestSyncGroup_RejectsInvalidSpecs(t *testing.T) {
	tests := validationcases.Invalid()
	ctx := testContext(t)
	for i, tc := range tests {
		t.Run(tc.Name, func(t *testing.T) {
			sg := validationcases.MembersGroup(fmt.Sprintf("invalid-%d", i))
			tc.Mutate(&sg.Spec)
			err := k8sClient.Create(ctx, sg)
			if err == nil {
				_ = k8sClient.Delete(ctx, sg)
				t.Fatalf("the API server accepted an invalid SyncGroup: %+v", sg.Spec)
			}
			t.Log(err)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, w := range tc.Want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestSyncGroup_AcceptsValidSpecs(t *testing.T) {
	tests := []struct {
		name  string
		group *syncv1.SyncGroup
	}{
		{"members with IPv4 and IPv6 addresses", membersGroup("valid-members")},
		{"replicas with a nodeSelector inside a jail", replicasGroup("valid-replicas")},
		{"members without addresses, every optional field set", func() *syncv1.SyncGroup {
			sg := membersGroup("valid-full")
			for i := range sg.Spec.Members {
				sg.Spec.Members[i].Address = ""
			}
			sg.Spec.Settle = &metav1.Duration{Duration: 0}
			sg.Spec.ResyncInterval = &metav1.Duration{Duration: 0}
			sg.Spec.Exclude = []syncv1.ExcludePattern{"*.tmp", "/cache/", "**/.git/", "#hash-named"}
			sg.Spec.Deletes = syncv1.DeletesKeep
			sg.Spec.Transport = syncv1.Transport{
				SecretRef:      &syncv1.SecretReference{Name: "www-transport"},
				BandwidthLimit: ptr.To(resource.MustParse("10Mi")),
				Compress:       true,
			}
			sg.Spec.Suspend = true
			return sg
		}()},
		{"32 members, the most allowed", func() *syncv1.SyncGroup {
			sg := membersGroup("valid-32")
			sg.Spec.Members = nodes(32)
			return sg
		}()},
		{"1023-byte path, the longest allowed", func() *syncv1.SyncGroup {
			sg := membersGroup("valid-long-path")
			sg.Spec.Path = "/" + strings.Repeat("a", 1022)
			return sg
		}()},
	}
	ctx := testContext(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := k8sClient.Create(ctx, tc.group); err != nil {
				t.Fatalf("the API server refused a valid SyncGroup: %v", err)
			}
			t.Cleanup(func() { _ = k8sClient.Delete(ctx, tc.group) })
		})
	}
}

func TestSyncGroup_Defaults(t *testing.T) {
	ctx := testContext(t)
	sg := membersGroup("defaults")
	if err := k8sClient.Create(ctx, sg); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, sg) })

	got := &syncv1.SyncGroup{}
	if err := k8sClient.Get(ctx, keyOf(sg), got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Spec.Settle == nil || got.Spec.Settle.Duration != 250*time.Millisecond {
		t.Errorf("settle default: got %v, want 250ms", got.Spec.Settle)
	}
	if got.Spec.ResyncInterval == nil || got.Spec.ResyncInterval.Duration != time.Hour {
		t.Errorf("resyncInterval default: got %v, want 1h", got.Spec.ResyncInterval)
	}
	if got.Spec.Deletes != syncv1.DeletesPropagate {
		t.Errorf("deletes default: got %q, want %q", got.Spec.Deletes, syncv1.DeletesPropagate)
	}
	if got.Spec.Conflicts != syncv1.ConflictsNewestWins {
		t.Errorf("conflicts default: got %q, want %q", got.Spec.Conflicts, syncv1.ConflictsNewestWins)
	}
}

func TestSyncGroup_ImmutableFields(t *testing.T) {
	tests := []struct {
		name   string
		create func(string) *syncv1.SyncGroup
		mutate func(*syncv1.SyncGroupSpec)
		want   string
	}{
		{"path changed", membersGroup, func(s *syncv1.SyncGroupSpec) { s.Path = "/data/other" },
			"path is immutable"},
		{"jail added", membersGroup, func(s *syncv1.SyncGroupSpec) { s.Jail = "web" },
			"jail is immutable"},
		{"jail changed", replicasGroup, func(s *syncv1.SyncGroupSpec) { s.Jail = "db" },
			"jail is immutable"},
		{"jail removed", replicasGroup, func(s *syncv1.SyncGroupSpec) { s.Jail = "" },
			"jail is immutable"},
	}
	ctx := testContext(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sg := tc.create(fmt.Sprintf("immutable-%d", i))
			if err := k8sClient.Create(ctx, sg); err != nil {
				t.Fatalf("create: %v", err)
			}
			t.Cleanup(func() { _ = k8sClient.Delete(ctx, sg) })
			tc.mutate(&sg.Spec)
			err := k8sClient.Update(ctx, sg)
			if err == nil {
				t.Fatalf("the API server accepted a change of an immutable field: %+v", sg.Spec)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not say %q:\n%v", tc.want, err)
			}
		})
	}

	t.Run("membership may change", func(t *testing.T) {
		sg := membersGroup("mutable-members")
		if err := k8sClient.Create(ctx, sg); err != nil {
			t.Fatalf("create: %v", err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, sg) })
		sg.Spec.Members = append(sg.Spec.Members, syncv1.Member{Node: "web-4", Address: "127.0.0.5:7873"})
		sg.Spec.Suspend = true
		if err := k8sClient.Update(ctx, sg); err != nil {
			t.Fatalf("update of members and suspend refused: %v", err)
		}
	})
}
