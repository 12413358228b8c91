package servingcert

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/certificate"
)

// ClusterConfig configures FromCluster.
type ClusterConfig struct {
	// NodeName: the certificate is for system:node:<NodeName>.
	NodeName string
	// Names go into the request as SANs.
	Names Names
	// Dir keeps the current certificate and key (mirrorlet-server-current.pem).
	Dir string
	// RestConfig creates the CertificateSigningRequests.
	RestConfig *rest.Config
}

// cluster serves a certificate issued by the cluster.
type cluster struct{ m certificate.Manager }

// FromCluster requests a serving certificate from the cluster, for the
// signer kubernetes.io/kubelet-serving, and renews it before it expires.
// Until the first request is approved and signed, GetCertificate fails
// (so does every TLS handshake).
func FromCluster(cfg ClusterConfig) (Source, error) {
	if cfg.NodeName == "" || cfg.RestConfig == nil || cfg.Dir == "" {
		return nil, errors.New("serving certificate from the cluster: node name, kubeconfig and directory are required")
	}
	if len(cfg.Names.IPs) == 0 && len(cfg.Names.DNS) == 0 {
		return nil, errors.New("serving certificate from the cluster: the node has no address to certify")
	}
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(cfg.RestConfig))
	if err != nil {
		return nil, fmt.Errorf("serving certificate from the cluster: creating client: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cfg.Dir, err)
	}
	store, err := certificate.NewFileStore("mirrorlet-server", cfg.Dir, cfg.Dir, "", "")
	if err != nil {
		return nil, fmt.Errorf("serving certificate store: %w", err)
	}
	m, err := certificate.NewManager(&certificate.Config{
		ClientsetFn: func(*tls.Certificate) (kubernetes.Interface, error) { return cs, nil },
		GetTemplate: func() *x509.CertificateRequest {
			return &x509.CertificateRequest{
				Subject:     pkix.Name{CommonName: "system:node:" + cfg.NodeName, Organization: []string{"system:nodes"}},
				DNSNames:    cfg.Names.DNS,
				IPAddresses: cfg.Names.IPs,
			}
		},
		SignerName:       certificatesv1.KubeletServingSignerName,
		GetUsages:        usages,
		CertificateStore: store,
		Name:             "node API serving",
	})
	if err != nil {
		return nil, fmt.Errorf("serving certificate manager: %w", err)
	}
	return &cluster{m: m}, nil
}

// usages are what the kubelet-serving signer allows: key encipherment only
// for RSA keys.
func usages(key any) []certificatesv1.KeyUsage {
	u := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	switch key.(type) {
	case *rsa.PrivateKey:
		u = append(u, certificatesv1.UsageKeyEncipherment)
	case *ecdsa.PrivateKey:
	}
	return u
}

func (c *cluster) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.m.Current(); cert != nil {
		return cert, nil
	}
	return nil, errNoCertificate
}

func (c *cluster) Run(ctx context.Context) {
	c.m.Start()
	<-ctx.Done()
	c.m.Stop()
}
