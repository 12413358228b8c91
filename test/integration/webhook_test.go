package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names the test webhook adds to pods.
const (
	webhookLabel      = "injected-by"
	webhookAnnotation = "sidecar.example.com/injected"
	webhookSidecar    = "sidecar"
)

// TestMutatingWebhookDoesNotLoop: a real mutating webhook (HTTPS, with a
// CA the test makes) adds a label and an annotation to every pod of the
// node on create and update, and a sidecar container on create. mirrorlet
// leaves them alone: a bounded number of writes, none in the 30 s after
// it settles (issue 12, fault 8); the manifest's own labels win and reach the mirror in place; an API edit of
// mirrorlet's label is reverted.
func TestMutatingWebhookDoesNotLoop(t *testing.T) {
	node := newNodeName("webhook")
	calls := installWebhook(t, node)
	writes, counting := countPodWrites(t)
	a := startAgent(t, node, "", nil, counting)
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a", webhookLabel: "manifest"}, "nginx:1.27"))
	mutated := func(p *corev1.Pod) bool {
		return p.Annotations[webhookAnnotation] == "true" && len(p.Spec.Containers) == 2 &&
			p.Spec.Containers[1].Name == webhookSidecar
	}
	m := a.WaitMirror("web", func(p *corev1.Pod) bool { return isSettled(p) && mutated(p) })
	if m.Labels[webhookLabel] != "manifest" {
		t.Errorf("label %s = %q, want the manifest's value", webhookLabel, m.Labels[webhookLabel])
	}
	settled := writes.Total()
	checkNoWrites(t, writes, 30*time.Second, "after the mirror is Running")
	t.Logf("pod writes until the mirror ran: %d %s; webhook calls: %d", settled, writes, calls.Load())
	if settled > 6 {
		t.Errorf("%d pod writes to create one mirror and its status (%s), want at most 6", settled, writes)
	}

	// A manifest without the label: the webhook's value stays, the
	// manifest's other label changes in place.
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "b"}, "nginx:1.27"))
	got := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	if got.UID != m.UID || !mutated(got) || got.Labels[webhookLabel] != "webhook" {
		t.Errorf("label edit: uid %s (was %s), labels %v, annotations %v, %d containers; "+
			"want the same mirror, the webhook's label, annotation and sidecar", got.UID, m.UID, got.Labels, got.Annotations, len(got.Spec.Containers))
	}
	checkNoWrites(t, writes, writeWindow, "after the label edit")

	// An edit of mirrorlet's label through the API is put back.
	edited := got.DeepCopy()
	edited.Labels["role"] = "edited"
	if err := k8s.Update(context.Background(), edited); err != nil {
		t.Fatal(err)
	}
	got = a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	if got.UID != m.UID || !mutated(got) {
		t.Errorf("revert: uid %s (was %s), annotations %v; want the same mirror, still mutated", got.UID, m.UID, got.Annotations)
	}
	checkNoWrites(t, writes, writeWindow, "after the revert")
	t.Logf("pod writes in all: %d %s; webhook calls: %d", writes.Total(), writes, calls.Load())
}

// installWebhook serves a mutating webhook over HTTPS on 127.0.0.1 and
// registers it for pods bound to node; it returns the count of its calls.
func installWebhook(t *testing.T, node string) *atomic.Int32 {
	t.Helper()
	caPEM, serving := webhookCerts(t)
	calls := &atomic.Int32{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1); serveMutation(t, w, r) }),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{serving}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	url := "https://" + ln.Addr().String() + "/mutate"
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "inject-" + node},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "inject.example.com",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			MatchConditions:         []admissionregistrationv1.MatchCondition{{Name: "on-node", Expression: "object.spec.?nodeName.orValue('') == '" + node + "'"}},
			FailurePolicy:           ptrTo(admissionregistrationv1.Fail),
			SideEffects:             ptrTo(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptrTo[int32](5),
		}},
	}
	if err := k8s.Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cfg) })
	waitMutation(t, node, func(p *corev1.Pod) bool { return p.Annotations[webhookAnnotation] == "true" })
	return calls
}

// serveMutation answers an AdmissionReview: the label (unless the pod has
// it) and the annotation on create and update, the sidecar on create.
func serveMutation(t *testing.T, w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	var pod corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
		http.Error(w, "bad pod", http.StatusBadRequest)
		return
	}
	var ops []map[string]any
	add := func(path string, value any) {
		ops = append(ops, map[string]any{"op": "add", "path": path, "value": value})
	}
	switch {
	case pod.Labels == nil:
		add("/metadata/labels", map[string]string{webhookLabel: "webhook"})
	case pod.Labels[webhookLabel] == "":
		add("/metadata/labels/"+webhookLabel, "webhook")
	}
	if pod.Annotations == nil {
		add("/metadata/annotations", map[string]string{webhookAnnotation: "true"})
	} else {
		add("/metadata/annotations/sidecar.example.com~1injected", "true")
	}
	if review.Request.Operation == admissionv1.Create {
		add("/spec/containers/-", corev1.Container{Name: webhookSidecar, Image: "sidecar:1"})
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		t.Errorf("encoding patch: %v", err)
		return
	}
	pt := admissionv1.PatchTypeJSONPatch
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true, Patch: patch, PatchType: &pt}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

// webhookCerts makes a CA and a serving certificate for 127.0.0.1 signed
// by it; it returns the CA in PEM and the serving key pair.
func webhookCerts(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
