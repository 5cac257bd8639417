package image

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"sigs.k8s.io/yaml"
)

// The images of the repository: the five services, and the simulator the
// dev overlay runs. scripts/images.sh builds the same list.
var images = []struct {
	name     string
	manifest string // under deploy/k8s: the Deployment that runs it
}{
	{"ingest", "base/ingest/deployment.yaml"},
	{"compliance", "base/compliance/deployment.yaml"},
	{"throttle", "base/throttle/deployment.yaml"},
	{"smsc-link", "base/smsc-link/deployment.yaml"},
	{"billing", "base/billing/deployment.yaml"},
	{"smsc-sim", "overlays/dev/smsc-sim.yaml"},
}

const distroless = "gcr.io/distroless/static-debian12:nonroot"

// TestDockerfile reads deploy/images/Dockerfile with BuildKit's own parser
// and linter (it cannot be built here: no registry) and checks that each
// target makes the layout mkimage makes: /<name> from a CGO_ENABLED=0,
// -trimpath build, on distroless static:nonroot, as 65532:65532.
func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile("../../deploy/images/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	var lint []string
	stages, _, err := instructions.Parse(res.AST, linter.New(&linter.Config{
		Warn: func(rule, _, _, msg string, loc []parser.Range) {
			line := 0
			if len(loc) > 0 {
				line = loc[0].Start.Line
			}
			lint = append(lint, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lint {
		t.Errorf("Dockerfile lint: %s", l)
	}
	byName := make(map[string]instructions.Stage)
	for _, s := range stages {
		byName[s.Name] = s
	}
	// chain returns the commands of stage and the stages it is FROM, base
	// first, and the image it starts from.
	chain := func(name string) ([]instructions.Command, string) {
		var cmds []instructions.Command
		for {
			s, ok := byName[name]
			if !ok {
				return cmds, name
			}
			cmds = append(slices.Clone(s.Commands), cmds...)
			name = s.BaseName
		}
	}

	for _, im := range images {
		t.Run(im.name, func(t *testing.T) {
			s, ok := byName[im.name]
			if !ok {
				t.Fatalf("no target %s", im.name)
			}
			cmds, from := chain(im.name)
			if from != distroless {
				t.Errorf("target %s is FROM %s, want %s", im.name, from, distroless)
			}
			var user string
			for _, c := range cmds {
				if u, ok := c.(*instructions.UserCommand); ok {
					user = u.User
				}
			}
			if user != User {
				t.Errorf("USER %q, want %q", user, User)
			}
			var entrypoint, copied bool
			for _, c := range s.Commands {
				switch c := c.(type) {
				case *instructions.EntrypointCommand:
					entrypoint = !c.PrependShell && slices.Equal(c.CmdLine, []string{"/" + im.name})
				case *instructions.CopyCommand:
					copied = c.From == "build-"+im.name && c.DestPath == "/"+im.name &&
						slices.Equal(c.SourcePaths, []string{"/out/" + im.name})
				}
			}
			if !entrypoint {
				t.Errorf(`no ENTRYPOINT ["/%s"]`, im.name)
			}
			if !copied {
				t.Errorf("no COPY --from=build-%s /out/%[1]s /%[1]s", im.name)
			}

			build, _ := chain("build-" + im.name)
			var env []string
			var run string
			for _, c := range build {
				switch c := c.(type) {
				case *instructions.EnvCommand:
					for _, kv := range c.Env {
						env = append(env, kv.String())
					}
				case *instructions.RunCommand:
					run = strings.Join(c.CmdLine, " ")
				}
			}
			if !slices.Contains(env, "CGO_ENABLED=0") {
				t.Errorf("build-%s: ENV %v, want CGO_ENABLED=0", im.name, env)
			}
			for _, want := range []string{"go build ", " -trimpath ", " -ldflags='-s -w' ", " -o /out/" + im.name + " "} {
				if !strings.Contains(run, want) {
					t.Errorf("build-%s: RUN %q, want %q", im.name, run, want)
				}
			}
		})
	}
}

// pod is what deploy/k8s says about running an image.
type pod struct {
	Kind string `json:"kind"`
	Spec struct {
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsUser  *int64 `json:"runAsUser"`
					RunAsGroup *int64 `json:"runAsGroup"`
				} `json:"securityContext"`
				Containers []struct {
					Name            string   `json:"name"`
					Image           string   `json:"image"`
					Command         []string `json:"command"`
					SecurityContext struct {
						ReadOnlyRootFilesystem *bool `json:"readOnlyRootFilesystem"`
					} `json:"securityContext"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

// TestManifests checks that deploy/k8s runs the images as they are built:
// the name pushsms/<name>, the command /<name>, UID and GID 65532, and the
// dev overlay's tag "dev", scripts/images.sh's default.
func TestManifests(t *testing.T) {
	for _, im := range images {
		t.Run(im.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("../../deploy/k8s", im.manifest))
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, doc := range bytes.Split(b, []byte("\n---")) {
				var p pod
				if err := yaml.Unmarshal(doc, &p); err != nil {
					t.Fatalf("%s: %v", im.manifest, err)
				}
				if p.Kind != "Deployment" {
					continue
				}
				ps := p.Spec.Template.Spec
				for _, c := range ps.Containers {
					if c.Name != im.name {
						continue
					}
					found = true
					if want := "pushsms/" + im.name; c.Image != want {
						t.Errorf("%s: image %q, want %q", im.manifest, c.Image, want)
					}
					if want := []string{"/" + im.name}; !slices.Equal(c.Command, want) {
						t.Errorf("%s: command %q, want %q", im.manifest, c.Command, want)
					}
					if ro := c.SecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
						t.Errorf("%s: root file system not read-only", im.manifest)
					}
				}
				if u, g := ps.SecurityContext.RunAsUser, ps.SecurityContext.RunAsGroup; u == nil || *u != UID || g == nil || *g != GID {
					t.Errorf("%s: pod runs as %v:%v, want %d:%d", im.manifest, deref(u), deref(g), UID, GID)
				}
			}
			if !found {
				t.Errorf("%s: no Deployment with a container %s", im.manifest, im.name)
			}
		})
	}

	for _, overlay := range []string{"dev", "prod"} {
		b, err := os.ReadFile(filepath.Join("../../deploy/k8s/overlays", overlay, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			Images []struct {
				Name    string `json:"name"`
				NewName string `json:"newName"`
				NewTag  string `json:"newTag"`
			} `json:"images"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			t.Fatal(err)
		}
		tags := make(map[string]string)
		for _, i := range k.Images {
			if i.NewName != "" {
				t.Errorf("overlay %s renames %s to %s", overlay, i.Name, i.NewName)
			}
			tags[i.Name] = i.NewTag
		}
		for _, im := range images {
			tag, ok := tags["pushsms/"+im.name]
			switch {
			case im.name == "smsc-sim" && overlay == "prod":
			case !ok:
				t.Errorf("overlay %s sets no tag for pushsms/%s", overlay, im.name)
			case overlay == "dev" && tag != "dev":
				t.Errorf("overlay dev: pushsms/%s:%s, want the tag make images writes, dev", im.name, tag)
			}
		}
	}
}

func deref(p *int64) any {
	if p == nil {
		return "unset"
	}
	return *p
}
