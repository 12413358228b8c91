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
	agentNode := fs.String("agent-node", "", "Also write a kubeconfig for user mirrorlet:node:<this node> in group mirrorlet:nodes.")
	agentKubeconfig := fs.String("agent-kubeconfig", "", "Where to write the --agent-node kubeconfig (mode 0600).")
	kubeletPKI := fs.String("kubelet-pki-dir", "", "If set, the API server calls node APIs with a client certificate made here; "+
		"node APIs verify it with "+KubeletClientCAFile+" (mirrorlet's --client-ca-file).")
	_ = fs.Parse(os.Args[1:])
	if *kubeconfig == "" {
		return fmt.Errorf("--kubeconfig is required")
	}
	if (*agentNode == "") != (*agentKubeconfig == "") {
		return fmt.Errorf("--agent-node and --agent-kubeconfig go together")
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
	if *agentNode != "" {
		// Written before the admin's: the demo waits for that one.
		if err := writeAgentKubeconfig(env, *agentNode, *agentKubeconfig); err != nil {
			return err
		}
	}
	admin := envtest.User{Name: "admin", Groups: []string{"system:masters"}}
	if *kubeletPKI != "" {
		u, err := env.ControlPlane.AddUser(admin, nil)
		if err != nil {
			return fmt.Errorf("adding admin user: %w", err)
		}
		if err := authorizeKubeletClient(context.Background(), u.Config()); err != nil {
			return err
		}
	}
	if err := writeKubeconfig(env, admin, *kubeconfig); err != nil {
		return err
	}
	fmt.Printf("API server %s; kubeconfig %s\n", env.Config.Host, *kubeconfig)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
	return nil
}

// writeAgentKubeconfig writes the kubeconfig of node's mirrorlet: user
// mirrorlet:node:<node> in group mirrorlet:nodes, the identity
// deploy/rbac and deploy/admission expect.
func writeAgentKubeconfig(env *envtest.Environment, node, path string) error {
	return writeKubeconfig(env, envtest.User{Name: "mirrorlet:node:" + node, Groups: []string{"mirrorlet:nodes"}}, path)
}

// writeKubeconfig writes, mode 0600 and atomically, a kubeconfig with a
// client certificate for user.
func writeKubeconfig(env *envtest.Environment, user envtest.User, path string) error {
	u, err := env.ControlPlane.AddUser(user, nil)
	if err != nil {
		return fmt.Errorf("adding user %s: %w", user.Name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering kubeconfig of %s: %w", user.Name, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig of %s: %w", user.Name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing kubeconfig of %s: %w", user.Name, err)
	}
	return nil
}
