package credentials

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// testCA is the client CA the API server trusts: it signs the users the
// suite adds and the certificates of the CSRs the test approves.
type testCA struct {
	cert   *x509.Certificate
	key    crypto.Signer
	serial atomic.Int64
}

func newTestCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mirrorlet-test-client-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &testCA{cert: cert, key: key}
	ca.serial.Store(100)
	return ca, nil
}

func (ca *testCA) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// sign issues a client certificate for pub, valid for ttl, and returns it
// as PEM.
func (ca *testCA) sign(pub crypto.PublicKey, subject pkix.Name, ttl time.Duration) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: subject,
		NotBefore: time.Now().Add(-time.Second), NotAfter: time.Now().Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing client certificate for %s: %w", subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// authn is an envtest.Authn that authenticates users by client
// certificates of the suite's testCA.
type authn struct {
	ca  *testCA
	dir string
}

var _ envtest.Authn = &authn{}

func (a *authn) caPath() string { return filepath.Join(a.dir, "client-ca.crt") }

// Configure implements envtest.Authn.
func (a *authn) Configure(workDir string, args *envtest.Arguments) error {
	a.dir = workDir
	args.Set("client-ca-file", a.caPath())
	return nil
}

// Start implements envtest.Authn.
func (a *authn) Start() error { return os.WriteFile(a.caPath(), a.ca.certPEM(), 0o600) }

// Stop implements envtest.Authn.
func (a *authn) Stop() error { return nil }

// AddUser implements envtest.Authn.
func (a *authn) AddUser(user envtest.User, base *rest.Config) (*rest.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	certPEM, err := a.ca.sign(key.Public(), pkix.Name{CommonName: user.Name, Organization: user.Groups}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(base)
	cfg.CertData = certPEM
	cfg.KeyData = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return cfg, nil
}
