// Command manager runs the jailsync controller: it reconciles SyncGroups.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/controllers"
)

func main() {
	var (
		metricsAddr    string
		probeAddr      string
		leaderElection bool
		namespace      string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&leaderElection, "leader-elect", false, "elect a leader, so that several replicas can run with one active")
	flag.StringVar(&namespace, "namespace", syncv1.DefaultNamespace, "jailsync's own namespace: transport Secrets, agent Leases, the leader-election Lease")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	if err := run(metricsAddr, probeAddr, leaderElection, namespace); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(metricsAddr, probeAddr string, leaderElection bool, namespace string) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register client-go types: %w", err)
	}
	if err := syncv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register jailsync types: %w", err)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElection,
		LeaderElectionID:        "jailsync-controller",
		LeaderElectionNamespace: namespace,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := (&controllers.SyncGroupReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up syncgroup controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readyz check: %w", err)
	}
	ctrl.Log.Info("starting manager", "namespace", namespace)
	return mgr.Start(ctrl.SetupSignalHandler())
}
