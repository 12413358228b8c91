// Package nodeapi is mirrorlet's kubelet-compatible node API: the HTTPS
// server the API server calls for `kubectl logs`, `exec`, `attach`,
// `port-forward` and `top` on the mirrors of this node.
//
// The model is the kubelet's (pkg/kubelet/server): the API server proxies
// pods/log, pods/exec, pods/attach and pods/portforward to the address and
// port the Node advertises (status.addresses, status.daemonEndpoints), on
// the routes
//
//	GET      /containerLogs/{podNamespace}/{podID}/{containerName}
//	GET|POST /exec/{podNamespace}/{podID}/{containerName}
//	GET|POST /attach/{podNamespace}/{podID}/{containerName}
//	GET|POST /portForward/{podNamespace}/{podID}
//	GET      /stats/summary, /metrics/resource, /pods, /healthz
//
// where podID is the mirror name (<static pod>-<node>). Pods of other nodes
// are unknown here (404), as they are to a kubelet.
//
// Every request, whatever its route, is authenticated and then authorised
// before it reaches a handler (see Attributes): client certificates against
// a client CA, bearer tokens by TokenReview, anonymous requests only when
// allowed; then a SubjectAccessReview on nodes/<node> with the subresource
// the kubelet uses for the path. A refused request never reaches a handler
// nor the container runtime. NewDelegatingAuth builds both from a
// kubeconfig, with the kubelet's caches.
//
// The server reads what runs through small interfaces (Pods) and the pod
// log files (package runtime/podlogs, the same code as `mirrorlet logs`);
// exec, attach, port-forward and stats are handlers plugged into Config by
// their own packages. A nil handler answers 501. Each request runs on its
// own goroutine with its own context; a client that stops reading a log
// stream only stalls its own request, and is cut off after
// Config.StalledWriteTimeout.
package nodeapi
