// Package standalone runs the agent without an API server, from a file that
// holds one SyncGroup manifest and, optionally, the Secret its transport
// names. The SyncGroup is validated by the CRD's own OpenAPI schema and CEL
// rules, evaluated with the apiextensions-apiserver libraries over the
// embedded CRD, with defaults applied: the same checks and the same
// messages as `kubectl apply` against a cluster.
package standalone

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/operation"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/config/crd"
)

// ErrInvalid is returned (wrapped, with the API server's message) for a
// manifest that fails validation.
var ErrInvalid = errors.New("invalid manifest")

// Manifest is what a standalone file declares.
type Manifest struct {
	Group *syncv1.SyncGroup
	// Password is the transport Secret's rsync-password, with one trailing
	// newline trimmed; empty when the file has no such Secret.
	Password string
	// MissingSecret is the Secret that spec.transport.secretRef names when
	// the file does not hold it (Password is then empty): the agent runs
	// without a password only when told to (--insecure), as without a
	// secretRef.
	MissingSecret string
}

// Validator checks SyncGroups against the embedded CRD.
type Validator struct {
	internal   *apiextensionsinternal.JSONSchemaProps
	structural *structuralschema.Structural
	schema     apiextensionsvalidation.SchemaValidator
	cel        *cel.Validator
}

// NewValidator compiles the embedded SyncGroup CRD's schema and rules.
func NewValidator() (*Validator, error) {
	var c apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(crd.SyncGroups(), &c); err != nil {
		return nil, fmt.Errorf("parse embedded CRD: %w", err)
	}
	var ver *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range c.Spec.Versions {
		if c.Spec.Versions[i].Name == syncv1.GroupVersion.Version {
			ver = &c.Spec.Versions[i]
		}
	}
	if ver == nil || ver.Schema == nil {
		return nil, fmt.Errorf("embedded CRD has no %s schema", syncv1.GroupVersion.Version)
	}
	internal := &apiextensionsinternal.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, internal, nil); err != nil {
		return nil, fmt.Errorf("convert CRD schema: %w", err)
	}
	structural, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, fmt.Errorf("structural CRD schema: %w", err)
	}
	sv, _, err := apiextensionsvalidation.NewSchemaValidator(internal)
	if err != nil {
		return nil, fmt.Errorf("CRD schema validator: %w", err)
	}
	return &Validator{internal: internal, structural: structural, schema: sv,
		cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}, nil
}

// Validate applies the CRD's defaults to obj (a SyncGroup as unstructured
// content, pruned as Load prunes it) and checks it as the API server checks
// a create: metadata, the OpenAPI schema, list-map keys, then the CEL rules
// unless an error blocks them, and once nothing else failed the generic
// metadata checks.
func (v *Validator) Validate(ctx context.Context, obj map[string]any) field.ErrorList {
	defaulting.Default(obj, v.structural)
	// As the API server's customResourceStrategy.Validate does
	// (apiextensions-apiserver pkg/registry/customresource/strategy.go), with
	// its customResourceValidator.Validate (validator.go in the same folder):
	// metadata first, then the schema.
	errs := validateMetadata(ctx, obj)
	errs = append(errs, apiextensionsvalidation.ValidateCustomResource(nil, obj, v.schema)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	if blocking(errs) {
		return append(errs, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"))
	}
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	errs = append(errs, celErrs...)
	if len(errs) > 0 {
		return errs
	}
	// As rest.ValidateCreate does (apiserver pkg/registry/rest/create.go)
	// once the strategy found nothing: the name must be usable as a path
	// segment.
	meta, errs := objectMeta(obj)
	if len(errs) > 0 {
		return errs
	}
	return metavalidation.ValidateObjectMetaAccessor(meta, false, pathSegment, field.NewPath("metadata"))
}

// declarativeValidationBeta is the API server's DeclarativeValidationBeta
// feature gate, on by default since Kubernetes 1.36.
const declarativeValidationBeta = true

// validateMetadata checks metadata as customResourceValidator's
// validateObjectMetaDeclaratively does for a create (apiextensions-apiserver
// pkg/registry/customresource/validator.go): SyncGroups are cluster-scoped,
// and their names are DNS subdomains, so that a name cannot climb out of
// the state directory (/var/db/jailsync/NAME) either.
func validateMetadata(ctx context.Context, obj map[string]any) field.ErrorList {
	meta, errs := objectMeta(obj)
	if len(errs) > 0 {
		return errs
	}
	return metavalidation.ValidateObjectMetaDeclaratively(ctx, operation.Create, meta, nil, false,
		metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"), declarativeValidationBeta)
}

// objectMeta returns obj's metadata as getObjectMeta does in
// apiextensions-apiserver pkg/registry/customresource/validator.go.
func objectMeta(obj map[string]any) (*metav1.ObjectMeta, field.ErrorList) {
	raw := obj["metadata"]
	if raw == nil {
		return &metav1.ObjectMeta{}, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, fmt.Sprintf("expected map[string]interface{}, got %T", raw))}
	}
	meta := &metav1.ObjectMeta{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, err.Error())}
	}
	return meta, nil
}

