// Command localcluster runs a local kube-apiserver and etcd (the envtest
// binaries from hack/build-envtest.sh) and writes an admin kubeconfig, for
// the demo and for trying mirrorlet by hand. It runs until SIGINT/SIGTERM,
// then stops both and removes their data.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run() error {
	// Own flag set: controller-runtime registers a global --kubeconfig.
	fs := flag.NewFlagSet("localcluster", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "Where to write the admin kubeconfig (required).")
	kubeletPKI := fs.String("kubelet-pki-dir", "", "If set, the API server calls node APIs with a client certificate made here; "+
		"node APIs verify it with "+KubeletClientCAFile+" (mirrorlet's --client-ca-file).")
	_ = fs.Parse(os.Args[1:])
	if *kubeconfig == "" {
		return fmt.Errorf("--kubeconfig is required")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS must point at the envtest binaries (hack/build-envtest.sh prints it)")
	}
	env := &envtest.Environment{}
	if *kubeletPKI != "" {
		if err := configureKubeletClient(env, *kubeletPKI); err != nil {
			return err
		}
	}
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	defer func() { _ = env.Stop() }()
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding admin user: %w", err)
	}
	if *kubeletPKI != "" {
		if err := authorizeKubeletClient(context.Background(), user.Config()); err != nil {
			return err
		}
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering kubeconfig: %w", err)
	}
	tmp := *kubeconfig + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	if err := os.Rename(tmp, *kubeconfig); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	fmt.Printf("API server %s; kubeconfig %s\n", env.Config.Host, *kubeconfig)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
	return nil
}
