package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testVersion is the VERSION build argument the tests build with.
const testVersion = "v0.0.0-deploytest"

var (
	// repo is the repository root.
	repo string
	// scratch holds what the tests share: the binary built once.
	scratch string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repo, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if scratch, err = os.MkdirTemp("", "mirrorlet-deploy-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	return m.Run()
}

// path returns the path of a file of the repository.
func path(rel string) string { return filepath.Join(repo, filepath.FromSlash(rel)) }

func read(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(path(rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

var built struct {
	once sync.Once
	path string
	err  error
}

// binary builds mirrorlet once with the Dockerfile's build command and
// returns its path.
func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.path = filepath.Join(scratch, "mirrorlet")
		built.err = dockerBuild(built.path)
	})
	if built.err != nil {
		t.Fatalf("building mirrorlet as the Dockerfile does: %v", built.err)
	}
	return built.path
}

// command runs name with args in dir and returns its combined output.
func command(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}
