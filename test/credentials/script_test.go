package credentials

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestRequestCredentialWaitsForApproval: with --no-approve the script
// leaves approval to an admin elsewhere, says what to run, and finishes
// once the certificate is issued; the kubeconfig it writes works.
func TestRequestCredentialWaitsForApproval(t *testing.T) {
	grantAgentRole(t)
	node := newNodeName("noapprove")
	user := "mirrorlet:node:" + node
	s := &signer{user: user, ttl: func(int) time.Duration { return time.Hour }} // signs, never approves
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx, t)

	dir := t.TempDir()
	cmd := credentialScript(t, node, dir, "--no-approve")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// The admin, elsewhere, approves the pending request.
	var pending *certificatesv1.CertificateSigningRequest
	eventually(t, "a pending CSR for "+user, func() bool {
		var list certificatesv1.CertificateSigningRequestList
		if err := admin.List(ctx, &list); err != nil {
			return false
		}
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Name, "mirrorlet-node-"+node+"-") {
				pending = &list.Items[i]
				return true
			}
		}
		return false
	})
	if approved(pending) {
		t.Fatal("the script approved with --no-approve")
	}
	pending.Status.Conditions = append(pending.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "AdminApproved",
	})
	if err := admin.SubResource("approval").Update(ctx, pending); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("request-credential.sh: %v\n%s", err, output.String())
		}
	case <-time.After(timeout):
		t.Fatalf("request-credential.sh still waiting after approval:\n%s", output.String())
	}
	if !strings.Contains(output.String(), "waiting for an admin to run: kubectl certificate approve "+pending.Name) {
		t.Errorf("the script does not tell what to run:\n%s", output.String())
	}
	whoAmI(t, dir+"/kubeconfig", user)
}

// whoAmI checks that kubeconfig authenticates as user in mirrorlet:nodes.
func whoAmI(t *testing.T, kubeconfig, user string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(context.Background(),
		&authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := review.Status.UserInfo
	if info.Username != user || !slices.Contains(info.Groups, "mirrorlet:nodes") {
		t.Errorf("kubeconfig authenticates as %s %v, want %s in mirrorlet:nodes", info.Username, info.Groups, user)
	}
}
