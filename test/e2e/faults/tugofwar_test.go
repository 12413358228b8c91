package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// Fault 5, mirror tug-of-war: another client deletes the mirror 100 times
// in a tight loop, gracefully and forced in turn. mirrorlet recreates it
// every time with exactly one create (the API server never holds two
// mirrors, and mirrorlet hardly ever even tries: see checkCreates) and the
// container never restarts.
func TestMirrorTugOfWar(t *testing.T) {
	a := startAgent(t)
	port := nodetest.FreePort(t)
	pod := webPod("tug", port)
	a.WriteManifest("tug.yaml", pod)
	m := a.waitRunning("tug", 2*time.Minute)
	id := m.Status.ContainerStatuses[0].ContainerID
	answer := firstAnswer(t, port)
	since := time.Now()
	const deletes = 100
	var back []time.Duration
	cur := m
	for i := range deletes {
		opts := []client.DeleteOption{client.Preconditions{UID: &cur.UID}}
		if i%2 == 1 {
			opts = append(opts, client.GracePeriodSeconds(0))
		}
		deleted := time.Now()
		if err := admin.Delete(context.Background(), cur, opts...); err != nil && !apierrors.IsNotFound(err) {
			// The mirror was replaced under us: by whom shows in the audit log.
			t.Errorf("delete %d of %s: %v; writes to it since it was read:\n%s", i, cur.UID, err, writesSince(t, cur.CreationTimestamp.Time))
			cur = a.nextMirror(t, cur.UID)
			continue
		}
		cur = a.nextMirror(t, cur.UID)
		back = append(back, time.Since(deleted))
	}
	slices.Sort(back)
	t.Logf("%d deletes (graceful and forced in turn): mirror back after p50 %s, p99 %s, max %s", deletes,
		back[len(back)/2].Round(time.Millisecond), back[len(back)*99/100].Round(time.Millisecond), back[len(back)-1].Round(time.Millisecond))
	eventuallyNil(t, time.Minute, "the node and its mirror settled", func() error {
		return a.converged(map[string]*corev1.Pod{"tug": pod})
	})
	final := a.mirror("tug")
	if cs := final.Status.ContainerStatuses[0]; cs.ContainerID != id || cs.RestartCount != 0 {
		t.Errorf("container %s restartCount %d after the tug-of-war, want %s and 0", cs.ContainerID, cs.RestartCount, id)
	}
	if body, err := nodetest.Get(port, "/"); err != nil || body != answer {
		t.Errorf("the server answers %q (%v), want the same server (%q)", body, err, answer)
	}
	a.checkCreates(t, since, deletes)
}

// nextMirror waits (polling every 5 ms: the loop is tight) for a mirror
// that is not old and not being deleted, and returns it.
func (a *agent) nextMirror(t *testing.T, old types.UID) *corev1.Pod {
	t.Helper()
	var m corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			err := admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: a.mirrorName("tug")}, &m)
			return err == nil && m.UID != old && m.DeletionTimestamp == nil, nil
		})
	if err != nil {
		t.Fatalf("no new mirror within 30s of deleting %s", old)
	}
	return &m
}

// checkCreates reads the audit log: mirrorlet created the mirror exactly
// once per delete, and deleted it once per graceful delete. Mirrors are
// created by server-side apply (a patch answered 201 Created; a plain
// create as system:node). A write that met the mirror already there (a
// reconcile that read a cache not yet showing mirrorlet's own create: a
// create refused with AlreadyExists, or an apply answered 200) made no
// second mirror; it is counted and allowed rarely (0 in 1,200 deletes
// measured in this session, 0-2 per 100 in the last), not in a loop.
func (a *agent) checkCreates(t *testing.T, since time.Time, deletes int) {
	t.Helper()
	var created, existing, failed int
	for _, e := range writesBy(t, a.user(), "", "pods", since) {
		if e.ObjectRef.Subresource != "" || (e.Verb != "create" && e.Verb != "patch") {
			continue
		}
		switch {
		case e.ResponseStatus.Code == 201:
			created++
		case e.ResponseStatus.Code == 409 || e.Verb == "patch" && e.ResponseStatus.Code == 200:
			existing++
		default:
			failed++
		}
	}
	codes := map[int]int{} // mirrorlet's deletes by response code
	for _, e := range writesBy(t, a.user(), "delete", "pods", since) {
		codes[e.ResponseStatus.Code]++
	}
	t.Logf("mirrorlet's mirror creates: %d made, %d met the mirror already there, %d failed; its deletes by response code: %v",
		created, existing, failed, codes)
	// mirrorlet deletes a mirror deleted gracefully (grace 0, as a kubelet
	// confirms a pod's end), not one deleted with grace 0: the API server
	// records that as an update first (seen as a mirror being deleted) and
	// removes it at once. A stale cache may still cost a delete refused
	// with NotFound now and then (measured 10-17 per 100 deletes before
	// mirrorlet left forced deletes alone; 0 after).
	graceful := deletes - deletes/2
	if codes[200] < graceful || codes[200] > graceful+deletes/50 || codes[404] > deletes/20 {
		t.Errorf("mirrorlet's deletes by response code %v for %d graceful deletes: want one each, and hardly any refused", codes, graceful)
		t.Logf("pod writes:\n%s", writesSince(t, since))
	}
	if created != deletes || failed != 0 || existing > deletes/20 {
		t.Errorf("mirrorlet made %d mirror creates (%d on a mirror already there, %d failed) for %d deletes, want exactly one per delete",
			created, existing, failed, deletes)
	}
}

// writesSince prints the audited pod writes since since, of every user.
func writesSince(t *testing.T, since time.Time) string {
	var b strings.Builder
	for _, e := range writesBy(t, "", "", "pods", since.Add(-time.Second)) {
		fmt.Fprintf(&b, "%s %s %s %s/%s %d", e.StageTimestamp.Format("15:04:05.000000"), e.User.Username, e.Verb,
			e.ObjectRef.Name, e.ObjectRef.Subresource, e.ResponseStatus.Code)
		if o := e.RequestObject; e.Verb == "delete" {
			fmt.Fprintf(&b, " uid=%s grace=%v", o.Preconditions.UID, ptr.Deref(o.GracePeriodSeconds, -1))
		}
		b.WriteString("\n")
	}
	return b.String()
}
