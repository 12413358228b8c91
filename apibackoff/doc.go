// Package apibackoff makes every client of one API server back off
// together while the server is unreachable, instead of each caller
// retrying on its own.
//
// client-go retries a GET or watch that ended in EOF or a reset up to ten
// times, a second apart and without jitter, inside each call; the lease
// renewer, every reflector and every mirror write retry on top of that, so
// a node whose API server is gone dials it several times a second (the
// fault suite measured 2.4-4.1 connections a second behind a load
// balancer that accepts and closes), and each failed write grows that
// caller's own back-off (a workqueue's doubles per failure), which then
// delays its write long after the server is back.
//
// A Gate sits in the client's transport (rest.Config.Wrap) and is shared
// by every client built from that config. Once a request fails in the
// transport (no HTTP answer at all), the Gate holds every later request
// and probes the server itself, one GET /readyz at a time, after a
// jittered, exponentially growing pause (100 ms doubling to 800 ms, each
// plus up to 25 %): at most one connection attempt per pause, whoever the
// callers are. When /readyz answers 200 the Gate opens and releases every
// held request at once, so the node's writes reach the API server within a
// second of its readiness, and no caller saw a failure to back off from.
// Any other answer means "not ready yet" and the Gate keeps probing: a
// kube-apiserver that is starting refuses every request with 403 until its
// authorizer has synced, and a mirror write refused then would be taken as
// refused for good. Only a server that refuses the probe itself (401, 403,
// 404) for 10 s straight counts as ready (it answers, but will not tell).
//
// Held requests keep their context: one whose context ends is released
// with its error. A request cancelled by its caller says nothing about the
// server and changes nothing.
package apibackoff
