package faults

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// Fault 3, containerd restarts while pods run. Meanwhile /readyz and the
// Node's Ready condition say the runtime is down, and containers die on
// their own: one under restartPolicy Always (SIGKILL), one under Never
// (SIGKILL), one under OnFailure that exits 0. When containerd is back,
// mirrorlet reconnects and restarts exactly what restartPolicy asks for:
// the Always one, once; the healthy one keeps its container.
func TestContainerdRestart(t *testing.T) {
	a := startAgent(t)
	ports := map[string]int{}
	pods := map[string]*corev1.Pod{}
	for name, policy := range map[string]corev1.RestartPolicy{
		"steady": corev1.RestartPolicyAlways, "always": corev1.RestartPolicyAlways,
		"never": corev1.RestartPolicyNever, "onfailure": corev1.RestartPolicyOnFailure,
	} {
		ports[name] = nodetest.FreePort(t)
		pods[name] = webPod(name, ports[name])
		pods[name].Spec.RestartPolicy = policy
		a.WriteManifest(name+".yaml", pods[name])
	}
	before := map[string]string{}
	for name := range pods {
		before[name] = a.waitRunning(name, 2*time.Minute).Status.ContainerStatuses[0].ContainerID
	}
	steadyAnswer := firstAnswer(t, ports["steady"])

	down := time.Now()
	ctd.Kill(t)
	a.waitRuntimeDown(t)
	t.Logf("runtime down: /readyz and the Node said so after %s", time.Since(down).Round(time.Millisecond))
	signalServer(t, ports["always"], syscall.SIGKILL)
	signalServer(t, ports["never"], syscall.SIGKILL)
	signalServer(t, ports["onfailure"], syscall.SIGTERM)
	a.checkBackOff(t, down)
	up := time.Now()
	ctd.Start(t)
	nodetest.Eventually(t, 2*time.Minute, "/readyz ready again", func() bool { code, _ := a.readyz(); return code == 200 })
	readyz := time.Since(up)
	nodetest.Eventually(t, time.Minute, "the Node Ready again", func() bool { return a.nodeReady() == corev1.ConditionTrue })
	t.Logf("containerd down %s; /readyz ready %s and the Node Ready %s after it was back", up.Sub(down).Round(time.Millisecond),
		readyz.Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	// The CRI connection's back-off is capped as the kubelet's (3 s, with
	// jitter): a long outage does not mean a long wait once it is over.
	if readyz > 5*time.Second {
		t.Errorf("/readyz took %s after containerd was back, want within 5s (back-off capped at 3s)", readyz)
	}

	eventuallyNil(t, 2*time.Minute, "only what restartPolicy asks for restarted", func() error {
		return a.checkPolicies(before)
	})
	consistentlyNil(t, 5*time.Second, "nothing else restarts", func() error { return a.checkPolicies(before) })
	if body, err := nodetest.Get(ports["steady"], "/"); err != nil || body != steadyAnswer {
		t.Errorf("the healthy server answers %q (%v), want the same server (%q)", body, err, steadyAnswer)
	}
}

// waitRuntimeDown waits until /readyz fails on the runtime check and the
// Node's Ready condition is False for RuntimeNotReady.
func (a *agent) waitRuntimeDown(t *testing.T) {
	t.Helper()
	eventuallyNil(t, time.Minute, "/readyz and Node Ready to say the runtime is down", func() error {
		code, body := a.readyz()
		if code == 200 || !strings.Contains(body, "[-]runtime failed") {
			return fmt.Errorf("/readyz %d: %s", code, body)
		}
		if got := a.nodeReady(); got != corev1.ConditionFalse {
			return fmt.Errorf("node Ready %s", got)
		}
		return nil
	})
}

// nodeReady is the status of the Node's Ready condition ("" if none);
// False only counts with reason RuntimeNotReady.
func (a *agent) nodeReady() corev1.ConditionStatus {
	var n corev1.Node
	if err := admin.Get(a.t.Context(), types.NamespacedName{Name: a.name}, &n); err != nil {
		return ""
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && (c.Status != corev1.ConditionFalse || c.Reason == "RuntimeNotReady") {
			return c.Status
		}
	}
	return ""
}

var retryRE = regexp.MustCompile(`"msg":"CRI container event stream ended.*?"retry":"([^"]+)"`)

// checkBackOff reads mirrorlet's log since down: the event stream was
// retried with growing delays, not in a loop.
func (a *agent) checkBackOff(t *testing.T, down time.Time) {
	t.Helper()
	var delays []time.Duration
	nodetest.Eventually(t, 30*time.Second, "three reconnection attempts to the runtime", func() bool {
		delays = delays[:0]
		for _, m := range retryRE.FindAllStringSubmatch(a.logSince(down), -1) {
			d, err := time.ParseDuration(m[1])
			if err == nil {
				delays = append(delays, d)
			}
		}
		return len(delays) >= 3
	})
	for i := 1; i < len(delays); i++ {
		if delays[i] < delays[i-1] {
			t.Errorf("event stream retries %v: the delay shrank while the runtime was down", delays)
		}
	}
	if delays[len(delays)-1] <= delays[0] {
		t.Errorf("event stream retries %v: no back-off", delays)
	}
	t.Logf("event stream reconnection delays while containerd was down: %v", delays)
}

// logSince is mirrorlet's log from the first line stamped at or after since.
func (a *agent) logSince(since time.Time) string {
	text := a.logText()
	stamp := []byte(`"ts":"` + since.UTC().Format("2006-01-02T15:04:05"))
	if i := bytes.Index([]byte(text), stamp); i >= 0 {
		return text[i:]
	}
	return ""
}

// checkPolicies checks the four pods against their restart policies after
// the outage.
func (a *agent) checkPolicies(before map[string]string) error {
	// exitCode -1: any failure. containerd reports a container that
	// exited while it was down as exit 255, reason Unknown (whatever its
	// real exit code), so the OnFailure pod is checked against that.
	want := map[string]struct {
		restarts int32
		running  bool
		exitCode int32
	}{
		"steady": {0, true, 0}, "always": {1, true, 0}, "never": {0, false, -1}, "onfailure": {0, false, 0},
	}
	for name, w := range want {
		m := a.mirror(name)
		if m == nil || len(m.Status.ContainerStatuses) != 1 {
			return fmt.Errorf("mirror of %s missing or without status", name)
		}
		cs := m.Status.ContainerStatuses[0]
		if last := cs.LastTerminationState.Terminated; name == "onfailure" && last != nil && last.ExitCode != 0 {
			w.restarts, w.running = 1, true // a failure, as the runtime says: OnFailure restarts it
		}
		if cs.RestartCount != w.restarts {
			return fmt.Errorf("%s: restartCount %d, want %d", name, cs.RestartCount, w.restarts)
		}
		if w.running != (cs.State.Running != nil) {
			return fmt.Errorf("%s: state %+v, want running=%v", name, cs.State, w.running)
		}
		if !w.running && (cs.State.Terminated == nil || w.exitCode >= 0 && cs.State.Terminated.ExitCode != w.exitCode ||
			w.exitCode < 0 && cs.State.Terminated.ExitCode == 0) {
			return fmt.Errorf("%s: state %+v, want terminated with %d", name, cs.State, w.exitCode)
		}
		if (cs.ContainerID == before[name]) != (w.restarts == 0) {
			return fmt.Errorf("%s: container %s, was %s", name, cs.ContainerID, before[name])
		}
	}
	return nil
}

// signalServer sends sig to the test web server listening on port, found
// by its command line on the host: how a container dies while containerd
// is down.
func signalServer(t *testing.T, port int, sig syscall.Signal) {
	t.Helper()
	want := []byte("\x00--port\x00" + strconv.Itoa(port) + "\x00")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(append(cmdline, 0), want) || !bytes.Contains(cmdline, []byte("webserver")) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatalf("signalling the server on port %d (pid %d): %v", port, pid, err)
		}
		return
	}
	t.Fatalf("no web server process listens on port %d", port)
}

// consistentlyNil checks that check keeps returning nil for d.
func consistentlyNil(t testing.TB, d time.Duration, what string, check func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if err := check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		select {
		case <-t.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
