package streaming

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	translator "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// servePortForward forwards connections into a pod's network namespace.
func (h *Handlers) servePortForward(w http.ResponseWriter, r *http.Request) {
	tunnel := wsstream.IsWebSocketRequestWithTunnelingProtocol(r)
	var ports []int32
	if !tunnel && wsstream.IsWebSocketRequest(r) {
		var err error
		if ports, err = portsOf(r.URL.Query()); err != nil {
			writeError(w, badRequest(err))
			return
		}
	}
	ns, name := r.PathValue("podNamespace"), r.PathValue("podID")
	pod, err := h.findPod(r.Context(), ns, name)
	if err != nil {
		writeError(w, err)
		return
	}
	if !pod.Ready {
		writeError(w, notFound("pod not found (%q)", name+"_"+ns))
		return
	}
	u, err := h.cfg.Runtime.PortForward(r.Context(), pod.SandboxID, ports)
	if err != nil {
		writeError(w, err)
		return
	}
	h.cfg.Log.V(1).Info("Proxying port-forward", "namespace", ns, "pod", name, "websocketTunnel", tunnel)
	handler := h.upgradeHandler(u)
	if tunnel {
		// SPDY tunnelled in WebSocket (kubectl's default): unwrap it and
		// speak SPDY to the runtime.
		handler = translator.NewTunnelingHandler(handler)
	}
	handler.ServeHTTP(w, withoutBody(r))
}

// portsOf reads the ports of a plain WebSocket port-forward request as the
// kubelet does: one or more "port" parameters, each a comma-separated list
// of ports in 1-65535. SPDY clients name ports per stream instead.
func portsOf(q url.Values) ([]int32, error) {
	values := q[corev1.PortHeader]
	if len(values) == 0 {
		return nil, fmt.Errorf("query parameter %q is required", corev1.PortHeader)
	}
	var ports []int32
	for _, v := range values {
		if v == "" {
			return nil, fmt.Errorf("query parameter %q cannot be empty", corev1.PortHeader)
		}
		for p := range strings.SplitSeq(v, ",") {
			port, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("unable to parse %q as a port: %w", v, err)
			}
			if port < 1 {
				return nil, fmt.Errorf("port %q must be > 0", v)
			}
			ports = append(ports, int32(port))
		}
	}
	return ports, nil
}
