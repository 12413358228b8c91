package main

import (
	"context"
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
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// kubeletClientUser is the API server's identity towards node APIs.
const kubeletClientUser = "kube-apiserver-kubelet-client"

// KubeletClientCAFile is the CA, under --kubelet-pki-dir, that a node API
// verifies the API server's client certificate with (mirrorlet's
// --client-ca-file).
const KubeletClientCAFile = "kubelet-client-ca.crt"

// configureKubeletClient makes a CA and a client certificate for the API
// server under dir, and has the API server call node APIs (kubelets,
// mirrorlet) with it, dialling their InternalIP first. Serving
// certificates are not verified (no --kubelet-certificate-authority), so
// mirrorlet's self-signed one is accepted. Call before env.Start.
func configureKubeletClient(env *envtest.Environment, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ca, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "localcluster-kubelet-client-ca"}, caKey)
	if err != nil {
		return fmt.Errorf("making the kubelet client CA: %w", err)
	}
	if err := certutil.WriteCert(filepath.Join(dir, KubeletClientCAFile), pemCert(ca.Raw)); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, "apiserver-kubelet-client.crt"), filepath.Join(dir, "apiserver-kubelet-client.key")
	if err := writeClientCert(ca, caKey, certPath, keyPath); err != nil {
		return err
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("kubelet-client-certificate", certPath).
		Set("kubelet-client-key", keyPath).
		Set("kubelet-preferred-address-types", "InternalIP,Hostname")
	return nil
}

func writeClientCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: kubeletClientUser},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("signing the API server's kubelet client certificate: %w", err)
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

// authorizeKubeletClient binds the API server's kubelet client identity to
// system:kubelet-api-admin, as cluster installers do. Call after
// env.Start.
func authorizeKubeletClient(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "localcluster-kube-apiserver-kubelet-client"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: kubeletClientUser}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("authorizing the API server's kubelet client: %w", err)
	}
	return nil
}
