package credentials

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// issued is one certificate the test signer issued.
type issued struct {
	csr       string
	requestor string // spec.username: who asked
	cert      *x509.Certificate
}

// signer plays the controller manager for one user: it approves (as an
// admin would, or the --no-approve path's admin) and signs every CSR for
// signer kubernetes.io/kube-apiserver-client whose subject is that user,
// with the suite's client CA.
type signer struct {
	user string
	// ttl returns the lifetime of the n-th certificate (from 0).
	ttl     func(n int) time.Duration
	approve bool
	mu      sync.Mutex
	issued  []issued
}

// run approves and signs until ctx ends, polling the CSR list.
func (s *signer) run(ctx context.Context, t *testing.T) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var list certificatesv1.CertificateSigningRequestList
		if err := admin.List(ctx, &list); err == nil {
			for i := range list.Items {
				if err := s.handle(ctx, &list.Items[i]); err != nil {
					t.Errorf("test signer: %v", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *signer) handle(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientSignerName || len(csr.Status.Certificate) > 0 {
		return nil
	}
	req, err := parseRequest(csr.Spec.Request)
	if err != nil {
		return fmt.Errorf("CSR %s: %w", csr.Name, err)
	}
	if req.Subject.CommonName != s.user {
		return nil // someone else's
	}
	if !approved(csr) {
		if !s.approve {
			return nil
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "TestApprover", Message: "approved by the test",
		})
		if err := admin.SubResource("approval").Update(ctx, csr); err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("approving %s: %w", csr.Name, err)
		}
		return nil // signed at the next poll, once approved
	}
	return s.sign(ctx, csr, req)
}

func (s *signer) sign(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) error {
	s.mu.Lock()
	n := len(s.issued)
	s.mu.Unlock()
	certPEM, err := ca.sign(req.PublicKey, pkix.Name{CommonName: req.Subject.CommonName, Organization: req.Subject.Organization}, s.ttl(n))
	if err != nil {
		return err
	}
	csr.Status.Certificate = certPEM
	if err := admin.SubResource("status").Update(ctx, csr); err != nil {
		if apierrors.IsConflict(err) {
			return nil // next poll
		}
		return fmt.Errorf("writing the certificate of %s: %w", csr.Name, err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued = append(s.issued, issued{csr: csr.Name, requestor: csr.Spec.Username, cert: cert})
	return nil
}

// certificates returns what was issued so far.
func (s *signer) certificates() []issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]issued(nil), s.issued...)
}

func approved(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func parseRequest(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM request")
	}
	return x509.ParseCertificateRequest(block.Bytes)
}

// grantAgentRole gives group mirrorlet:nodes what mirrorlet does, in the
// test's own ClusterRole (deploy/rbac holds the real one): its pods, Node,
// Lease and Events, and CSRs to renew its certificate.
func grantAgentRole(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-mirrorlet-agent"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete", "patch", "update"}},
		{APIGroups: []string{""}, Resources: []string{"pods/status", "nodes/status"}, Verbs: []string{"patch", "update"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "create", "patch", "update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update", "patch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get", "list", "watch"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-mirrorlet-agent"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "mirrorlet:nodes"}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := admin.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}
