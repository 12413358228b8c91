// Package scheduledpod rejects the pods that the scheduler binds to
// mirrorlet's node. mirrorlet runs static pods only, from its manifests;
// a pod from the API (a DaemonSet's that tolerates every taint, say) would
// otherwise stay Pending forever. Like a kubelet that cannot admit a pod,
// the Reconciler sets its status to phase Failed with a reason and a
// message that names the node label to keep such pods off the node, and
// records a Warning Event on it. It never runs it: nothing read from the
// API server starts a container.
//
// Mirror pods (annotation kubernetes.io/config.mirror) and pods already
// Failed or Succeeded are left alone.
package scheduledpod
