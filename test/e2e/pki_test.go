package e2e

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
	"net"
	"os"
	"path/filepath"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// testCA is a certificate authority a test makes: for the node API's
// client CA (the API server's kubelet client certificate) and for serving
// certificates the API server verifies (--kubelet-certificate-authority).
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	// Path is the CA certificate's PEM file.
	Path string
	dir  string
}

func newTestCA(dir, name string) (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: name}, key)
	if err != nil {
		return nil, fmt.Errorf("making CA %s: %w", name, err)
	}
	ca := &testCA{cert: cert, key: key, dir: dir, Path: filepath.Join(dir, name+".crt")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return ca, certutil.WriteCert(ca.Path, pemCert(cert.Raw))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// sign issues a certificate of tmpl for pub, valid for a day unless
// tmpl.NotAfter is set.
func (ca *testCA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl.KeyUsage |= x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	return pemCert(der), nil
}

// issue writes a new key and a certificate of tmpl as <name>.crt and
// <name>.key in the CA's directory and returns their paths.
func (ca *testCA) issue(name string, tmpl *x509.Certificate) (certPath, keyPath string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	certPEM, err := ca.sign(tmpl, key.Public())
	if err != nil {
		return "", "", err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	if err := keyutil.WriteKey(keyPath, keyPEM); err != nil {
		return "", "", err
	}
	return certPath, keyPath, certutil.WriteCert(certPath, certPEM)
}

// clientCert issues a client certificate for user in groups.
func (ca *testCA) clientCert(user string, groups ...string) (certPath, keyPath string, err error) {
	return ca.issue(user, &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// servingCert issues a serving certificate for ips.
func (ca *testCA) servingCert(name string, ips ...net.IP) (certPath, keyPath string, err error) {
	return ca.issue(name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// signCSR signs a PEM certificate request as a serving certificate valid
// for lifetime, as a signer of kubernetes.io/kubelet-serving would.
func (ca *testCA) signCSR(csrPEM []byte, lifetime time.Duration) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, fmt.Errorf("no PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, err
	}
	return ca.sign(&x509.Certificate{
		Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotAfter: time.Now().Add(lifetime),
	}, req.PublicKey)
}
