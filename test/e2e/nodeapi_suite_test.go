package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// What the suite sets up so that the API server calls the node API as it
// calls a kubelet's (configureKubeletAPI, authorizeKubeletClient).
var (
	testEnv *envtest.Environment
	// kubeletClientCA signed the API server's kubelet client certificate
	// (user kube-apiserver-kubelet-client): every node API's
	// --client-ca-file.
	kubeletClientCA *testCA
	// servingCA is the API server's --kubelet-certificate-authority: it
	// signs node API serving certificates (withNodeAPI's files, and the
	// CSRs a test approves).
	servingCA *testCA
)

// kubeletClientUser is the API server's identity towards node APIs.
const kubeletClientUser = "kube-apiserver-kubelet-client"

// configureKubeletAPI makes the test PKI under dir and points the API
// server at node APIs as at kubelets: its client certificate, the CA it
// verifies serving certificates with, and InternalIP first. Call before
// env.Start.
func configureKubeletAPI(env *envtest.Environment, dir string) error {
	var err error
	if kubeletClientCA, err = newTestCA(filepath.Join(dir, "kubelet-client"), "kubelet-client-ca"); err != nil {
		return err
	}
	if servingCA, err = newTestCA(filepath.Join(dir, "kubelet-serving"), "kubelet-serving-ca"); err != nil {
		return err
	}
	cert, key, err := kubeletClientCA.clientCert(kubeletClientUser)
	if err != nil {
		return err
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("kubelet-client-certificate", cert).
		Set("kubelet-client-key", key).
		Set("kubelet-certificate-authority", servingCA.Path).
		Set("kubelet-preferred-address-types", "InternalIP,Hostname")
	testEnv = env
	return nil
}

// authorizeKubeletClient lets the API server's kubelet client identity
// call every node API (the ClusterRole a cluster installer binds to it).
// Call after env.Start.
func authorizeKubeletClient(ctx context.Context) error {
	return k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-kube-apiserver-kubelet-client"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: kubeletClientUser}},
	})
}

// Serving certificates withNodeAPI can give a node.
const (
	// certFiles: --tls-cert-file/--tls-private-key-file signed by servingCA.
	certFiles = "files"
	// certSelfSigned: none given; mirrorlet makes its own.
	certSelfSigned = "self-signed"
	// certFromCluster: --rotate-server-certificates; the test approves.
	certFromCluster = "csr"
)

// withNodeAPI serves the node API on a free port of 127.0.0.1 (the
// node's InternalIP) with the suite's client CA and a serving certificate
// from certs. The node's apiPort is set.
func withNodeAPI(certs string) nodeOption {
	return func(n *node) {
		n.t.Helper()
		n.apiPort = freePort(n.t)
		n.extraFlags = append(n.extraFlags, "--port", fmt.Sprint(n.apiPort), "--address", "127.0.0.1",
			"--node-ip", "127.0.0.1", "--client-ca-file", kubeletClientCA.Path)
		switch certs {
		case certFiles:
			cert, key, err := servingCA.servingCert(n.name+"-serving", net.ParseIP("127.0.0.1"))
			if err != nil {
				n.t.Fatal(err)
			}
			n.extraFlags = append(n.extraFlags, "--tls-cert-file", cert, "--tls-private-key-file", key)
		case certFromCluster:
			n.extraFlags = append(n.extraFlags, "--rotate-server-certificates")
		}
	}
}

// nodeAPIClient calls a node API directly, trusting any serving
// certificate (what is tested is the caller's identity), with the client
// certificate certFile/keyFile when given.
func nodeAPIClient(certFile, keyFile string) (*http.Client, error) {
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the serving certificate is not what these calls test
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// servedCertificate returns the certificate the node API on port serves.
func servedCertificate(port int) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading it, not trusting it
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// fileMode returns the permission bits of path.
func fileMode(path string) (os.FileMode, error) {
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Mode().Perm(), nil
}
