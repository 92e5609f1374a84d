// Command localcluster runs a local control plane (kube-apiserver and etcd
// from bin/k8s, through envtest) with jailsync's CRDs and samples installed,
// writes its kubeconfig, and runs a command (the manager) against it until
// interrupted. It is the development stand-in for a cluster: `make run`.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	crds := flag.String("crds", "config/crd/bases", "directory of CRD manifests to install")
	samples := flag.String("samples", "", "directory of manifests to create after the CRDs (files named *.yaml, kustomization.yaml skipped)")
	kubeconfig := flag.String("kubeconfig-out", "bin/localcluster.kubeconfig", "where to write the admin kubeconfig")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: localcluster [flags] -- command [args...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *crds, *samples, *kubeconfig, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, crds, samples, kubeconfig string, command []string) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make run`, which builds the control plane into bin/k8s")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()

	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("build kubeconfig: %w", err)
	}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	fmt.Fprintf(os.Stderr, "control plane at %s; kubeconfig in %s (export KUBECONFIG=%s)\n", cfg.Host, kubeconfig, kubeconfig)

	if samples != "" {
		c, err := client.New(cfg, client.Options{})
		if err != nil {
			return fmt.Errorf("build client: %w", err)
		}
		if err := createManifests(ctx, c, samples); err != nil {
			return err
		}
	}
	if len(command) == 0 {
		<-ctx.Done()
		return nil
	}
	abs, _ := filepath.Abs(kubeconfig)
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+abs)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", command[0], err)
	}
	return nil
}

// createManifests creates every object in the YAML files of dir.
func createManifests(ctx context.Context, c client.Client, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read %s: %w", f, err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("decode %s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if err := c.Create(ctx, u); err != nil {
				return fmt.Errorf("create %s %s from %s: %w", u.GetKind(), u.GetName(), f, err)
			}
			fmt.Fprintf(os.Stderr, "created %s %s\n", u.GetKind(), u.GetName())
		}
	}
	return nil
}
