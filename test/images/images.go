package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is one test image: a Go program of this package as entrypoint.
type Image struct {
	// Name is the repository name under mirrorlet/, e.g. "webserver".
	Name string
	// Package is the Go package to build.
	Package string
}

// All are the test images.
var All = []Image{
	{Name: "pause", Package: "github.com/mirrorlet/mirrorlet/test/images/pause"},
	{Name: "webserver", Package: "github.com/mirrorlet/mirrorlet/test/images/webserver"},
	{Name: "fakeetcd", Package: "github.com/mirrorlet/mirrorlet/test/images/cmd/fakeetcd"},
	{Name: "fakeapiserver", Package: "github.com/mirrorlet/mirrorlet/test/images/cmd/fakeapiserver"},
}

// Tag of every test image.
const Tag = "v1"

// Build compiles img's program statically into workDir and wraps it in a
// one-layer image whose entrypoint it is.
func Build(ctx context.Context, img Image, workDir string) (v1.Image, error) {
	bin := filepath.Join(workDir, img.Name)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, img.Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %s: %w\n%s", img.Package, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", bin, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarOf("/"+img.Name, data))), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making layer of %s: %w", img.Name, err)
	}
	out, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("making image %s: %w", img.Name, err)
	}
	cfg, err := out.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", goruntime.GOARCH
	cfg.Config.Entrypoint = []string{"/" + img.Name}
	cfg.Config.Env = []string{"PATH=/"}
	return mutate.ConfigFile(out, cfg)
}

// tarOf returns a tar holding one executable file.
func tarOf(path string, data []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: path, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	_, _ = tw.Write(data)
	_ = tw.Close()
	return buf.Bytes()
}

// Registry is a local OCI registry on 127.0.0.1.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host     string
	server   *http.Server
	listener net.Listener
	slow     *slowBlobs
}

// Serve starts an in-memory registry on addr ("127.0.0.1:0" for any port).
func Serve(addr string) (*Registry, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	slow := &slowBlobs{next: registry.New(registry.Logger(nopLogger())), slow: map[string]time.Duration{}}
	r := &Registry{Host: l.Addr().String(), listener: l, slow: slow,
		server: &http.Server{Handler: slow, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = r.server.Serve(l) }()
	return r, nil
}

// Ref returns the reference of a test image in this registry.
func (r *Registry) Ref(imageName string) string {
	return fmt.Sprintf("%s/mirrorlet/%s:%s", r.Host, imageName, Tag)
}

// Push uploads img as Ref(name).
func (r *Registry) Push(ctx context.Context, imageName string, img v1.Image) error {
	ref, err := name.ParseReference(r.Ref(imageName), name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// Close stops the registry.
func (r *Registry) Close() error {
	err := r.server.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// BuildAndPush builds every test image and pushes it to r.
func BuildAndPush(ctx context.Context, r *Registry, workDir string) error {
	for _, img := range All {
		built, err := Build(ctx, img, workDir)
		if err != nil {
			return err
		}
		if err := r.Push(ctx, img.Name, built); err != nil {
			return err
		}
	}
	return nil
}