// pathSegment is the API server's name check for any object
// (validatePathSegment in apiserver pkg/registry/rest/create.go).
func pathSegment(name string, prefix bool) []string {
	if prefix {
		return content.IsPathSegmentPrefix(name)
	}
	return content.IsPathSegmentName(name)
}

// decode prunes obj (a SyncGroup as unstructured content) to the CRD's
// structural schema as the API server decodes a request with
// fieldValidation=Strict, kubectl's default: it returns a strict decoding
// error that names every unknown field, in metadata too, instead of
// dropping them silently (unstructuredSchemaCoercer.apply and
// schemaCoercingDecoder.Decode in apiextensions-apiserver
// pkg/apiserver/customresource_handler.go). A namespace is cleared, as
// rest.BeforeCreate does for a cluster-scoped object.
func (v *Validator) decode(obj map[string]any) error {
	meta, found, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return err
	}
	unknown = append(unknown, pruning.PruneWithOptions(obj, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	defaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, obj, v.structural, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return ferr
	}
	unknown = append(unknown, paths...)
	if found {
		meta.Namespace = ""
		if err := schemaobjectmeta.SetObjectMeta(obj, meta); err != nil {
			return err
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	errs := make([]error, len(unknown))
	for i, f := range unknown {
		errs[i] = fmt.Errorf("unknown field %q", f)
	}
	return runtime.NewStrictDecodingError(errs)
}

func blocking(errs field.ErrorList) bool {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}

// maxManifest bounds a standalone manifest's size.
const maxManifest = 4 << 20

// Load reads a standalone manifest: one SyncGroup and, optionally, the
// Secret that its transport.secretRef names (data or stringData).
func (v *Validator) Load(ctx context.Context, r io.Reader) (*Manifest, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if len(raw) > maxManifest {
		// Cut at a line break, the rest could still validate (a shorter
		// exclude list): refused whole.
		return nil, fmt.Errorf("read manifest: over %d bytes; a SyncGroup and its Secret take far less", maxManifest)
	}
	group, secrets, err := documents(raw)
	if err != nil {
		return nil, err
	}
	if group == nil {
		return nil, fmt.Errorf("the manifest holds no %s SyncGroup", syncv1.GroupVersion)
	}
	sg, err := v.group(ctx, group)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Group: sg}
	if m.Password, m.MissingSecret, err = namedSecret(sg.Spec.Transport.SecretRef, secrets); err != nil {
		return nil, err
	}
	return m, nil
}

// documents reads a manifest's YAML documents: the SyncGroup (nil if none)
// and the Secrets, each checked as the API server would decode it.
func documents(raw []byte) (group map[string]any, secrets []*corev1.Secret, err error) {
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for doc := 1; ; doc++ {
		obj, err := readDocument(docs)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("manifest document %d: %w", doc, err)
		}
		if len(obj) == 0 {
			continue
		}
		u := unstructured.Unstructured{Object: obj}
		switch gvk := u.GroupVersionKind(); {
		case gvk.GroupVersion() == syncv1.GroupVersion && gvk.Kind == "SyncGroup":
			if group != nil {
				return nil, nil, fmt.Errorf("manifest document %d: a standalone file holds one SyncGroup", doc)
			}
			group = obj
		case gvk.Group == "" && gvk.Version == "v1" && gvk.Kind == "Secret":
			// Strict, as the API server decodes with fieldValidation=Strict:
			// a misspelt stringData would otherwise be a missing password.
			s := &corev1.Secret{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, s, true); err != nil {
				return nil, nil, fmt.Errorf("manifest document %d: Secret in version %q cannot be handled as a Secret: %w", doc, gvk.Version, err)
			}
			for _, o := range secrets {
				if o.Name == s.Name {
					return nil, nil, fmt.Errorf("manifest document %d: a second Secret named %q (the API server would refuse it as existing)", doc, s.Name)
				}
			}
			secrets = append(secrets, s)
		default:
			return nil, nil, fmt.Errorf("manifest document %d: %s is not a %s SyncGroup or a v1 Secret", doc, gvk, syncv1.GroupVersion)
		}
	}
	return group, secrets, nil
}

