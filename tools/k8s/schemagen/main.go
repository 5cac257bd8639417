// Command schemagen writes the strict, standalone JSON schemas kubeconform
// validates deploy/k8s against, for exactly the kinds the rendered manifests
// use, from the sources the cluster itself would use: the Kubernetes OpenAPI
// document (api/openapi-spec/swagger.json of k8s.io/kubernetes) and the
// CustomResourceDefinitions of the operators (KEDA, CloudNativePG).
//
//	kustomize build deploy/k8s/overlays/prod | schemagen -kubernetes DIR -crds DIR,DIR -out deploy/k8s/schemas
//
// What makes a schema strict, as openapi2jsonschema's "-strict" flavour and
// the API server's own pruning do:
//   - every object that lists its properties and does not say otherwise gets
//     "additionalProperties": false, so a misspelt field is an error rather
//     than something the API server silently drops;
//   - an int-or-string (IntOrString, x-kubernetes-int-or-string) is
//     "string or integer", a Quantity "string, integer or number";
//   - x-kubernetes-preserve-unknown-fields keeps that object open;
//   - a CRD's metadata is checked as the Kubernetes ObjectMeta.
//
// References are inlined (standalone: kubeconform loads one file per kind)
// and descriptions dropped, which keeps the committed files small. A file is
// named after kubeconform's -schema-location template in deploy/k8s/lint.sh:
// <kind>-<version>.json for the core group, <kind>-<group>-<version>.json
// otherwise, all in lower case.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	k8sDir := flag.String("kubernetes", "", "directory of the k8s.io/kubernetes module (its api/openapi-spec/swagger.json is read)")
	crdDirs := flag.String("crds", "", "directories of CustomResourceDefinition YAML files, comma-separated")
	out := flag.String("out", "", "directory the schemas are written to (its *.json files are replaced)")
	list := flag.Bool("list", false, "only print the names of the schema files the manifests need, one a line (no sources read)")
	flag.Parse()
	if !*list && (*k8sDir == "" || *out == "") {
		fmt.Fprintln(os.Stderr, "usage: schemagen -kubernetes DIR [-crds DIR,DIR] -out DIR [MANIFEST.yaml ...] (default: manifests on stdin)")
		fmt.Fprintln(os.Stderr, "       schemagen -list [MANIFEST.yaml ...]")
		os.Exit(2)
	}
	var err error
	if *list {
		err = listFiles(flag.Args())
	} else {
		err = run(*k8sDir, *crdDirs, *out, flag.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

// gvk names a kind as manifests write it.
type gvk struct{ Group, Version, Kind string }

func (g gvk) String() string {
	if g.Group == "" {
		return g.Version + "/" + g.Kind
	}
	return g.Group + "/" + g.Version + "/" + g.Kind
}

// fileName follows the -schema-location template of deploy/k8s/lint.sh.
func (g gvk) fileName() string {
	if g.Group == "" {
		return strings.ToLower(g.Kind + "-" + g.Version + ".json")
	}
	return strings.ToLower(g.Kind + "-" + g.Group + "-" + g.Version + ".json")
}

// listFiles prints the schema files the manifests need: lint.sh compares
// them with schemas/, offline.
func listFiles(manifests []string) error {
	used, err := usedKinds(manifests)
	if err != nil {
		return err
	}
	for _, g := range used {
		fmt.Println(g.fileName())
	}
	return nil
}

func run(k8sDir, crdDirs, out string, manifests []string) error {
	used, err := usedKinds(manifests)
	if err != nil {
		return err
	}
	k8s, err := loadKubernetes(filepath.Join(k8sDir, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		return err
	}
	crds := map[gvk]map[string]any{}
	for _, dir := range strings.Split(crdDirs, ",") {
		if dir == "" {
			continue
		}
		if err := loadCRDs(dir, crds); err != nil {
			return err
		}
	}
	objectMeta, err := k8s.schema("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
	if err != nil {
		return err
	}

	schemas := map[string]any{}
	var missing []string
	for _, g := range used {
		var s map[string]any
		if name, ok := k8s.byGVK[g]; ok {
			if s, err = k8s.schema(name); err != nil {
				return fmt.Errorf("%s: %w", g, err)
			}
		} else if c, ok := crds[g]; ok {
			s = crdSchema(c, objectMeta)
		} else {
			missing = append(missing, g.String())
			continue
		}
		schemas[g.fileName()] = s
	}
	if len(missing) > 0 {
		return fmt.Errorf("no source for %s: add its CRD directory to -crds", strings.Join(missing, ", "))
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(out, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(schemas))
	for name := range schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := schemas[name]
		b, err := json.MarshalIndent(s, "", " ")
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, name), append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "schemagen: %s (%d bytes)\n", name, len(b)+1)
	}
	return nil
}

// usedKinds reads YAML streams (files, or stdin when none) and returns the
// distinct kinds of their documents, sorted.
func usedKinds(files []string) ([]gvk, error) {
	var streams [][]byte
	if len(files) == 0 {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, err
		}
		streams = append(streams, b)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		streams = append(streams, b)
	}
	seen := map[gvk]bool{}
	for _, s := range streams {
		for _, doc := range splitYAML(s) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				return nil, fmt.Errorf("manifest: %w", err)
			}
			if head.Kind == "" {
				continue
			}
			g := gvk{Version: head.APIVersion, Kind: head.Kind}
			if i := strings.LastIndex(head.APIVersion, "/"); i >= 0 {
				g.Group, g.Version = head.APIVersion[:i], head.APIVersion[i+1:]
			}
			seen[g] = true
		}
	}
	if len(seen) == 0 {
		return nil, errors.New("no manifests on the input")
	}
	var kinds []gvk
	for g := range seen {
		kinds = append(kinds, g)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].String() < kinds[j].String() })
	return kinds, nil
}

