package ingest

import (
	"errors"
	"slices"
	"testing"
)

func TestTemplate(t *testing.T) {
	tests := []struct {
		name     string
		template string
		vars     map[string]string
		want     string
		wantErr  error
	}{
		{"no variable", "Soldes -50% ! STOP 36123", nil, "Soldes -50% ! STOP 36123", nil},
		{"one variable", "Bonjour {{prenom}}, -20% ce week-end", map[string]string{"prenom": "Zoé"}, "Bonjour Zoé, -20% ce week-end", nil},
		{"spaces in braces", "Code {{ code }}.", map[string]string{"code": "482913"}, "Code 482913.", nil},
		{"twice and extra", "{{a}}-{{b}}-{{a}}", map[string]string{"a": "1", "b": "2", "c": "3"}, "1-2-1", nil},
		{"empty value", "x{{a}}y", map[string]string{"a": ""}, "xy", nil},
		{"missing", "Bonjour {{prenom}}", map[string]string{"nom": "X"}, "", ErrMissingVariable},
		{"value with braces is not expanded", "{{a}}", map[string]string{"a": "{{b}}"}, "{{b}}", nil},
		{"single braces are text", "a {b} c }} d", nil, "a {b} c }} d", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := parseTemplate(tt.template)
			if err != nil {
				t.Fatalf("parseTemplate(%q): %v", tt.template, err)
			}
			got, err := tpl.render(tt.vars)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("render: got error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateSyntax(t *testing.T) {
	for _, text := range []string{"Bonjour {{prenom", "{{}}", "{{ a b }}", "{{é}}"} {
		if _, err := parseTemplate(text); !errors.Is(err, ErrTemplateSyntax) {
			t.Errorf("parseTemplate(%q): got %v, want %v", text, err, ErrTemplateSyntax)
		}
	}
}

func TestTemplateVariables(t *testing.T) {
	tpl, err := parseTemplate("{{a}} {{b}} {{a}} {{ c }}")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tpl.variables(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("variables = %v, want %v", got, want)
	}
}

func FuzzTemplate(f *testing.F) {
	f.Add("Bonjour {{prenom}}, code {{ code }}", "Zoé")
	f.Add("{{a}}{{", "x")
	f.Add("}}{{a}}", "")
	f.Fuzz(func(t *testing.T, text, value string) {
		tpl, err := parseTemplate(text)
		if err != nil {
			return
		}
		vars := map[string]string{}
		for _, v := range tpl.variables() {
			vars[v] = value
		}
		if _, err := tpl.render(vars); err != nil {
			t.Fatalf("render with every variable of %q: %v", text, err)
		}
	})
}
