package controllers

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
)

func TestComputeStatus(t *testing.T) {
	members := []syncv1.Member{{Node: "a"}, {Node: "b"}, {Node: "c"}}
	inSync := []syncv1.MemberStatus{{Node: "a", Phase: syncv1.MemberInSync}, {Node: "b", Phase: syncv1.MemberInSync}, {Node: "c", Phase: syncv1.MemberInSync}}
	type want struct {
		membersReady        string
		maxLag              int64
		ready, synced, degr metav1.ConditionStatus
		readyReason         string
		syncedReason        string
	}
	tests := []struct {
		name   string
		spec   syncv1.SyncGroupSpec
		status syncv1.SyncGroupStatus
		want   want
	}{
		{"nothing reported yet",
			syncv1.SyncGroupSpec{Members: members}, syncv1.SyncGroupStatus{},
			want{"0/3", 0, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionFalse, syncv1.ReasonMembersPending, syncv1.ReasonLagging}},
		{"all in sync",
			syncv1.SyncGroupSpec{Members: members}, syncv1.SyncGroupStatus{Members: inSync,
				Peers: []syncv1.PeerStatus{{Source: "a", Target: "b"}, {Source: "b", Target: "a"}}},
			want{"3/3", 0, metav1.ConditionTrue, metav1.ConditionTrue, metav1.ConditionFalse, syncv1.ReasonMembersReady, syncv1.ReasonInSync}},
		{"pending files lag",
			syncv1.SyncGroupSpec{Members: members}, syncv1.SyncGroupStatus{Members: inSync,
				Peers: []syncv1.PeerStatus{{Source: "a", Target: "b", PendingFiles: 4, LagMilliseconds: 120}, {Source: "b", Target: "c", LagMilliseconds: 30}}},
			want{"3/3", 120, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, syncv1.ReasonMembersReady, syncv1.ReasonLagging}},
		{"a peer error degrades",
			syncv1.SyncGroupSpec{Members: members}, syncv1.SyncGroupStatus{Members: inSync,
				Peers: []syncv1.PeerStatus{{Source: "a", Target: "b", LastError: "rsync exit 5"}}},
			want{"3/3", 0, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionTrue, syncv1.ReasonMembersReady, syncv1.ReasonSyncErrors}},
		{"an unreachable member",
			syncv1.SyncGroupSpec{Members: members}, syncv1.SyncGroupStatus{Members: []syncv1.MemberStatus{
				{Node: "a", Phase: syncv1.MemberInSync}, {Node: "b", Phase: syncv1.MemberInSync}, {Node: "c", Phase: syncv1.MemberUnreachable}}},
			want{"2/3", 0, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, syncv1.ReasonMembersUnreachable, syncv1.ReasonLagging}},
		{"replicas count the desired members",
			syncv1.SyncGroupSpec{Replicas: ptr.To[int32](4), NodeSelector: &metav1.LabelSelector{}}, syncv1.SyncGroupStatus{Members: inSync},
			want{"3/4", 0, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionFalse, syncv1.ReasonMembersPending, syncv1.ReasonLagging}},
		{"a member replaced: the departed one's InSync does not count",
			syncv1.SyncGroupSpec{Members: []syncv1.Member{{Node: "a"}, {Node: "b"}, {Node: "d"}}}, syncv1.SyncGroupStatus{Members: slices.Clone(inSync)},
			want{"2/3", 0, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionFalse, syncv1.ReasonMembersPending, syncv1.ReasonLagging}},
		{"a member removed while another is pending",
			syncv1.SyncGroupSpec{Members: members[:2]}, syncv1.SyncGroupStatus{Members: []syncv1.MemberStatus{
				{Node: "a", Phase: syncv1.MemberInSync}, {Node: "b", Phase: syncv1.MemberPending}, {Node: "c", Phase: syncv1.MemberInSync}}},
			want{"1/2", 0, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionFalse, syncv1.ReasonMembersPending, syncv1.ReasonLagging}},
		{"a dead member removed: its entries go with it",
			syncv1.SyncGroupSpec{Members: members[:2]}, syncv1.SyncGroupStatus{Members: []syncv1.MemberStatus{
				{Node: "a", Phase: syncv1.MemberInSync}, {Node: "b", Phase: syncv1.MemberInSync}, {Node: "c", Phase: syncv1.MemberUnreachable}},
				Peers: []syncv1.PeerStatus{{Source: "a", Target: "b"}, {Source: "a", Target: "c", LastError: "rsync exit 10", LagMilliseconds: 90000}}},
			want{"2/2", 0, metav1.ConditionTrue, metav1.ConditionTrue, metav1.ConditionFalse, syncv1.ReasonMembersReady, syncv1.ReasonInSync}},
		{"suspended",
			syncv1.SyncGroupSpec{Members: members, Suspend: true}, syncv1.SyncGroupStatus{Members: inSync},
			want{"3/3", 0, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, syncv1.ReasonSuspended, syncv1.ReasonInSync}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sg := &syncv1.SyncGroup{ObjectMeta: metav1.ObjectMeta{Generation: 7}, Spec: tc.spec, Status: tc.status}
			computeStatus(sg)
			st := sg.Status
			if st.ObservedGeneration != 7 {
				t.Errorf("observedGeneration = %d, want 7", st.ObservedGeneration)
			}
			if st.MembersReady != tc.want.membersReady {
				t.Errorf("membersReady = %q, want %q", st.MembersReady, tc.want.membersReady)
			}
			if st.MaxLagMilliseconds != tc.want.maxLag {
				t.Errorf("maxLagMilliseconds = %d, want %d", st.MaxLagMilliseconds, tc.want.maxLag)
			}
			check := func(typ string, status metav1.ConditionStatus, reason string) {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Fatalf("condition %s not set", typ)
				}
				if c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != 7 {
					t.Errorf("%s = %s/%s (generation %d), want %s/%s", typ, c.Status, c.Reason, c.ObservedGeneration, status, reason)
				}
			}
			check(syncv1.ReadyCondition, tc.want.ready, tc.want.readyReason)
			check(syncv1.SyncedCondition, tc.want.synced, tc.want.syncedReason)
			check(syncv1.DegradedCondition, tc.want.degr, "")
		})
	}
}
