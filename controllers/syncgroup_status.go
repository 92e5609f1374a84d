package controllers

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
)

// computeStatus derives every controller-owned status field of sg from its
// spec and from the members and peers entries in its status. It writes each
// owned condition every time, so none goes stale.
func computeStatus(sg *syncv1.SyncGroup) {
	st := &sg.Status
	pruneDeparted(sg)
	st.ObservedGeneration = sg.Generation
	st.MemberCount = desiredMembers(&sg.Spec)
	st.ReadyMembers = countPhase(st.Members, syncv1.MemberInSync)
	st.MembersReady = fmt.Sprintf("%d/%d", st.ReadyMembers, st.MemberCount)
	st.MaxLagMilliseconds = maxLag(st.Peers)

	setReadyCondition(sg)
	setSyncedCondition(sg)
	setDegradedCondition(sg)
}

// pruneDeparted drops the members and peers entries of nodes that are no
// longer listed members (docs/api.md): counted, a replaced member's
// InSync made the group Ready before its successor reported, and a
// removed member's error kept it Degraded for good. Groups of replicas
// keep every entry: their members are not selected by the controller yet.
func pruneDeparted(sg *syncv1.SyncGroup) {
	if sg.Spec.Replicas != nil {
		return
	}
	listed := make(map[string]bool, len(sg.Spec.Members))
	for _, m := range sg.Spec.Members {
		listed[m.Node] = true
	}
	st := &sg.Status
	st.Members = slices.DeleteFunc(st.Members, func(m syncv1.MemberStatus) bool { return !listed[m.Node] })
	st.Peers = slices.DeleteFunc(st.Peers, func(p syncv1.PeerStatus) bool { return !listed[p.Source] || !listed[p.Target] })
}

func desiredMembers(spec *syncv1.SyncGroupSpec) int32 {
	if spec.Replicas != nil {
		return *spec.Replicas
	}
	return int32(len(spec.Members))
}

func countPhase(members []syncv1.MemberStatus, phase syncv1.MemberPhase) int32 {
	var n int32
	for _, m := range members {
		if m.Phase == phase {
			n++
		}
	}
	return n
}

func maxLag(peers []syncv1.PeerStatus) int64 {
	var lag int64
	for _, p := range peers {
		lag = max(lag, p.LagMilliseconds)
	}
	return lag
}

// setReadyCondition: True when as many members as desired have reported
// and none is Pending or Unreachable.
func setReadyCondition(sg *syncv1.SyncGroup) {
	st := &sg.Status
	pending := st.MemberCount - int32(len(st.Members)) + countPhase(st.Members, syncv1.MemberPending)
	unreachable := countPhase(st.Members, syncv1.MemberUnreachable)
	c := metav1.Condition{Type: syncv1.ReadyCondition, ObservedGeneration: sg.Generation}
	switch {
	case sg.Spec.Suspend:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, syncv1.ReasonSuspended, "spec.suspend is true: replication is stopped on every member"
	case unreachable > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, syncv1.ReasonMembersUnreachable, fmt.Sprintf("%d of %d members are unreachable", unreachable, st.MemberCount)
	case pending > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, syncv1.ReasonMembersPending, fmt.Sprintf("%d of %d members have not reported yet", pending, st.MemberCount)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, syncv1.ReasonMembersReady, fmt.Sprintf("all %d members are serving the group", st.MemberCount)
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// setSyncedCondition: True when every member is InSync and no peer has
// anything pending or a last error.
func setSyncedCondition(sg *syncv1.SyncGroup) {
	st := &sg.Status
	var pendingFiles int64
	var failing int
	for _, p := range st.Peers {
		pendingFiles += p.PendingFiles
		if p.LastError != "" {
			failing++
		}
	}
	c := metav1.Condition{Type: syncv1.SyncedCondition, ObservedGeneration: sg.Generation}
	switch {
	case failing > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, syncv1.ReasonSyncErrors, fmt.Sprintf("%d peer connections report errors", failing)
	case pendingFiles > 0 || st.ReadyMembers < st.MemberCount:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, syncv1.ReasonLagging,
			fmt.Sprintf("%d of %d members in sync, %d files pending, max lag %dms", st.ReadyMembers, st.MemberCount, pendingFiles, st.MaxLagMilliseconds)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, syncv1.ReasonInSync, fmt.Sprintf("all %d members hold the same data", st.MemberCount)
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// setDegradedCondition (negative polarity): True when a member is
// unreachable or a peer connection keeps failing.
func setDegradedCondition(sg *syncv1.SyncGroup) {
	st := &sg.Status
	c := metav1.Condition{Type: syncv1.DegradedCondition, ObservedGeneration: sg.Generation,
		Status: metav1.ConditionFalse, Reason: syncv1.ReasonAsExpected, Message: "replication is not impaired"}
	for _, p := range st.Peers {
		if p.LastError != "" {
			c.Status, c.Reason, c.Message = metav1.ConditionTrue, syncv1.ReasonSyncErrors, fmt.Sprintf("%s to %s: %s", p.Source, p.Target, p.LastError)
			break
		}
	}
	if n := countPhase(st.Members, syncv1.MemberUnreachable); n > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, syncv1.ReasonMembersUnreachable, fmt.Sprintf("%d members are unreachable", n)
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

func statusEqual(a, b *syncv1.SyncGroup) bool {
	return equality.Semantic.DeepEqual(a.Status, b.Status)
}
