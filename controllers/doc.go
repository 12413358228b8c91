// Package controllers holds mirrorlet's reconcilers, one sub-package each:
//
//   - staticpod: desired set vs runtime state; starts, stops, replaces and
//     restarts containers. The only writer to the container runtime, and it
//     needs no API server.
//   - podstate: what the static pod reconciler last observed on the node,
//     per static pod; read by the mirror reconciler.
//   - mirror: desired set + runtime state vs mirror Pods in the API server;
//     the only writer of mirror pods in the API.
//   - node: registers the Node, renews its Lease, refuses a Node kept by a
//     kubelet.
//   - rollback: judges each new revision of a static pod and pins an
//     earlier one when it fails (mirrorlet.io/rollback-after, mirrorlet
//     rollback).
//   - scheduledpod: rejects pods the scheduler binds to the node (phase
//     Failed); the only other writer of pods.
package controllers
