package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// userAgent is what HTTP and gRPC probes send, as a v1.37 kubelet does.
const userAgent = "kube-probe/1.37"

// maxOutput bounds the output of a probe that is read (HTTP body, exec
// output), as in the kubelet.
const maxOutput = 10 << 10

// probe runs w's probe once. A nil error with failure is the container's
// answer; an error means the prober could not tell (result unknown).
func (m *Manager) probe(ctx context.Context, w *worker) (result, string, error) {
	timeout := time.Duration(w.spec.TimeoutSeconds) * time.Second
	switch h := &w.spec.ProbeHandler; {
	case h.Exec != nil:
		return m.execProbe(ctx, w.containerID, h.Exec.Command, timeout)
	case h.HTTPGet != nil:
		port, err := resolvePort(h.HTTPGet.Port, w.container)
		if err != nil {
			return unknown, "", err
		}
		return m.httpProbe(ctx, h.HTTPGet, hostOr(h.HTTPGet.Host, w.host), port, timeout)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, w.container)
		if err != nil {
			return unknown, "", err
		}
		return tcpProbe(ctx, net.JoinHostPort(hostOr(h.TCPSocket.Host, w.host), strconv.Itoa(port)), timeout)
	case h.GRPC != nil:
		service := ""
		if h.GRPC.Service != nil {
			service = *h.GRPC.Service
		}
		return grpcProbe(ctx, net.JoinHostPort(w.host, strconv.Itoa(int(h.GRPC.Port))), service, timeout)
	}
	return unknown, "", errors.New("the probe has no handler")
}

func hostOr(host, def string) string {
	if host != "" {
		return host
	}
	return def
}

// resolvePort returns the port number a probe names, looking a name up in
// the container's ports.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	n := port.IntValue()
	if port.Type == intstr.String {
		n = -1
		for _, p := range c.Ports {
			if p.Name == port.StrVal {
				n = int(p.ContainerPort)
			}
		}
		if n < 0 {
			return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
		}
	}
	if n <= 0 || n > 65535 {
		return 0, fmt.Errorf("invalid port number %d", n)
	}
	return n, nil
}

// probeDialer returns a dialer whose connections close with a reset
// instead of lingering in TIME_WAIT, so frequent probes do not exhaust
// local ports (as the kubelet's).
func probeDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 1})
		})
		return errors.Join(err, serr)
	}}
}
