package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestServingCertificateFromCSR: with --rotate-server-certificates,
// mirrorlet asks the cluster for its serving certificate. The test plays
// the signer envtest lacks: it approves the CertificateSigningRequest and
// signs it with the CA the API server verifies node APIs with, after
// which kubectl logs works, the API server having verified the
// certificate. Before that, mirrorlet serves no certificate at all. The
// certificate is short-lived: mirrorlet requests and serves a new one
// before it expires.
func TestServingCertificateFromCSR(t *testing.T) {
	n := startNode(t, withNodeAPI(certFromCluster))
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port))
	n.waitRunning("static-web", 2*time.Minute)
	mirror := n.mirrorName("static-web")

	cs, err := kubernetes.NewForConfig(testEnv.Config)
	if err != nil {
		t.Fatal(err)
	}
	var csr *certificatesv1.CertificateSigningRequest
	eventually(t, time.Minute, "a kubelet-serving CSR for "+n.name, func() bool {
		csr = findServingCSR(t, cs, n.name)
		return csr != nil
	})
	req := parseCSR(t, csr.Spec.Request)
	if req.Subject.CommonName != "system:node:"+n.name || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) ||
		len(req.IPAddresses) != 1 || !req.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) {
		t.Fatalf("CSR subject %v, IPs %v; want system:node:%s in system:nodes for 127.0.0.1", req.Subject, req.IPAddresses, n.name)
	}
	if !slices.Contains(csr.Spec.Usages, certificatesv1.UsageServerAuth) || slices.Contains(csr.Spec.Usages, certificatesv1.UsageClientAuth) {
		t.Fatalf("CSR usages %v", csr.Spec.Usages)
	}
	if _, err := servedCertificate(n.apiPort); err == nil {
		t.Fatal("a certificate is served before the CSR was signed")
	}

	// Short-lived: mirrorlet must renew it (at 70-90% of its life).
	approveAndSign(t, cs, csr, time.Minute)
	var first *x509.Certificate
	eventually(t, time.Minute, "the signed certificate served", func() bool {
		first, err = servedCertificate(n.apiPort)
		return err == nil && first.Issuer.CommonName == "kubelet-serving-ca" && first.Subject.CommonName == "system:node:"+n.name
	})
	eventually(t, 30*time.Second, "kubectl logs through the verified certificate", func() bool {
		out, err := kubectlLogs(mirror)
		return err == nil && strings.Contains(out, "webserver starting")
	})
	kept := filepath.Join(n.root, "pki", "mirrorlet-server-current.pem")
	if mode, err := fileMode(kept); err != nil || mode != 0o600 {
		t.Fatalf("%s: mode %v (%v), want 0600", kept, mode, err)
	}

	// Before it expires, mirrorlet asks again and serves the new one.
	var renewal *certificatesv1.CertificateSigningRequest
	eventually(t, 2*time.Minute, "a renewal CSR", func() bool {
		renewal = findServingCSR(t, cs, n.name, csr.Name)
		return renewal != nil
	})
	approveAndSign(t, cs, renewal, 24*time.Hour)
	eventually(t, time.Minute, "the renewed certificate served", func() bool {
		c, err := servedCertificate(n.apiPort)
		return err == nil && c.SerialNumber.Cmp(first.SerialNumber) != 0 && c.NotAfter.After(first.NotAfter.Add(time.Hour))
	})
	if out, err := kubectlLogs(mirror); err != nil || !strings.Contains(out, "webserver starting") {
		t.Fatalf("kubectl logs through the renewed certificate (%v): %s", err, out)
	}
}

// approveAndSign approves csr and signs it for lifetime, as the cluster's
// approver and signer would.
func approveAndSign(t *testing.T, cs kubernetes.Interface, csr *certificatesv1.CertificateSigningRequest, lifetime time.Duration) {
	t.Helper()
	ctx := t.Context()
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "E2EApproved", Message: "approved by the test",
	})
	csr, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if csr.Status.Certificate, err = servingCA.signCSR(csr.Spec.Request, lifetime); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestSelfSignedServingCertificate: given no certificate, mirrorlet makes
// a self-signed one under --root-dir/pki (key 0600) for the node's
// address and says that the API server cannot verify it, which an API
// server with --kubelet-certificate-authority indeed refuses.
func TestSelfSignedServingCertificate(t *testing.T) {
	n := startNode(t, withNodeAPI(certSelfSigned))
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port))
	n.waitRunning("static-web", 2*time.Minute)

	c, err := servedCertificate(n.apiPort)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IPAddresses) == 0 || !c.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) || c.Issuer.CommonName == "kubelet-serving-ca" {
		t.Fatalf("served certificate for %v issued by %s; want a self-signed one for 127.0.0.1", c.IPAddresses, c.Issuer)
	}
	key := filepath.Join(n.root, "pki", "mirrorlet.key")
	if mode, err := fileMode(key); err != nil || mode != 0o600 {
		t.Fatalf("%s: mode %v (%v), want 0600", key, mode, err)
	}
	logData, err := os.ReadFile(filepath.Join(n.dir, "mirrorlet.log"))
	if err != nil || !strings.Contains(string(logData), "self-signed certificate: the API server cannot verify it") {
		t.Fatalf("mirrorlet's log does not say the certificate is self-signed (%v)", err)
	}
	out, err := kubectlLogs(n.mirrorName("static-web"))
	if err == nil || !strings.Contains(out, "x509") {
		t.Fatalf("kubectl logs through an unverifiable certificate (%v): %s\nwant refused by the API server", err, out)
	}
}

// findServingCSR returns a kubelet-serving CSR of node other than those
// named in except, nil if none.
func findServingCSR(t *testing.T, cs kubernetes.Interface, node string, except ...string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	list, err := cs.CertificatesV1().CertificateSigningRequests().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Logf("listing CSRs: %v", err)
		return nil
	}
	for i := range list.Items {
		c := &list.Items[i]
		if c.Spec.SignerName == certificatesv1.KubeletServingSignerName && !slices.Contains(except, c.Name) &&
			parseCSR(t, c.Spec.Request).Subject.CommonName == "system:node:"+node {
			return c
		}
	}
	return nil
}

func parseCSR(t *testing.T, data []byte) *x509.CertificateRequest {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("CSR without a PEM request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(fmt.Errorf("parsing CSR: %w", err))
	}
	return req
}