// splitYAML splits a stream at its "---" document separators.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if bytes.Equal(bytes.TrimRight(line, " \r\n"), []byte("---")) {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

// kubernetes is the OpenAPI v2 document of the Kubernetes API.
type kubernetes struct {
	defs  map[string]any
	byGVK map[gvk]string // kind → definition name
}

func loadKubernetes(path string) (*kubernetes, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k := &kubernetes{defs: doc.Definitions, byGVK: map[gvk]string{}}
	for name, d := range doc.Definitions {
		list, _ := d.(map[string]any)["x-kubernetes-group-version-kind"].([]any)
		// Definitions listing several kinds (DeleteOptions, WatchEvent)
		// are meta types, never a manifest's kind.
		if len(list) != 1 {
			continue
		}
		m := list[0].(map[string]any)
		g := gvk{Group: m["group"].(string), Version: m["version"].(string), Kind: m["kind"].(string)}
		k.byGVK[g] = name
	}
	return k, nil
}

// schema returns the definition with every reference inlined, made strict.
func (k *kubernetes) schema(name string) (map[string]any, error) {
	s, err := k.inline(map[string]any{"$ref": "#/definitions/" + name}, nil)
	if err != nil {
		return nil, err
	}
	return strict(s).(map[string]any), nil
}

const refPrefix = "#/definitions/"

