// Package streaming serves the kubelet's streaming routes of mirrorlet's
// node API for static pods:
//
//	/exec/{podNamespace}/{podID}/{containerName}    GET, POST
//	/attach/{podNamespace}/{podID}/{containerName}  GET, POST
//	/portForward/{podNamespace}/{podID}             GET, POST
//
// podID is the mirror pod's name (<name>-<node>), which is the pod name the
// runtime records. The caller (package nodeapi) authenticates and
// authorises every request before it reaches these handlers and routes
// them with http.ServeMux patterns naming those path values.
//
// A handler resolves the pod (and container) from the runtime, never from
// the API server, parses the request's options as the kubelet does, asks
// the runtime's CRI streaming server for a one-time URL (CRI Exec, Attach,
// PortForward) and proxies the client's upgrade request to that URL, as the
// kubelet does for a CRI runtime: SPDY (remotecommand v1-v4,
// portforward.k8s.io) and WebSocket (channel.k8s.io v1-v4) pass through
// unchanged; a WebSocket v5.channel.k8s.io exec or attach, and a
// port-forward tunnelled over WebSocket, are translated to SPDY on the
// way, as the kubelet does, since CRI streaming servers (containerd 1.6)
// speak only the older protocols.
package streaming
