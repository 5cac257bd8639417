package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// fieldManager names this tool in managedFields of what it really creates
// (namespaces, CRDs) and in the dry-run applies.
const fieldManager = "pushsms-verify"

// Config is what one run verifies.
type Config struct {
	BinDir    string   // holds etcd and kube-apiserver
	CRDs      []string // CustomResourceDefinition files installed before anything else
	Manifests []string // rendered overlays, <overlay>.yaml: every object must be accepted
	Refused   []string // files whose objects the API server must refuse, for the reason of their "# want:" line
	Timeout   time.Duration
	Out       io.Writer
}

// Run starts a throwaway control plane, installs the CRDs and verifies the
// manifests against it.
func Run(ctx context.Context, cfg Config) error {
	if len(cfg.Manifests) == 0 {
		return errors.New("no manifest to verify")
	}
	start := time.Now()
	cp, err := startControlPlane(ctx, cfg.BinDir, cfg.Timeout)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	defer cp.stop()
	fmt.Fprintf(cfg.Out, "== control plane ready in %v (%s)\n", time.Since(start).Round(time.Millisecond), cp.config.Host)

	v, err := newVerifier(cp.config, cfg.Out)
	if err != nil {
		return err
	}
	return v.verify(ctx, cfg)
}

// verifier applies objects to one API server.
type verifier struct {
	dyn      dynamic.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	out      io.Writer
	warnings *warningCollector
}

func newVerifier(cfg *rest.Config, out io.Writer) (*verifier, error) {
	cfg = rest.CopyConfig(cfg)
	w := &warningCollector{}
	cfg.WarningHandler = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	return &verifier{
		dyn:      dyn,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)),
		out:      out,
		warnings: w,
	}, nil
}

