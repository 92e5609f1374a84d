package standalone

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/api/v1alpha1/validationcases"
)

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func toYAML(t *testing.T, sg *syncv1.SyncGroup) string {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sg)
	if err != nil {
		t.Fatal(err)
	}
	delete(obj, "status")
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestValidator_SameMessagesAsTheAPIServer runs the cases that the envtest
// suite applies to the real API server through standalone validation.
func TestValidator_SameMessagesAsTheAPIServer(t *testing.T) {
	v := newValidator(t)
	for i, tc := range validationcases.Invalid() {
		t.Run(tc.Name, func(t *testing.T) {
			sg := validationcases.MembersGroup(fmt.Sprintf("invalid-%d", i))
			tc.Mutate(&sg.Spec)
			_, err := v.Load(context.Background(), strings.NewReader(toYAML(t, sg)))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load = %v, want ErrInvalid", err)
			}
			for _, w := range tc.Want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidator_Load(t *testing.T) {
	const group = `apiVersion: sync.jailsync.io/v1alpha1
kind: SyncGroup
metadata:
  name: www
spec:
  path: /data/www
  members:
  - node: web-1
    address: 127.0.0.2:7873
  - node: web-2
    address: 127.0.0.3:7873
  transport:
    secretRef:
      name: www-transport
`
	const secret = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: www-transport\nstringData:\n  rsync-password: s3cret\n"
	// with returns the group with old replaced by new, and the Secret.
	with := func(old, new string) string {
		if !strings.Contains(group, old) {
			t.Fatalf("the group has no %q", old)
		}
		return strings.Replace(group, old, new, 1) + secret
	}
	tests := []struct {
		name         string
		file         string
		wantErr      string
		wantPassword string
	}{
		{"secret with stringData, defaults applied", group + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: www-transport\nstringData:\n  rsync-password: \"s3cret\\n\"\n", "", "s3cret"},
		{"labels, annotations and a namespace accepted", with("  name: www\n", "  name: www\n  namespace: default\n  labels:\n    app.kubernetes.io/name: www\n  annotations:\n    example.org/owner: \"web team\"\n"), "", "s3cret"},
		{"secret with type and immutable accepted", group + strings.Replace(secret, "kind: Secret\n", "kind: Secret\ntype: Opaque\nimmutable: true\n", 1), "", "s3cret"},
		{"port 65533 accepted", with("127.0.0.3:7873", "127.0.0.3:65533"), "", "s3cret"},
		{"no metadata.name", with("  name: www\n", ""), "metadata.name: Required value: name or generateName is required", ""},
		{"no metadata", with("metadata:\n  name: www\n", ""), "metadata.name: Required value: name or generateName is required", ""},
		{"a name that climbs out of the state directory", with("  name: www\n", "  name: \"../../../../tmp/x\"\n"),
			`metadata.name: Invalid value: "../../../../tmp/x": a lowercase RFC 1123 subdomain must consist of`, ""},
		{"a name with a slash", with("  name: www\n", "  name: www/x\n"), `metadata.name: Invalid value: "www/x": a lowercase RFC 1123 subdomain`, ""},
		{"generateName instead of a name", with("  name: www\n", "  generateName: www-\n"),
			"metadata.generateName: Forbidden: standalone mode generates no names: set metadata.name", ""},
		{"an invalid label", with("  name: www\n", "  name: www\n  labels:\n    \"a b\": x\n"), `metadata.labels: Invalid value: "a b": name part must consist of`, ""},
		{"a misspelt spec field", with("  path: /data/www\n", "  path: /data/www\n  exlude:\n  - \"*.tmp\"\n"),
			`invalid manifest: SyncGroup in version "v1alpha1" cannot be handled as a SyncGroup: strict decoding error: unknown field "spec.exlude"`, ""},
		{"a misspelt member field", with("    address: 127.0.0.2:7873\n", "    adress: 127.0.0.2:7873\n"), `unknown field "spec.members[0].adress"`, ""},
		{"a misspelt metadata field", with("  name: www\n", "  name: www\n  label:\n    a: b\n"), `unknown field "metadata.label"`, ""},
		{"an unknown top-level field", with("spec:\n", "sepc: {}\nspec:\n"), `unknown field "sepc"`, ""},
		{"a misspelt secret field", group + strings.Replace(secret, "stringData", "stringdata", 1),
			`Secret in version "v1" cannot be handled as a Secret: strict decoding error: unknown field "stringdata"`, ""},
		{"port 65534 refused", with("127.0.0.3:7873", "127.0.0.3:65534"),
			`spec.members[1].address: Invalid value: "127.0.0.3:65534": address port must be between 1 and 65533: the agent also listens on the next two ports (agent-to-agent endpoint, metrics)`, ""},
		{"port 65535 refused", with("127.0.0.2:7873", "127.0.0.2:65535"), `spec.members[0].address: Invalid value: "127.0.0.2:65535": address port must be between 1 and 65533`, ""},
		{"secret with base64 data", group + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: www-transport\ndata:\n  rsync-password: czNjcmV0\n", "", "s3cret"},
		{"secret missing: no password (the agent runs only with --insecure)", group, "", ""},
		{"secret with base64 data ending in CRLF", group + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: www-transport\ndata:\n  rsync-password: czNjcmV0DQo=\n", "", "s3cret"},
		{"an empty password", group + strings.Replace(secret, "rsync-password: s3cret", "rsync-password: \"\"", 1), `secret www-transport: "rsync-password" is empty`, ""},
		{"a password of two lines", group + strings.Replace(secret, "rsync-password: s3cret", "rsync-password: \"s3cret\\n\\n\"", 1), "holds a line break", ""},
		{"a Secret the SyncGroup does not name", group + secret + strings.Replace(secret, "www-transport", "other", 1),
			`the file holds Secret "other", but spec.transport.secretRef names "www-transport"`, ""},
		{"a Secret and no secretRef", strings.Replace(group, "  transport:\n    secretRef:\n      name: www-transport\n", "", 1) + secret,
			`the file holds Secret "www-transport", but the SyncGroup names no spec.transport.secretRef`, ""},
		{"secret without the key", group + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: www-transport\nstringData:\n  other: x\n", `no "rsync-password"`, ""},
		{"replicas refused", strings.Replace(group, "  members:\n  - node: web-1\n    address: 127.0.0.2:7873\n  - node: web-2\n    address: 127.0.0.3:7873\n",
			"  replicas: 2\n  nodeSelector: {}\n", 1), "standalone mode has no registered agents", ""},
		{"member without address refused", strings.Replace(group, "    address: 127.0.0.3:7873\n", "", 1), "needs every member's rsync daemon address", ""},
		{"two SyncGroups", group + "---\n" + group, "holds one SyncGroup", ""},
		{"two Secrets of one name", group + secret + strings.Replace(secret, "s3cret", "other", 1), `a second Secret named "www-transport"`, ""},
		{"over 4 MiB", with("  path: /data/www\n", "  path: /data/www\n  exclude:\n"+strings.Repeat("  - \"*.tmp\"\n", 500_000)), "over 4194304 bytes", ""},
		{"another kind", group + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n", "is not a", ""},
		{"no SyncGroup", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n", "holds no", ""},
	}
	v := newValidator(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := v.Load(context.Background(), strings.NewReader(tc.file))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load = %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Password != tc.wantPassword {
				t.Errorf("password %q, want %q", m.Password, tc.wantPassword)
			}
			if wantMissing := m.Password == "" && strings.Contains(tc.file, "secretRef"); (m.MissingSecret != "") != wantMissing {
				t.Errorf("missing Secret %q; a secretRef without its Secret in the file: %v", m.MissingSecret, wantMissing)
			}
			s := m.Group.Spec
			if s.Settle == nil || s.Settle.Duration != 250*time.Millisecond || s.ResyncInterval.Duration != time.Hour ||
				s.Deletes != syncv1.DeletesPropagate || s.Conflicts != syncv1.ConflictsNewestWins {
				t.Errorf("defaults not applied: %+v", s)
			}
		})
	}
}

// TestValidator_LoadsTheDocumentedExample keeps docs/examples/standalone-www.yaml,
// the file the README points operators to, valid and complete.
func TestValidator_LoadsTheDocumentedExample(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "docs", "examples", "standalone-www.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := newValidator(t).Load(context.Background(), f)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	s := m.Group.Spec
	if m.Group.Name != "www" || s.Path != "/data/www" || len(s.Members) != 3 || len(s.Exclude) != 2 {
		t.Errorf("example loaded as %s %+v", m.Group.Name, s)
	}
	for _, mem := range s.Members {
		if mem.Address == "" {
			t.Errorf("member %s has no address", mem.Node)
		}
	}
	if m.Password == "" {
		t.Error("the example's transport Secret gave no password")
	}
}
