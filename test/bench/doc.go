// Package bench is mirrorlet's benchmark (issue 12): `make bench` runs
// TestBench, which drives mirrorlet only through its manifest directory and
// the API server, times every step from fsnotify stamps on the manifest
// directory and watch events on the mirrors (never polling loops), counts
// mirrorlet's API requests by verb from its client side
// (mirrorlet_api_requests_total), and writes test/bench/RESULTS.md.
//
// Scenarios: 1 and 50 static pods on a private containerd with the
// mirrorlet binary as a process (root only), 1,000 with the binary against
// a fake CRI runtime served by the test process (k8s.io/cri-client's
// fake), and 100 in-process agents × 10 pods against one API server. On
// containerd the pods are web servers, so that a spec edit is proven by
// the new container answering and a crash is a real process killed on the
// node. At 1,000 pods, other API clients with identities of their own
// make a steady stream of small requests, and their latency in each phase
// (with the API server's Priority and Fairness counters of mirrorlet's
// requests) says whether mirrorlet's bursts starve them.
// MIRRORLET_BENCH=1 enables it; `go test ./...` skips it.
package bench
