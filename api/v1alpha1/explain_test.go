package v1alpha1_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// fieldPaths lists every property below schema as dotted paths under prefix.
func fieldPaths(prefix string, schema apiextensionsv1.JSONSchemaProps) []string {
	var paths []string
	for name, prop := range schema.Properties {
		p := prefix + "." + name
		paths = append(paths, p)
		paths = append(paths, fieldPaths(p, prop)...)
		if prop.Items != nil && prop.Items.Schema != nil {
			paths = append(paths, fieldPaths(p, *prop.Items.Schema)...)
		}
	}
	sort.Strings(paths)
	return paths
}

// explainDescription runs the real kubectl explain against the envtest API
// server and returns the text under DESCRIPTION.
func explainDescription(t *testing.T, field string) string {
	t.Helper()
	out, err := explain(field)
	if err != nil {
		t.Fatal(err)
	}
	_, desc, ok := strings.Cut(out, "DESCRIPTION:\n")
	if !ok {
		t.Fatalf("kubectl explain %s printed no DESCRIPTION:\n%s", field, out)
	}
	desc, _, _ = strings.Cut(desc, "\nFIELDS:")
	return strings.TrimSpace(desc)
}

// explain runs kubectl explain field and returns its output.
func explain(field string) (string, error) {
	kc, err := kubectl.Kubectl()
	if err != nil {
		return "", fmt.Errorf("kubectl: %w", err)
	}
	stdout, stderr, err := kc.Run("explain", field)
	if err != nil {
		errText, _ := io.ReadAll(stderr)
		return "", fmt.Errorf("kubectl explain %s: %w: %s", field, err, errText)
	}
	out, err := io.ReadAll(stdout)
	return string(out), err
}

func TestSyncGroup_KubectlExplainDescribesEveryField(t *testing.T) {
	// The API server publishes a new CRD's OpenAPI schema a moment after the
	// CRD is established: wait for it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := explain("syncgroup")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CRD's schema was not published within 60s: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "sync.jailsync.io_syncgroups.yaml"))
	if err != nil {
		t.Fatalf("read CRD: %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatalf("parse CRD: %v", err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	fields := append([]string{"syncgroup.spec"}, fieldPaths("syncgroup.spec", spec)...)
	if len(fields) < 20 {
		t.Fatalf("found only %d spec fields in the CRD schema: %v", len(fields), fields)
	}
	for _, f := range fields {
		t.Run(f, func(t *testing.T) {
			desc := explainDescription(t, f)
			if desc == "" || desc == "<empty>" {
				t.Errorf("kubectl explain %s shows no description", f)
			}
		})
	}
}
