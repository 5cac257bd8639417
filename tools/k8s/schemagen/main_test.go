package main

import (
	"encoding/json"
	"os"
	"testing"
)

func TestStrict(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "object with properties is closed",
			in:   `{"type":"object","properties":{"a":{"type":"string"}}}`,
			want: `{"additionalProperties":false,"properties":{"a":{"type":"string"}},"type":"object"}`,
		},
		{
			name: "map stays a map",
			in:   `{"type":"object","additionalProperties":{"type":"string"}}`,
			want: `{"additionalProperties":{"type":"string"},"type":"object"}`,
		},
		{
			name: "preserve-unknown-fields stays open, its properties do not",
			in:   `{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"a":{"type":"object","properties":{"b":{}}}}}`,
			want: `{"properties":{"a":{"additionalProperties":false,"properties":{"b":{}},"type":"object"}},"type":"object","x-kubernetes-preserve-unknown-fields":true}`,
		},
		{
			name: "int-or-string",
			in:   `{"anyOf":[{"type":"integer"},{"type":"string"}],"x-kubernetes-int-or-string":true}`,
			want: `{"type":["string","integer"],"x-kubernetes-int-or-string":true}`,
		},
		{
			name: "nullable",
			in:   `{"type":"string","nullable":true}`,
			want: `{"nullable":true,"type":["string","null"]}`,
		},
		{
			name: "a property named properties is a property",
			in:   `{"type":"object","properties":{"properties":{"type":"object","properties":{"x":{}}}}}`,
			want: `{"additionalProperties":false,"properties":{"properties":{"additionalProperties":false,"properties":{"x":{}},"type":"object"}},"type":"object"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in any
			if err := json.Unmarshal([]byte(tt.in), &in); err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(strict(in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestInline(t *testing.T) {
	k := &kubernetes{defs: map[string]any{}}
	for name, def := range map[string]string{
		"a.Thing":     `{"description":"d","type":"object","properties":{"port":{"$ref":"#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},"cpu":{"$ref":"#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},"child":{"$ref":"#/definitions/a.Recursive"}}}`,
		"a.Recursive": `{"type":"object","properties":{"next":{"$ref":"#/definitions/a.Recursive"}}}`,
	} {
		var v any
		if err := json.Unmarshal([]byte(def), &v); err != nil {
			t.Fatal(err)
		}
		k.defs[name] = v
	}
	s, err := k.schema("a.Thing")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(s)
	want := `{"additionalProperties":false,"properties":{"child":{"additionalProperties":false,"properties":{"next":{}},"type":"object"},"cpu":{"type":["string","integer","number"]},"port":{"type":["string","integer"]}},"type":"object"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := k.schema("a.Missing"); err == nil {
		t.Error("got nil error for a missing definition")
	}
}

func TestFileName(t *testing.T) {
	tests := []struct {
		g    gvk
		want string
	}{
		{gvk{Version: "v1", Kind: "ConfigMap"}, "configmap-v1.json"},
		{gvk{Group: "apps", Version: "v1", Kind: "Deployment"}, "deployment-apps-v1.json"},
		{gvk{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}, "scaledobject-keda.sh-v1alpha1.json"},
	}
	for _, tt := range tests {
		if got := tt.g.fileName(); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.g, got, tt.want)
		}
	}
}

func TestUsedKinds(t *testing.T) {
	stream := []byte("apiVersion: v1\nkind: Service\n---\n# a comment only\n---\napiVersion: apps/v1\nkind: Deployment\n---\napiVersion: v1\nkind: Service\n")
	got := kindsOf(t, stream)
	want := []gvk{{Group: "apps", Version: "v1", Kind: "Deployment"}, {Version: "v1", Kind: "Service"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("kind %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func kindsOf(t *testing.T, stream []byte) []gvk {
	t.Helper()
	f := t.TempDir() + "/m.yaml"
	if err := os.WriteFile(f, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	kinds, err := usedKinds([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}
