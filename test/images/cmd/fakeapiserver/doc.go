// Command fakeapiserver is the apiserver-like test image of the
// start-order measurement: at start it connects to --etcd and exits 1 at
// once when nothing answers there (as kube-apiserver fails when etcd is
// down), else it serves /readyz on --port with 200 and exits 0 on SIGTERM.
package main
