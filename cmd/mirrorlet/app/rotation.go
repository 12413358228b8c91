package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	certificatesv1 "k8s.io/api/certificates/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/certificate"
	"k8s.io/client-go/util/connrotation"
)

// ClientCertPairName is the name of mirrorlet's client certificate pair
// under <root-dir>/pki (mirrorlet-client-current.pem is the one in use).
const ClientCertPairName = "mirrorlet-client"

// rotationCheckPeriod is how often the transport looks for a new
// certificate to close the connections of the old one.
const rotationCheckPeriod = time.Second

// setupCertificateRotation makes opts.RestConfig authenticate with a client
// certificate that a certificate manager renews before it expires, through
// a CertificateSigningRequest signed in with the current certificate (as
// the kubelet's --rotate-certificates). Renewed pairs are kept under
// <root-dir>/pki; the kubeconfig's certificate is the first one.
func setupCertificateRotation(ctx context.Context, opts *Options) (certificate.Manager, error) {
	store, err := newCertificateStore(opts)
	if err != nil {
		return nil, err
	}
	current, err := store.Current()
	if err != nil {
		return nil, fmt.Errorf("--rotate-certificates: reading the client certificate: %w", err)
	}
	cfg := rest.CopyConfig(opts.RestConfig)
	subject := current.Leaf.Subject
	logCtx := logr.NewContext(ctx, opts.Log.WithName("certificate"))
	mgr, err := certificate.NewManager(&certificate.Config{
		ClientsetFn:             func(*tls.Certificate) (kubernetes.Interface, error) { return kubernetes.NewForConfig(cfg) },
		Template:                &x509.CertificateRequest{Subject: pkix.Name{CommonName: subject.CommonName, Organization: subject.Organization}},
		SignerName:              SignerFor(subject),
		Usages:                  []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		CertificateStore:        store,
		CertificateRenewFailure: renewFailures,
		Name:                    ClientCertPairName,
		Ctx:                     &logCtx,
	})
	if err != nil {
		return nil, fmt.Errorf("--rotate-certificates: creating the certificate manager: %w", err)
	}
	if err := rotatingTransport(ctx, cfg, mgr, opts.Log.WithName("certificate")); err != nil {
		return nil, err
	}
	opts.RestConfig = cfg
	registerCertificateMetrics().set(mgr)
	opts.Log.Info("Rotating the client certificate before it expires", "subject", subject.String(),
		"signer", SignerFor(subject), "expires", current.Leaf.NotAfter, "store", filepath.Dir(store.CurrentPath()))
	return mgr, nil
}

// SignerFor returns the signer mirrorlet asks to renew a certificate of
// subject: kube-apiserver-client-kubelet for a kubelet identity (whose
// renewals the controller manager can approve by itself), else
// kube-apiserver-client.
func SignerFor(subject pkix.Name) string {
	if strings.HasPrefix(subject.CommonName, "system:node:") && slices.Equal(subject.Organization, []string{"system:nodes"}) {
		return certificatesv1.KubeAPIServerClientKubeletSignerName
	}
	return certificatesv1.KubeAPIServerClientSignerName
}

// newCertificateStore returns the store of client certificates under
// <root-dir>/pki. It starts from the kubeconfig's certificate, and takes it
// again whenever it outlives the stored one: an operator who issues a new
// credential (after the stored one expired unrenewed, say) needs no
// cleanup.
func newCertificateStore(opts *Options) (certificate.FileStore, error) {
	certPEM, keyPEM, err := kubeconfigPair(opts.RestConfig)
	if err != nil {
		return nil, err
	}
	given, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--rotate-certificates: the kubeconfig's client certificate: %w", err)
	}
	root := opts.RootDir
	if root == "" {
		root = "/var/lib/mirrorlet"
	}
	dir := filepath.Join(root, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--rotate-certificates: creating %s: %w", dir, err)
	}
	store, err := certificate.NewFileStoreWithLogger(opts.Log.WithName("certificate").V(1), ClientCertPairName, dir, dir, "", "")
	if err != nil {
		return nil, fmt.Errorf("--rotate-certificates: opening the certificate store %s: %w", dir, err)
	}
	if stored, err := store.Current(); err == nil && !stored.Leaf.NotAfter.Before(given.Leaf.NotAfter) {
		return store, nil
	}
	if _, err := store.Update(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("--rotate-certificates: storing the kubeconfig's certificate in %s: %w", dir, err)
	}
	return store, nil
}

// kubeconfigPair returns the client certificate and key of rc as PEM.
func kubeconfigPair(rc *rest.Config) (certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM = rc.CertData, rc.KeyData
	if len(certPEM) == 0 && rc.CertFile != "" {
		if certPEM, err = os.ReadFile(rc.CertFile); err != nil {
			return nil, nil, fmt.Errorf("--rotate-certificates: %w", err)
		}
	}
	if len(keyPEM) == 0 && rc.KeyFile != "" {
		if keyPEM, err = os.ReadFile(rc.KeyFile); err != nil {
			return nil, nil, fmt.Errorf("--rotate-certificates: %w", err)
		}
	}
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, nil, errors.New("--rotate-certificates needs a client certificate and key in the kubeconfig")
	}
	return certPEM, keyPEM, nil
}

// rotatingTransport makes cfg present the manager's current certificate
// and close every connection when it changes, so that no connection keeps
// authenticating with the old one (as the kubelet's transport does).
func rotatingTransport(ctx context.Context, cfg *rest.Config, mgr certificate.Manager, log logr.Logger) error {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return fmt.Errorf("--rotate-certificates: TLS settings of the kubeconfig: %w", err)
	}
	if tlsConfig == nil {
		return errors.New("--rotate-certificates needs an https:// API server")
	}
	tlsConfig.Certificates = nil
	tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert := mgr.Current(); cert != nil {
			return cert, nil
		}
		return &tls.Certificate{}, nil
	}
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	last := mgr.Current() // only the goroutine below uses it
	go wait.UntilWithContext(ctx, func(context.Context) {
		if cur := mgr.Current(); cur != nil && cur != last {
			last = cur
			log.Info("Client certificate rotated; closing connections to use the new one",
				"serial", cur.Leaf.SerialNumber.String(), "expires", cur.Leaf.NotAfter)
			dialer.CloseAll()
		}
	}, rotationCheckPeriod)
	cfg.Transport = utilnet.SetTransportDefaults(&http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig: tlsConfig, MaxIdleConnsPerHost: 25, DialContext: dialer.DialContext,
	})
	// The transport carries the TLS settings now.
	cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile = nil, nil, "", ""
	cfg.CAData, cfg.CAFile, cfg.Insecure, cfg.NextProtos = nil, "", false, nil
	return nil
}