// inline replaces each $ref by a copy of its definition. path holds the
// definitions being expanded: a reference back into one of them (a
// recursive type, e.g. JSONSchemaProps) becomes an open object.
func (k *kubernetes) inline(v any, path []string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name, found := strings.CutPrefix(ref, refPrefix)
			if !found {
				return nil, fmt.Errorf("reference %q outside the document", ref)
			}
			switch name {
			case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
				return map[string]any{"type": []any{"string", "integer"}}, nil
			case "io.k8s.apimachinery.pkg.api.resource.Quantity":
				return map[string]any{"type": []any{"string", "integer", "number"}}, nil
			}
			for _, p := range path {
				if p == name {
					return map[string]any{}, nil
				}
			}
			def, ok := k.defs[name]
			if !ok {
				return nil, fmt.Errorf("no definition %s", name)
			}
			return k.inline(def, append(path, name))
		}
		out := make(map[string]any, len(v))
		for key, val := range v {
			if key == "description" || key == "x-kubernetes-group-version-kind" {
				continue
			}
			if key == "properties" {
				props := map[string]any{}
				for pn, pv := range val.(map[string]any) {
					iv, err := k.inline(pv, path)
					if err != nil {
						return nil, err
					}
					props[pn] = iv
				}
				out[key] = props
				continue
			}
			iv, err := k.inline(val, path)
			if err != nil {
				return nil, err
			}
			out[key] = iv
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			iv, err := k.inline(e, path)
			if err != nil {
				return nil, err
			}
			out[i] = iv
		}
		return out, nil
	}
	return v, nil
}

// loadCRDs adds the served versions of every CustomResourceDefinition of
// dir's YAML files to crds.
func loadCRDs(dir string, crds map[gvk]map[string]any) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s: no CRD files", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range splitYAML(b) {
			var crd struct {
				Kind string `json:"kind"`
				Spec struct {
					Group string `json:"group"`
					Names struct {
						Kind string `json:"kind"`
					} `json:"names"`
					Versions []struct {
						Name   string `json:"name"`
						Served bool   `json:"served"`
						Schema struct {
							OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
						} `json:"schema"`
					} `json:"versions"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(doc, &crd); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served || v.Schema.OpenAPIV3Schema == nil {
					continue
				}
				crds[gvk{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}] = v.Schema.OpenAPIV3Schema
			}
		}
	}
	return nil
}

// crdSchema makes a CRD version's structural schema strict. The API server
// checks a custom resource's metadata as an ObjectMeta whatever the CRD
// says (usually just "type: object"), so the schema does too.
func crdSchema(s, objectMeta map[string]any) map[string]any {
	s = strict(dropDescriptions(s)).(map[string]any)
	props, _ := s["properties"].(map[string]any)
	if props != nil {
		props["metadata"] = objectMeta
	}
	return s
}

func dropDescriptions(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, val := range v {
			if key == "description" {
				continue
			}
			if key == "properties" {
				props := map[string]any{}
				for pn, pv := range val.(map[string]any) {
					props[pn] = dropDescriptions(pv)
				}
				out[key] = props
				continue
			}
			out[key] = dropDescriptions(val)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = dropDescriptions(e)
		}
		return out
	}
	return v
}

// strict closes every object schema that lists its properties, unless it
// keeps unknown fields on purpose, and spells out the Kubernetes extensions
// kubeconform does not know.
func strict(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v)+1)
		for key, val := range v {
			if key == "properties" {
				props := map[string]any{}
				for pn, pv := range val.(map[string]any) {
					props[pn] = strict(pv)
				}
				out[key] = props
				continue
			}
			out[key] = strict(val)
		}
		if out["x-kubernetes-int-or-string"] == true {
			// The CRD form is anyOf integer|string (or no type at all).
			delete(out, "anyOf")
			out["type"] = []any{"string", "integer"}
		}
		if out["x-kubernetes-embedded-resource"] == true {
			props, _ := out["properties"].(map[string]any)
			if props == nil {
				props = map[string]any{}
				out["properties"] = props
			}
			for _, f := range []string{"apiVersion", "kind"} {
				if _, ok := props[f]; !ok {
					props[f] = map[string]any{"type": "string"}
				}
			}
			if _, ok := props["metadata"]; !ok {
				props["metadata"] = map[string]any{"type": "object"}
			}
		}
		if out["nullable"] == true {
			if t, ok := out["type"].(string); ok {
				out["type"] = []any{t, "null"}
			}
		}
		_, hasProps := out["properties"]
		_, hasAdditional := out["additionalProperties"]
		if hasProps && !hasAdditional && out["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = strict(e)
		}
		return out
	}
	return v
}
