package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/rest"
)

func TestSignerFor(t *testing.T) {
	for _, tc := range []struct {
		subject pkix.Name
		want    string
	}{
		{pkix.Name{CommonName: "mirrorlet:node:n1", Organization: []string{"mirrorlet:nodes"}}, certificatesv1.KubeAPIServerClientSignerName},
		{pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}, certificatesv1.KubeAPIServerClientKubeletSignerName},
		// The kubelet signer only signs exactly system:nodes.
		{pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes", "other"}}, certificatesv1.KubeAPIServerClientSignerName},
		{pkix.Name{CommonName: "system:node:n1"}, certificatesv1.KubeAPIServerClientSignerName},
	} {
		if got := SignerFor(tc.subject); got != tc.want {
			t.Errorf("SignerFor(%s) = %s, want %s", tc.subject, got, tc.want)
		}
	}
}

// TestCertificateStoreTakesTheLongerLivedPair: the store starts from the
// kubeconfig's certificate, keeps a renewed one that outlives it, and takes
// a freshly issued kubeconfig certificate over an older stored one.
func TestCertificateStoreTakesTheLongerLivedPair(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	use := func(notAfter time.Duration) (*Options, int64) {
		certPEM, keyPEM, serial := selfSigned(t, notAfter)
		certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		return &Options{RootDir: root, Log: logr.Discard(),
			RestConfig: &rest.Config{TLSClientConfig: rest.TLSClientConfig{CertFile: certFile, KeyFile: keyFile}}}, serial
	}
	current := func(opts *Options) int64 {
		store, err := newCertificateStore(opts)
		if err != nil {
			t.Fatal(err)
		}
		c, err := store.Current()
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.Int64()
	}
	opts, first := use(time.Hour)
	if got := current(opts); got != first {
		t.Fatalf("empty store: serial %d, want the kubeconfig's %d", got, first)
	}
	// A renewal lives longer than the kubeconfig's certificate: kept.
	store, _ := newCertificateStore(opts)
	renewedPEM, renewedKey, renewed := selfSigned(t, 48*time.Hour)
	if _, err := store.Update(renewedPEM, renewedKey); err != nil {
		t.Fatal(err)
	}
	if got := current(opts); got != renewed {
		t.Fatalf("after a renewal: serial %d, want the renewed %d", got, renewed)
	}
	// The operator issues a new credential that outlives the stored one.
	opts, reissued := use(72 * time.Hour)
	if got := current(opts); got != reissued {
		t.Fatalf("after a new credential: serial %d, want the new %d", got, reissued)
	}
}

var testSerial atomic.Int64

// selfSigned returns a client certificate and key valid for ttl.
func selfSigned(t *testing.T, ttl time.Duration) (certPEM, keyPEM []byte, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial = testSerial.Add(1)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "mirrorlet:node:n1"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(ttl), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), serial
}
