package credentials

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

// firstLifetime is the lifetime of the certificate the script gets: short,
// so that mirrorlet must renew it during the test.
const firstLifetime = 20 * time.Second

// TestCSRIssuedCertificateRotated gets mirrorlet its credential the way
// README says (deploy/scripts/request-credential.sh, run with an admin's
// kubectl), runs it with --rotate-certificates, and checks that it renews
// the certificate itself, as itself, and keeps working once the first one
// has expired.
func TestCSRIssuedCertificateRotated(t *testing.T) {
	grantAgentRole(t)
	node := newNodeName("csr")
	user := "mirrorlet:node:" + node
	s := &signer{user: user, approve: true, ttl: func(n int) time.Duration {
		if n == 0 {
			return firstLifetime
		}
		return time.Hour
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx, t)

	dir := t.TempDir()
	kubeconfig := requestCredential(t, node, dir)
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rootDir := t.TempDir()
	a := startAgent(t, node, restCfg, func(o *app.Options) {
		o.KubeconfigPath, o.RotateCertificates, o.RootDir = kubeconfig, true, rootDir
	})
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}))
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "a" })

	first := s.certificates()[0]
	if first.requestor != "admin" {
		t.Errorf("first CSR asked by %q, want the admin who ran the script", first.requestor)
	}
	var renewed issued
	eventually(t, "mirrorlet to renew its certificate through a CSR of its own", func() bool {
		certs := s.certificates()
		if len(certs) < 2 {
			return false
		}
		renewed = certs[1]
		return true
	})
	if renewed.requestor != user || renewed.cert.Subject.CommonName != user ||
		strings.Join(renewed.cert.Subject.Organization, ",") != "mirrorlet:nodes" {
		t.Fatalf("renewal CSR %s asked by %q for %s, want by and for %s in mirrorlet:nodes",
			renewed.csr, renewed.requestor, renewed.cert.Subject, user)
	}

	// Once the first certificate has expired, mirrorlet still works.
	eventually(t, "the first certificate to expire", func() bool {
		return time.Now().After(first.cert.NotAfter.Add(time.Second))
	})
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "b"}))
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	if got := currentSerial(t, rootDir); got != renewed.cert.SerialNumber.String() {
		t.Errorf("certificate in use has serial %s, want the renewed %s", got, renewed.cert.SerialNumber)
	}
	if got := gauge(t, "mirrorlet_client_certificate_expiration_seconds"); got != float64(renewed.cert.NotAfter.Unix()) {
		t.Errorf("mirrorlet_client_certificate_expiration_seconds = %v, want the renewed certificate's %d", got, renewed.cert.NotAfter.Unix())
	}
	if a.Logs.Count("Client certificate rotated") == 0 {
		t.Error("no rotation logged")
	}
	// No request may go out with the expired certificate once the new
	// one is in use (an old connection kept open would still present
	// it). Before the rotation, a renewal that client-go's jitter started
	// late on a loaded machine may see the first one expire: not ours.
	logs := a.Logs.String()
	rotated := strings.Index(logs, "Client certificate rotated")
	if rotated < 0 {
		return
	}
	if n := strings.Count(logs[:rotated], "Unauthorized"); n > 0 {
		t.Logf("%d requests refused as Unauthorized before the rotation (renewal started late)", n)
	}
	if n := strings.Count(logs[rotated:], "Unauthorized"); n > 0 {
		t.Errorf("%d requests refused as Unauthorized after the rotation", n)
	}
}

// requestCredential runs deploy/scripts/request-credential.sh as an admin
// and returns the kubeconfig it wrote, after checking the modes of the
// files it made.
func requestCredential(t *testing.T, node, dir string, args ...string) string {
	t.Helper()
	out := filepath.Join(dir, "kubeconfig")
	if output, err := credentialScript(t, node, dir, args...).CombinedOutput(); err != nil {
		t.Fatalf("request-credential.sh: %v\n%s", err, output)
	}
	for path, want := range map[string]os.FileMode{
		out: 0o600, filepath.Join(dir, "pki", "mirrorlet-client.key"): 0o600, filepath.Join(dir, "pki"): 0o700 | os.ModeDir,
	} {
		if info, err := os.Stat(path); err != nil || info.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, info.Mode(), err, want)
		}
	}
	return out
}

// credentialScript returns the command that runs request-credential.sh
// for node with an admin's kubeconfig, writing under dir.
func credentialScript(t *testing.T, node, dir string, args ...string) *exec.Cmd {
	t.Helper()
	adminUser, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	adminKubeconfig, err := adminUser.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	adminPath := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(adminPath, adminKubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--dir", filepath.Join(dir, "pki"), "--kubeconfig-out", filepath.Join(dir, "kubeconfig"),
		"--timeout", "30"}, append(args, node)...)
	cmd := exec.Command("../../deploy/scripts/request-credential.sh", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+adminPath,
		"PATH="+os.Getenv("KUBEBUILDER_ASSETS")+string(os.PathListSeparator)+os.Getenv("PATH"))
	return cmd
}

// currentSerial returns the serial of the certificate mirrorlet's store
// holds as current.
func currentSerial(t *testing.T, rootDir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rootDir, "pki", app.ClientCertPairName+"-current.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return cert.SerialNumber.String()
		}
	}
	t.Fatal("no certificate in the current pair")
	return ""
}

// gauge returns the value of a gauge of the process's metrics registry.
func gauge(t *testing.T, name string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
