package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// A mirrorlet started without any static pod source would find an empty
// desired set and stop every pod: it must refuse to start instead, and
// leave what runs alone.
func TestNoSourceIsAnErrorAtStart(t *testing.T) {
	rt := fake.New(nil)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default", UID: "u1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}
	sb, err := rt.RunSandbox(t.Context(), pod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(t.Context(), pod, sb, &pod.Spec.Containers[0], 0); err != nil {
		t.Fatal(err)
	}
	// Bounded: without the check, Run would go on (and stop the pod).
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	err = app.Run(ctx, app.Options{
		RestConfig: &rest.Config{Host: "http://127.0.0.1:1"}, NodeName: "n1", Runtime: rt,
		HealthzBindAddress: "0", MetricsBindAddress: "0",
	})
	if err == nil || !strings.Contains(err.Error(), "--pod-manifest-path") || !strings.Contains(err.Error(), "--manifest-url") {
		t.Fatalf("Run without a source: %v, want an error naming --pod-manifest-path and --manifest-url", err)
	}
	if pods := rt.Pods(); len(pods) != 1 || pods[0].Containers[0].State != "Running" {
		t.Errorf("runtime pods after the refused start: %+v, want the pod still running", pods)
	}
}
