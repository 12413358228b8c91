package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// TestKubectlExec runs kubectl exec on a static pod through the API
// server, which calls mirrorlet's node API as a kubelet's: a command's
// output and exit code, and an interactive session on a terminal (kubectl
// given a pty by script(1)).
func TestKubectlExec(t *testing.T) {
	n := startNode(t, withNodeAPI(certFiles))
	n.writeManifest("static-web.yaml", webPod("static-web", freePort(t)))
	n.waitRunning("static-web", 2*time.Minute)
	mirror := n.mirrorName("static-web")

	out, stderr, code := kubectlRun(t, "exec", mirror, "-c", "web", "--", "/webserver", "echo", "through", "the", "API")
	if code != 0 || out != "through the API\n" || !strings.Contains(stderr, "stderr: through the API") {
		t.Errorf("kubectl exec echo: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	out, stderr, code = kubectlRun(t, "exec", mirror, "--", "/webserver", "exit", "3")
	if code != 3 || out != "exiting 3\n" {
		t.Errorf("kubectl exec exit 3: exit %d, stdout %q, stderr %q; want exit code 3", code, out, stderr)
	}
	_, stderr, code = kubectlRun(t, "exec", mirror, "-c", "nope", "--", "/webserver", "echo")
	if code == 0 || !strings.Contains(stderr, "nope") {
		t.Errorf("kubectl exec into an unknown container: exit %d, stderr %q; want an error naming it", code, stderr)
	}

	s := startInPty(t, "exec", "-it", mirror, "--", "/webserver", "upper")
	eventually(t, 30*time.Second, "the command's banner on a terminal", func() bool {
		return strings.Contains(s.out.String(), "upper: tty=true")
	})
	s.typeLine("hello pty")
	eventually(t, 30*time.Second, "the command's answer", func() bool {
		return strings.Contains(s.out.String(), "HELLO PTY")
	})
	s.typeLine("exit")
	if code := s.wait(t); code != 0 || !strings.Contains(s.out.String(), "BYE") {
		t.Errorf("kubectl exec -it ended with %d; want 0 after BYE. Output:\n%s", code, s.out.String())
	}
}

// TestKubectlAttach attaches kubectl to a static pod's container that reads
// its terminal: a line typed reaches it and its answer comes back.
func TestKubectlAttach(t *testing.T) {
	n := startNode(t, withNodeAPI(certFiles))
	pod := webPod("attach-me", 0)
	c := &pod.Spec.Containers[0]
	c.Args, c.Ports, c.Stdin, c.TTY = []string{"upper"}, nil, true, true
	n.writeManifest("attach-me.yaml", pod)
	n.waitRunning("attach-me", 2*time.Minute)

	s := startInPty(t, "attach", "-it", n.mirrorName("attach-me"))
	// Typed before the session is up, a line may be lost: type until the
	// answer comes.
	eventually(t, 30*time.Second, "the container's answer through kubectl attach", func() bool {
		s.typeLine("typed into attach")
		return strings.Contains(s.out.String(), "TYPED INTO ATTACH")
	})
}

// TestKubectlPortForward forwards a local port with kubectl port-forward
// to a static pod on the CNI network and fetches a page through it.
func TestKubectlPortForward(t *testing.T) {
	n := startNode(t, withNodeAPI(certFiles))
	pod := webPod("pf-web", 8080, "--message", "via kubectl port-forward")
	pod.Spec.HostNetwork = false
	n.writeManifest("pf-web.yaml", pod)
	n.waitRunning("pf-web", 2*time.Minute)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "port-forward", "pod/"+n.mirrorName("pf-web"), ":8080")
	var out, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	forwarding := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)
	var local int
	eventually(t, 30*time.Second, "kubectl port-forward to listen", func() bool {
		m := forwarding.FindStringSubmatch(out.String())
		if m != nil {
			local, _ = strconv.Atoi(m[1])
		}
		return m != nil
	})
	body, err := get(local, "/")
	if err != nil || !strings.Contains(body, "via kubectl port-forward") {
		t.Fatalf("GET through kubectl port-forward: %v %q (kubectl: %s %s)", err, body, out.String(), stderr.String())
	}
}

