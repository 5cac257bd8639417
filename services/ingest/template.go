package ingest

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of campaign templates.
var (
	ErrTemplateSyntax   = errors.New("ingest: template: unclosed {{ or bad variable name")
	ErrMissingVariable  = errors.New("ingest: template: missing variable")
	maxTemplateVariable = 64
)

// template is a campaign text with {{variable}} placeholders, parsed once
// so that rendering a recipient's text is a concatenation.
type template struct {
	// parts alternate: literal, variable, literal, ..., literal.
	parts []string
	size  int
}

// parseTemplate reads text with {{name}} placeholders (spaces inside the
// braces allowed). A name is letters, digits, '_', '-' or '.'.
func parseTemplate(text string) (template, error) {
	var t template
	rest := text
	var lit strings.Builder
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			lit.WriteString(rest)
			break
		}
		lit.WriteString(rest[:i])
		rest = rest[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return template{}, fmt.Errorf("%w: {{ at byte %d is not closed", ErrTemplateSyntax, len(text)-len(rest)-2)
		}
		name := strings.TrimSpace(rest[:j])
		if !validVariable(name) {
			return template{}, fmt.Errorf("%w: %q", ErrTemplateSyntax, truncate(name, 20))
		}
		t.parts = append(t.parts, lit.String(), name)
		t.size += lit.Len()
		lit.Reset()
		rest = rest[j+2:]
	}
	t.parts = append(t.parts, lit.String())
	t.size += lit.Len()
	return t, nil
}

func validVariable(name string) bool {
	if name == "" || len(name) > maxTemplateVariable {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}

// variables lists the template's variable names, each once.
func (t template) variables() []string {
	var out []string
	seen := map[string]bool{}
	for i := 1; i < len(t.parts); i += 2 {
		if !seen[t.parts[i]] {
			seen[t.parts[i]] = true
			out = append(out, t.parts[i])
		}
	}
	return out
}

// render fills the template with vars. A variable the template uses and
// vars lacks is an error naming it; extra variables are ignored.
func (t template) render(vars map[string]string) (string, error) {
	if len(t.parts) == 1 {
		return t.parts[0], nil
	}
	var b strings.Builder
	b.Grow(t.size + 16*len(t.parts)/2)
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v, ok := vars[p]
		if !ok {
			return "", fmt.Errorf("%w: %s", ErrMissingVariable, p)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
