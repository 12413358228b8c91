package servingcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Source serves a certificate that may change over time.
type Source interface {
	// GetCertificate returns the current certificate; an error while
	// there is none yet. For tls.Config.GetCertificate.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Run keeps the certificate current until ctx ends.
	Run(ctx context.Context)
}

// Names are what a serving certificate is for: the node's hostname and
// addresses.
type Names struct {
	Host string
	IPs  []net.IP
	DNS  []string
}

// files serves a certificate and key read from files, read again when
// they change.
type files struct {
	content *dynamiccertificates.DynamicCertKeyPairContent
	mu      sync.Mutex
	certPEM []byte
	cert    *tls.Certificate
}

// FromFiles serves certFile and keyFile (PEM); it fails when they cannot
// be read or do not match.
func FromFiles(certFile, keyFile string) (Source, error) {
	c, err := dynamiccertificates.NewDynamicServingContentFromFiles("serving-cert", certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading serving certificate: %w", err)
	}
	f := &files{content: c}
	if _, err := f.GetCertificate(nil); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	certPEM, keyPEM := f.content.CurrentCertKeyContent()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cert != nil && bytes.Equal(certPEM, f.certPEM) {
		return f.cert, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing serving certificate: %w", err)
	}
	f.cert, f.certPEM = &cert, certPEM
	return f.cert, nil
}

func (f *files) Run(ctx context.Context) { f.content.Run(ctx, 1) }

// static serves one certificate.
type static struct{ cert *tls.Certificate }

func (s static) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert, nil }
func (s static) Run(context.Context)                                           {}

// Self-signed certificate files under the pki directory.
const (
	SelfSignedCertName = "mirrorlet.crt"
	SelfSignedKeyName  = "mirrorlet.key"
)

// SelfSigned serves a self-signed certificate for names, kept in dir
// (created 0700; key 0600). An existing one is reused while it covers
// names and has more than a week to live; otherwise a new one is made.
func SelfSigned(dir string, names Names, log logr.Logger) (Source, error) {
	certPath, keyPath := filepath.Join(dir, SelfSignedCertName), filepath.Join(dir, SelfSignedKeyName)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil || !covers(cert, names, time.Now().Add(7*24*time.Hour)) {
		if cert, err = generate(dir, certPath, keyPath, names); err != nil {
			return nil, err
		}
	}
	log.Info("Serving the node API with a self-signed certificate: the API server cannot verify it "+
		"(give --tls-cert-file/--tls-private-key-file or --rotate-server-certificates for one it can)",
		"certificate", certPath)
	return static{cert: &cert}, nil
}

func generate(dir, certPath, keyPath string, names Names) (tls.Certificate, error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(names.Host, names.IPs, names.DNS)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating self-signed serving certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := keyutil.WriteKey(keyPath, keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing serving key: %w", err)
	}
	if err := certutil.WriteCert(certPath, certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing serving certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing generated serving certificate: %w", err)
	}
	return cert, nil
}

// covers reports whether cert is valid until after and names all of names.
func covers(cert tls.Certificate, names Names, after time.Time) bool {
	if len(cert.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || leaf.NotAfter.Before(after) {
		return false
	}
	for _, ip := range names.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	for _, dns := range append([]string{names.Host}, names.DNS...) {
		if dns != "" && net.ParseIP(dns) == nil && !slices.Contains(leaf.DNSNames, dns) {
			return false
		}
	}
	return true
}

// errNoCertificate is returned while no certificate was issued yet.
var errNoCertificate = errors.New("no serving certificate available yet: waiting for the CertificateSigningRequest to be approved and signed")
