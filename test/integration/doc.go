// Package integration tests mirrorlet against a real kube-apiserver and etcd
// (controller-runtime envtest) with the in-memory fake runtime: the whole
// agent runs as main runs it (app.Run), and tests wait on conditions with
// deadlines. KUBEBUILDER_ASSETS must point at the binaries
// hack/build-envtest.sh builds; `make test` sets it.
package integration
