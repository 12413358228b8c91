// Command fakeetcd is the etcd-like test image of the start-order
// measurement: it listens on --port only after --listen-after (as etcd
// does once its data is loaded and its peers found), then answers /readyz
// with 200, and exits 0 on SIGTERM.
package main