func (v *verifier) verify(ctx context.Context, cfg Config) error {
	if err := v.installCRDs(ctx, cfg.CRDs); err != nil {
		return err
	}
	var failed []string
	for _, file := range cfg.Manifests {
		if err := v.verifyOverlay(ctx, file); err != nil {
			fmt.Fprintf(v.out, "FAIL %v\n", err)
			failed = append(failed, filepath.Base(file))
		}
	}
	if len(cfg.Refused) > 0 {
		fmt.Fprintf(v.out, "== manifests the API server must refuse\n")
	}
	for _, file := range cfg.Refused {
		msg, err := v.verifyRefused(ctx, file)
		if err != nil {
			fmt.Fprintf(v.out, "FAIL %s: %v\n", filepath.Base(file), err)
			failed = append(failed, filepath.Base(file))
			continue
		}
		fmt.Fprintf(v.out, "ok   %s refused: %s\n", filepath.Base(file), msg)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d file(s) failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// installCRDs creates the CRDs for real and waits until the API server
// serves them.
func (v *verifier) installCRDs(ctx context.Context, files []string) error {
	if len(files) == 0 {
		return nil
	}
	fmt.Fprintf(v.out, "== CRDs\n")
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	var names []string
	for _, file := range files {
		objs, err := readObjects(file)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				return fmt.Errorf("%s: %s %s is not a CustomResourceDefinition", file, o.GetKind(), o.GetName())
			}
			if _, err := v.apply(ctx, crdGVR, o, false); err != nil {
				return fmt.Errorf("install CRD %s: %w", o.GetName(), err)
			}
			names = append(names, o.GetName())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for _, name := range names {
		for {
			crd, err := v.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established: %v", name, err)
			case <-tick.C:
			}
		}
		fmt.Fprintf(v.out, "ok   CustomResourceDefinition %s established\n", name)
	}
	v.mapper.Reset()
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// verifyOverlay creates the overlay's namespaces for real (namespaced objects
// cannot be dry-run into a namespace that does not exist), then dry-runs every
// object, and prints a line per object and a summary.
func (v *verifier) verifyOverlay(ctx context.Context, file string) error {
	start := time.Now()
	overlay := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	fmt.Fprintf(v.out, "== overlay %s\n", overlay)
	objs, err := readObjects(file)
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("overlay %s: no object", overlay)
	}
	if err := v.ensureNamespaces(ctx, objs); err != nil {
		return fmt.Errorf("overlay %s: %w", overlay, err)
	}
	kinds := map[string]int{}
	errs := 0
	for _, o := range objs {
		kinds[o.GetKind()]++
		if isNamespace(o) {
			continue // applied for real by ensureNamespaces
		}
		warnings, err := v.dryRun(ctx, o)
		if err != nil {
			errs++
			fmt.Fprintf(v.out, "FAIL %s: %v\n", describe(o), err)
			continue
		}
		fmt.Fprintf(v.out, "ok   %s\n", describe(o))
		for _, w := range warnings {
			fmt.Fprintf(v.out, "     warning: %s\n", w)
		}
	}
	var perKind []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		perKind = append(perKind, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	fmt.Fprintf(v.out, "summary %s: %d objects, %d refused, in %v (%s)\n",
		overlay, len(objs), errs, time.Since(start).Round(time.Millisecond), strings.Join(perKind, ", "))
	if errs > 0 {
		return fmt.Errorf("overlay %s: the API server refused %d of %d objects", overlay, errs, len(objs))
	}
	return nil
}

// verifyRefused dry-runs the objects of a file that must not pass: at least
// one must be refused with an error that contains the file's "# want:" text.
func (v *verifier) verifyRefused(ctx context.Context, file string) (string, error) {
	want, err := wantLine(file)
	if err != nil {
		return "", err
	}
	objs, err := readObjects(file)
	if err != nil {
		return "", err
	}
	if err := v.ensureNamespaces(ctx, objs); err != nil {
		return "", err
	}
	var got []string
	for _, o := range objs {
		if _, err := v.dryRun(ctx, o); err != nil {
			if strings.Contains(err.Error(), want) {
				return err.Error(), nil
			}
			got = append(got, err.Error())
		}
	}
	if len(got) == 0 {
		return "", fmt.Errorf("accepted by the API server (want an error containing %q)", want)
	}
	return "", fmt.Errorf("refused, but not for %q: %s", want, strings.Join(got, "; "))
}

// ensureNamespaces applies the Namespace objects for real and creates any
// other namespace the objects name.
func (v *verifier) ensureNamespaces(ctx context.Context, objs []*unstructured.Unstructured) error {
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	declared := map[string]bool{}
	for _, o := range objs {
		if isNamespace(o) {
			if _, err := v.apply(ctx, nsGVR, o, false); err != nil {
				return fmt.Errorf("create namespace %s: %w", o.GetName(), err)
			}
			declared[o.GetName()] = true
			fmt.Fprintf(v.out, "ok   %s (applied for real: the namespaced objects need it)\n", describe(o))
		}
	}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" || declared[ns] {
			continue
		}
		n := &unstructured.Unstructured{}
		n.SetAPIVersion("v1")
		n.SetKind("Namespace")
		n.SetName(ns)
		if _, err := v.dyn.Resource(nsGVR).Create(ctx, n, metav1.CreateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
		declared[ns] = true
	}
	return nil
}

// dryRun server-side applies o with dryRun=All: the request goes through
// decoding, defaulting, admission and validation, as kubectl apply
// --server-side would, but nothing is stored. It returns the API server's
// warnings.
func (v *verifier) dryRun(ctx context.Context, o *unstructured.Unstructured) ([]string, error) {
	gvk := o.GroupVersionKind()
	mapping, err := v.restMapping(ctx, gvk)
	if err != nil {
		return nil, err
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace && o.GetNamespace() == "" {
		o = o.DeepCopy()
		o.SetNamespace(metav1.NamespaceDefault)
	}
	if mapping.Scope.Name() == meta.RESTScopeNameRoot {
		o = o.DeepCopy()
		o.SetNamespace("")
	}
	return v.apply(ctx, mapping.Resource, o, true)
}

// restMapping finds the resource of a kind, rediscovering for a while when it
// is unknown: a CRD's kinds reach discovery a moment after it is established.
func (v *verifier) restMapping(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		mapping, err := v.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil {
			return mapping, nil
		}
		if !meta.IsNoMatchError(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("kind %s: %w", gvk, err)
		}
		v.mapper.Reset()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// apply server-side applies o (dry run or not) with strict field validation,
// so that an unknown or duplicate field is an error, not a warning.
func (v *verifier) apply(ctx context.Context, gvr schema.GroupVersionResource, o *unstructured.Unstructured, dryRun bool) ([]string, error) {
	body, err := o.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	opts := metav1.PatchOptions{
		FieldManager:    fieldManager,
		Force:           new(true),
		FieldValidation: metav1.FieldValidationStrict,
	}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var client dynamic.ResourceInterface = v.dyn.Resource(gvr)
	if ns := o.GetNamespace(); ns != "" {
		client = v.dyn.Resource(gvr).Namespace(ns)
	}
	v.warnings.reset()
	_, err = client.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
	return v.warnings.reset(), err
}

func isNamespace(o *unstructured.Unstructured) bool {
	return o.GetAPIVersion() == "v1" && o.GetKind() == "Namespace"
}

func describe(o *unstructured.Unstructured) string {
	name := o.GetName()
	if ns := o.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s %s", o.GetAPIVersion(), o.GetKind(), name)
}

// readObjects decodes every non-empty document of a multi-document YAML file.
func readObjects(file string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		objs = append(objs, o)
	}
}

// wantLine returns the text after "# want: " in a file: the part of the error
// the API server must give.
func wantLine(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if w, ok := strings.CutPrefix(line, "# want: "); ok && strings.TrimSpace(w) != "" {
			return strings.TrimSpace(w), nil
		}
	}
	return "", fmt.Errorf("%s: no '# want: <part of the error>' line", file)
}

// warningCollector keeps the warnings of the current request (the verifier
// sends one request at a time).
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(code int, agent, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// reset returns the warnings collected so far and forgets them.
func (w *warningCollector) reset() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	msgs := w.msgs
	w.msgs = nil
	sort.Strings(msgs)
	return msgs
}
