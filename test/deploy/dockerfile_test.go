package deploy

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions: comments and blank
// lines dropped, lines ending in a backslash joined with the next.
func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		} else {
			cur.WriteByte(' ')
		}
		if body, more := strings.CutSuffix(trimmed, `\`); more {
			cur.WriteString(strings.TrimSpace(body))
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	return out
}

// stages groups the instructions by build stage.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

// buildCommand returns the Dockerfile's `go build` RUN command.
func buildCommand(ins []instruction) (string, error) {
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			return in.args, nil
		}
	}
	return "", errors.New("no RUN ... go build in the Dockerfile")
}

// dockerBuild runs the Dockerfile's build command in the repository, as the
// build stage does (sh -c, VERSION from the build argument), with the output
// at out instead of /out/mirrorlet.
func dockerBuild(out string) error {
	data, err := os.ReadFile(path("Dockerfile"))
	if err != nil {
		return err
	}
	build, err := buildCommand(parseDockerfile(string(data)))
	if err != nil {
		return err
	}
	if !strings.Contains(build, "-o /out/mirrorlet ") {
		return fmt.Errorf("build command %q does not write /out/mirrorlet", build)
	}
	build = strings.Replace(build, "-o /out/mirrorlet ", "-o '"+out+"' ", 1)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is not on PATH: %w", err)
	}
	_, err = command(repo, []string{"VERSION=" + testVersion, "PATH=" + filepath.Dir(goBin) + ":" + os.Getenv("PATH")}, "sh", "-c", build)
	return err
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(read(t, "Dockerfile"))
	st := stages(ins)
	if len(st) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(st))
	}
	build, err := buildCommand(ins)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0 ", "-trimpath", "-ldflags", "-X github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app.Version=${VERSION}", "./cmd/mirrorlet"} {
		if !strings.Contains(build, want) {
			t.Errorf("build command %q lacks %q", build, want)
		}
	}
	if !strings.HasPrefix(build, "CGO_ENABLED=0 ") {
		t.Errorf("build command %q does not start with CGO_ENABLED=0", build)
	}
	final := st[len(st)-1]
	from := strings.Fields(final[0].args)
	if len(from) == 0 || !strings.HasPrefix(from[0], "gcr.io/distroless/static") || !strings.HasSuffix(from[0], ":nonroot") {
		t.Errorf("final stage (line %d) is FROM %q, want distroless static :nonroot", final[0].line, final[0].args)
	}
	var copied, entry bool
	for _, in := range final {
		switch in.cmd {
		case "COPY":
			copied = copied || strings.HasPrefix(in.args, "--from=")
		case "ENTRYPOINT":
			entry = true
		case "RUN":
			t.Errorf("final stage runs %q (line %d): distroless has no shell", in.args, in.line)
		}
	}
	if !copied || !entry {
		t.Errorf("final stage should COPY --from the build stage and have an ENTRYPOINT (copy %v, entrypoint %v)", copied, entry)
	}
}

func TestDockerBuildIsStatic(t *testing.T) {
	bin := binary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %s program header: it is dynamically linked", p.Type)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	out, err := command(repo, nil, bin, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "mirrorlet "+testVersion+" ") {
		t.Errorf("`mirrorlet version` printed %q, want the version %s from -ldflags", out, testVersion)
	}
}

func TestParseDockerfile(t *testing.T) {
	got := parseDockerfile("# c\nFROM a AS b\n\nRUN x \\\n    y \\\n  # not a comment inside? dropped\n    z\nfrom c\n")
	want := []instruction{{"FROM", "a AS b", 2}, {"RUN", "x y z", 4}, {"FROM", "c", 8}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
