// Package faults is mirrorlet's fault suite (issue 12): the mirrorlet
// binary as its own process, against a kube-apiserver and etcd the suite
// runs itself (so that the API server can be stopped and started again on
// the same etcd data), a private containerd and the test registry. Each
// test breaks something around the node — the manifest churns, another
// client deletes mirrors, containerd restarts, mirrorlet is killed with
// SIGKILL, the API server goes away, the log directory fills up — and
// checks both the node (sandboxes, container IDs and restart counts through
// CRI) and the API (mirrors and their status).
//
// Run with `make test-e2e` (needs root); FAULTS_FULL=1 runs the long
// variants (20 kill loops, a 2-minute API outage). `make soak` runs the
// 30-minute soak (TestSoak, FAULTS_SOAK=1), which CI does not.
package faults
