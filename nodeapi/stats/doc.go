// Package stats serves the kubelet's resource statistics routes of
// mirrorlet's node API, for the static pods that mirrorlet runs:
//
//	GET /stats/summary     a k8s.io/kubelet stats/v1alpha1 Summary
//	GET /metrics/resource  the same CPU and memory figures in Prometheus
//	                       text format, with the kubelet's metric names and
//	                       labels (what metrics-server scrapes)
//
// Container figures come from the CRI runtime's ListContainerStats; pod
// figures from ListPodSandboxStats where the runtime has it, else the sum
// of the pod's containers (containerd 1.6 has the call but fails for
// sandboxes without a cgroup parent, as mirrorlet's are); node
// figures from /proc (stat and meminfo). Only CPU and memory are reported:
// no filesystem, network or volume statistics.
//
// usageNanoCores is a rate: where the runtime does not report it, the
// Provider keeps the previous sample of every container, pod and the node
// and computes it from two samples, as the kubelet's CRI stats provider
// does, so the first request after a container starts has no rate.
//
// The caller (package nodeapi) authenticates and authorises requests
// before they reach these handlers.
package stats