// namedSecret returns the password of the Secret that ref names, or, when
// the file holds no such Secret, its name (missing).
func namedSecret(ref *syncv1.SecretReference, secrets []*corev1.Secret) (pw, missing string, err error) {
	// The file holds the Secret that secretRef names, and no other: a
	// password given and not used would have the agent run without one
	// (with --insecure) while the operator meant it to be used.
	for _, s := range secrets {
		switch {
		case ref == nil:
			return "", "", fmt.Errorf("the file holds Secret %q, but the SyncGroup names no spec.transport.secretRef: "+
				"set spec.transport.secretRef.name to %q to use its password, or remove the Secret", s.Name, s.Name)
		case s.Name != ref.Name:
			return "", "", fmt.Errorf("the file holds Secret %q, but spec.transport.secretRef names %q: "+
				"a standalone file holds the SyncGroup and the Secret it names, no other", s.Name, ref.Name)
		}
	}
	if ref == nil {
		return "", "", nil
	}
	pw, err = password(secrets, ref.Name)
	if errors.Is(err, errNoSecret) {
		return "", ref.Name, nil
	}
	return pw, "", err
}

// errNoSecret: the file holds no Secret of the name secretRef gives.
var errNoSecret = errors.New("no such Secret in the file")

// readDocument reads the next YAML document as unstructured content with
// whole numbers as int64, as the API server decodes JSON (CEL rules need
// integers, not float64).
func readDocument(r *utilyaml.YAMLReader) (map[string]any, error) {
	doc, err := r.Read()
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// group validates and decodes the SyncGroup, with standalone's own rules:
// a name, not a generateName; members listed, each with an address.
func (v *Validator) group(ctx context.Context, obj map[string]any) (*syncv1.SyncGroup, error) {
	gvk := syncv1.GroupVersion.WithKind("SyncGroup")
	if err := v.decode(obj); err != nil {
		// The API server's wording (transformDecodeError in apiserver
		// pkg/endpoints/handlers/rest.go).
		return nil, fmt.Errorf("%w: %s in version %q cannot be handled as a %s: %w", ErrInvalid, gvk.Kind, gvk.Version, gvk.Kind, err)
	}
	name, _, _ := unstructured.NestedString(obj, "metadata", "name")
	errs := standaloneMetadata(obj)
	errs = append(errs, v.Validate(ctx, obj)...)
	if len(errs) == 0 {
		errs = standaloneRules(obj)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, apierrors.NewInvalid(gvk.GroupKind(), name, errs))
	}
	sg := &syncv1.SyncGroup{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, sg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return sg, nil
}

// standaloneMetadata refuses generateName: without an API server nothing
// generates the name, and the group needs one (its state directory is
// named for it).
func standaloneMetadata(obj map[string]any) field.ErrorList {
	if g, _, _ := unstructured.NestedString(obj, "metadata", "generateName"); g != "" {
		return field.ErrorList{field.Forbidden(field.NewPath("metadata", "generateName"),
			"standalone mode generates no names: set metadata.name")}
	}
	return nil
}

func standaloneRules(obj map[string]any) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if _, ok, _ := unstructured.NestedFieldNoCopy(obj, "spec", "replicas"); ok {
		errs = append(errs, field.Forbidden(spec.Child("replicas"), "standalone mode has no registered agents to pick from: list the members, each with its address"))
	}
	members, _, _ := unstructured.NestedSlice(obj, "spec", "members")
	for i, m := range members {
		mm, _ := m.(map[string]any)
		if addr, _ := mm["address"].(string); addr == "" {
			errs = append(errs, field.Required(spec.Child("members").Index(i).Child("address"),
				"standalone mode needs every member's rsync daemon address (IP:port)"))
		}
	}
	return errs
}

// password returns the rsync-password of the Secret named name, one
// trailing line end trimmed ("\n" or "\r\n": a file made with echo, or on
// Windows). What is left must be one line, and not empty: rsync's
// --password-file takes the first line only (authenticate.c, getpassf),
// while the agent-to-agent requests are signed with the whole password,
// and members would disagree.
func password(secrets []*corev1.Secret, name string) (string, error) {
	for _, s := range secrets {
		if s.Name != name {
			continue
		}
		p, ok := s.StringData[syncv1.SecretKeyRsyncPassword]
		if !ok {
			var b []byte
			if b, ok = s.Data[syncv1.SecretKeyRsyncPassword]; !ok {
				return "", fmt.Errorf("secret %s has no %q in data or stringData", name, syncv1.SecretKeyRsyncPassword)
			}
			p = string(b)
		}
		p = strings.TrimSuffix(strings.TrimSuffix(p, "\n"), "\r")
		switch {
		case p == "":
			return "", fmt.Errorf("secret %s: %q is empty: set a password (for example `openssl rand -base64 32`)", name, syncv1.SecretKeyRsyncPassword)
		case strings.ContainsAny(p, "\r\n\x00"):
			return "", fmt.Errorf("secret %s: %q holds a line break or NUL before its end: give the password on one line", name, syncv1.SecretKeyRsyncPassword)
		}
		return p, nil
	}
	return "", fmt.Errorf("transport.secretRef names Secret %q: %w", name, errNoSecret)
}
