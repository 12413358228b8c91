package faults

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controlPlane is an etcd (envtest's) and a kube-apiserver run from the
// envtest binaries by the suite itself: envtest's ControlPlane makes new
// certificates when its API server starts again, so it cannot prove a
// restart on the same data with the same clients.
type controlPlane struct {
	dir    string
	etcd   *envtest.Etcd
	port   int
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	cmd    *exec.Cmd
	exited chan struct{}
}

func startControlPlane(dir string) (*controlPlane, error) {
	cp := &controlPlane{dir: dir, etcd: &envtest.Etcd{}}
	if err := cp.etcd.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cp.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if err := cp.makePKI(); err != nil {
		return nil, err
	}
	return cp, cp.startAPIServer()
}

// makePKI writes the CA (clients and server), the serving certificate and
// the service account key.
func (cp *controlPlane) makePKI() error {
	if err := os.MkdirAll(cp.dir, 0o700); err != nil {
		return err
	}
	var err error
	if cp.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	if cp.ca, err = certutil.NewSelfSignedCACert(certutil.Config{CommonName: "faults-ca"}, cp.caKey); err != nil {
		return fmt.Errorf("making the CA: %w", err)
	}
	if err := certutil.WriteCert(cp.path("ca.crt"), pemCert(cp.ca.Raw)); err != nil {
		return err
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if err := cp.issue(serving, cp.path("serving.crt"), cp.path("serving.key")); err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(saKey)
	if err != nil {
		return err
	}
	if err := keyutil.WriteKey(cp.path("sa.key"), keyPEM); err != nil {
		return err
	}
	return os.WriteFile(cp.path("audit-policy.yaml"), []byte(auditPolicy), 0o600)
}

// auditPolicy records every write to pods and nodes (who, what, answer;
// for pod deletes their options too: grace period, UID precondition): how
// tests count mirrorlet's API writes.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Request
  verbs: ["delete"]
  resources:
  - group: ""
    resources: ["pods"]
- level: Metadata
  verbs: ["create", "update", "patch", "delete"]
  resources:
  - group: ""
    resources: ["pods", "pods/status", "nodes", "nodes/status"]
- level: None
`

// issue signs tmpl with the CA and writes the certificate and a new key.
func (cp *controlPlane) issue(tmpl *x509.Certificate, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62)); err != nil {
		return err
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cp.ca, key.Public(), cp.caKey)
	if err != nil {
		return fmt.Errorf("signing %s: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	if err := keyutil.WriteKey(keyPath, keyPEM); err != nil {
		return err
	}
	return certutil.WriteCert(certPath, pemCert(der))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (cp *controlPlane) path(name string) string { return filepath.Join(cp.dir, name) }

// url is the API server's own address (not the proxy's).
func (cp *controlPlane) url() string { return "https://127.0.0.1:" + strconv.Itoa(cp.port) }

// startAPIServer starts kube-apiserver on the suite's etcd and port and
// waits until it is ready.
func (cp *controlPlane) startAPIServer() error {
	args := []string{
		"--etcd-servers=" + cp.etcd.URL.String(),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(cp.port),
		"--tls-cert-file=" + cp.path("serving.crt"), "--tls-private-key-file=" + cp.path("serving.key"),
		"--client-ca-file=" + cp.path("ca.crt"),
		"--service-account-issuer=" + cp.url(),
		"--service-account-key-file=" + cp.path("sa.key"), "--service-account-signing-key-file=" + cp.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true", "--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC", "--disable-admission-plugins=ServiceAccount",
		"--audit-policy-file=" + cp.path("audit-policy.yaml"), "--audit-log-path=" + cp.path("audit.log"),
		"--audit-log-mode=blocking",
	}
	log, err := os.OpenFile(cp.path("kube-apiserver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cp.cmd = exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-apiserver"), args...)
	cp.cmd.Stdout, cp.cmd.Stderr = log, log
	if err := cp.cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	cp.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); _ = log.Close(); close(exited) }(cp.cmd, cp.exited)
	return cp.waitReady()
}

func (cp *controlPlane) waitReady() error {
	cfg, err := cp.restConfig("faults-admin", "system:masters")
	if err != nil {
		return err
	}
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true,
		func(context.Context) (bool, error) {
			select {
			case <-cp.exited:
				data, _ := os.ReadFile(cp.path("kube-apiserver.log"))
				return false, fmt.Errorf("kube-apiserver exited:\n%s", data[max(0, len(data)-3000):])
			default:
			}
			return answers200(c, cp.url()+"/readyz"), nil
		})
}

// answers200 says whether url answers 200 (not answering is no).
func answers200(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stopAPIServer stops kube-apiserver (SIGTERM; SIGKILL if it still runs
// 5 s later: its graceful shutdown waits for watches) and waits until it
// exits.
func (cp *controlPlane) stopAPIServer() error {
	if cp.cmd == nil {
		return nil
	}
	_ = cp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cp.exited:
	case <-time.After(5 * time.Second):
		_ = cp.cmd.Process.Kill()
		<-cp.exited
	}
	cp.cmd = nil
	return nil
}

// ensureAPIServer starts kube-apiserver if a test left it stopped.
func (cp *controlPlane) ensureAPIServer() error {
	if cp.cmd != nil {
		return nil
	}
	return cp.startAPIServer()
}

func (cp *controlPlane) stop() {
	_ = cp.stopAPIServer()
	_ = cp.etcd.Stop()
}

// restConfig is a client certificate identity (user, groups) signed by
// the suite's CA, talking to the API server directly.
func (cp *controlPlane) restConfig(user string, groups ...string) (*rest.Config, error) {
	name := filepath.Join(cp.dir, "user-"+user)
	if _, err := os.Stat(name + ".crt"); err != nil {
		tmpl := &x509.Certificate{
			Subject:  pkix.Name{CommonName: user, Organization: groups},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if err := cp.issue(tmpl, name+".crt", name+".key"); err != nil {
			return nil, err
		}
	}
	return &rest.Config{
		Host: cp.url(),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: cp.path("ca.crt"), CertFile: name + ".crt", KeyFile: name + ".key",
		},
	}, nil
}
