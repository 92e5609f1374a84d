package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
)

// SyncGroupReconciler reconciles SyncGroups.
//
// Today it derives the summary fields and conditions of status from the
// spec and the entries the agents write; membership resolution for replicas,
// leases, finalizers and events belong to the operator capability
// (docs/design.md).
type SyncGroupReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncgroups,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncgroups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncgroups/finalizers,verbs=update
// +kubebuilder:rbac:groups=sync.jailsync.io,resources=syncagents,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings one SyncGroup's status up to date.
func (r *SyncGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sg := &syncv1.SyncGroup{}
	if err := r.Get(ctx, req.NamespacedName, sg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := sg.DeepCopy()

	computeStatus(sg)

	if statusEqual(before, sg) {
		return ctrl.Result{}, nil
	}
	if err := r.Status().Patch(ctx, sg, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, fmt.Errorf("patch status of syncgroup %s: %w", sg.Name, err)
	}
	log.FromContext(ctx).V(1).Info("status updated", "ready", sg.Status.MembersReady, "maxLagMilliseconds", sg.Status.MaxLagMilliseconds)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler with mgr.
func (r *SyncGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&syncv1.SyncGroup{}).
		Named("syncgroup").
		Complete(r)
}
