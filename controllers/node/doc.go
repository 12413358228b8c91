// Package node keeps mirrorlet's Node object and its Lease.
//
// At start, CheckOwnership refuses a Node kept by a kubelet: that kubelet
// would delete mirrorlet's mirror pods as orphans and kill sandboxes it did
// not create. The Registrar then registers the Node if it does not exist
// (labels, a NoSchedule taint so the scheduler places nothing there, a Ready
// condition and nodeInfo that say what it is), registers it again when it is
// deleted, keeps its Ready condition in line with the container runtime, and
// renews a Lease in kube-node-lease every 10 seconds.
package node