// TestKubectlStats reads /stats/summary and /metrics/resource of the node
// through the API server's node proxy, as metrics-server does. The API
// server refuses to proxy to a loopback address ("address not allowed"),
// so this node's API listens on, and its Node advertises, the host's
// address.
func TestKubectlStats(t *testing.T) {
	n := startNode(t, withNodeAPIOn(hostIP(t)))
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port))
	n.waitRunning("static-web", 2*time.Minute)
	mirror := n.mirrorName("static-web")
	eventually(t, time.Minute, "CPU and memory of "+mirror+" in the node's stats summary", func() bool {
		for range 20 {
			_, _ = get(port, "/busy")
		}
		out, _, code := kubectlRun(t, "get", "--raw", "/api/v1/nodes/"+n.name+"/proxy/stats/summary")
		var s statsapi.Summary
		if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
			return false
		}
		pod := findPodStats(&s, mirror)
		return s.Node.NodeName == n.name && pod != nil && len(pod.Containers) == 1 &&
			nonZeroCPU(pod.Containers[0].CPU) && nonZeroMemory(pod.Containers[0].Memory)
	})
	out, stderr, code := kubectlRun(t, "get", "--raw", "/api/v1/nodes/"+n.name+"/proxy/metrics/resource")
	want := fmt.Sprintf(`container_memory_working_set_bytes{container="web",namespace="default",pod=%q}`, mirror)
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("metrics/resource through the API server: exit %d %s\n%s\nwant %s", code, stderr, out, want)
	}
}

// kubectlRun runs kubectl to the end and returns its stdout, stderr and
// exit code.
func kubectlRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exitErr):
		return stdout.String(), stderr.String(), exitErr.ExitCode()
	default:
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		return "", "", -1
	}
}

// ptySession is kubectl run on a terminal by script(1): what is written
// to stdin is typed on the terminal; out has everything kubectl shows.
type ptySession struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    syncBuffer
	exited chan struct{}
}

func startInPty(t *testing.T, args ...string) *ptySession {
	t.Helper()
	line := strings.Join(append([]string{kubectl, "--kubeconfig", kubeconfig}, args...), " ")
	s := &ptySession{exited: make(chan struct{})}
	// -q: no banner; -f: flush at once; -e: kubectl's exit code; output
	// goes to s.out through script's stdout, the typescript file nowhere.
	s.cmd = exec.Command("script", "-qfec", line, "/dev/null")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("kubectl %s on a terminal showed:\n%s", strings.Join(args, " "), s.out.String())
		}
	})
	return s
}

// typeLine types text and Enter.
func (s *ptySession) typeLine(text string) { _, _ = io.WriteString(s.stdin, text+"\r") }

// wait waits for kubectl to end and returns its exit code.
func (s *ptySession) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl did not end. Output:\n%s", s.out.String())
		return -1
	}
}

// withNodeAPIOn is withNodeAPI(certFiles) on ip instead of 127.0.0.1.
func withNodeAPIOn(ip net.IP) nodeOption {
	return func(n *node) {
		n.t.Helper()
		n.apiPort = freePort(n.t)
		cert, key, err := servingCA.servingCert(n.name+"-serving", ip)
		if err != nil {
			n.t.Fatal(err)
		}
		n.extraFlags = append(n.extraFlags, "--port", fmt.Sprint(n.apiPort), "--address", ip.String(),
			"--node-ip", ip.String(), "--client-ca-file", kubeletClientCA.Path,
			"--tls-cert-file", cert, "--tls-private-key-file", key)
	}
}

// hostIP returns an IPv4 address of the host that is not loopback (nor
// one of the test bridges), or skips the test when there is none.
func hostIP(t *testing.T) net.IP {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 || strings.HasPrefix(iface.Name, "ml") {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.To4()
			}
		}
	}
	t.Skip("the host has no non-loopback IPv4 address; the API server proxies to no loopback node")
	return nil
}
