package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/runtime/cri"
	"github.com/mirrorlet/mirrorlet/test/images"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// What the suite shares; set up once in TestMain.
var (
	cp       *controlPlane
	apiProxy *proxy
	// admin reads and writes as system:masters, straight to the API server.
	admin    client.Client
	binary   string
	registry *images.Registry
	ctd      *nodetest.Containerd
	workDir  string
	// nodeRuntime reads the suite's containerd directly, behind mirrorlet's back.
	nodeRuntime *cri.Runtime
)

// full runs the long variants the issue names (FAULTS_FULL=1).
var full = os.Getenv("FAULTS_FULL") != ""

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test-e2e`")
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the fault suite runs containers and needs root: run `sudo make test-e2e`")
		return 1
	}
	var err error
	if workDir, err = os.MkdirTemp("/tmp", "ml-faults-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(workDir) }()
	defer teardown()
	if err := setup(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "fault suite setup: %v\n", err)
		return 1
	}
	return m.Run()
}

func setup(ctx context.Context) error {
	steps := []struct {
		what string
		f    func(context.Context) error
	}{
		{"start etcd and kube-apiserver", startAPI},
		{"build the test images and serve them from a local registry", startRegistry},
		{"build mirrorlet", func(context.Context) (err error) { binary, err = nodetest.BuildMirrorlet(workDir); return err }},
		{"start a private containerd", startContainerd},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		fmt.Fprintf(os.Stderr, "faults setup: %s (%s)\n", s.what, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func startAPI(ctx context.Context) error {
	var err error
	if cp, err = startControlPlane(filepath.Join(workDir, "pki")); err != nil {
		return err
	}
	if apiProxy, err = startProxy(fmt.Sprintf("127.0.0.1:%d", cp.port)); err != nil {
		return err
	}
	cfg, err := cp.restConfig("faults-admin", "system:masters")
	if err != nil {
		return err
	}
	cfg.QPS = -1 // no client-side throttle: the tests time what mirrorlet does
	if admin, err = client.New(cfg, client.Options{}); err != nil {
		return err
	}
	return nodetest.ApplyFiles(ctx, admin, "deploy/rbac/mirrorlet.yaml")
}

func startRegistry(ctx context.Context) error {
	var err error
	if registry, err = images.Serve("127.0.0.1:0"); err != nil {
		return err
	}
	return images.BuildAndPush(ctx, registry, workDir)
}

func startContainerd(ctx context.Context) error {
	var err error
	if ctd, err = nodetest.StartContainerd(ctx, filepath.Join(workDir, "ctd"), registry.Host); err != nil {
		return err
	}
	nodeRuntime = ctd.Runtime
	return nil
}

func teardown() {
	if ctd != nil {
		if err := ctd.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if registry != nil {
		_ = registry.Close()
	}
	if apiProxy != nil {
		apiProxy.close()
	}
	if cp != nil {
		cp.stop()
	}
}
