// Package cri runs mirrorlet's static pods on a CRI v1 container runtime
// (containerd, CRI-O) over gRPC.
//
// Every sandbox and container it creates carries the labels in labels.go, so
// that a restarted mirrorlet finds (adopts) what runs and never touches
// sandboxes of other clients. Container logs go where the kubelet puts them,
// /var/log/pods/<namespace>_<name>_<uid>/<container>/<attempt>.log, and
// per-pod data (emptyDir volumes, termination-message files) lives under
// <RootDir>/pods/<uid>. A volumeMount's subPath is resolved beneath its
// volume by the kernel and bind-mounted, from the descriptor resolved,
// onto <RootDir>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>,
// the path handed to the runtime (subpathmount.go); RemovePodData unmounts
// them.
//
// Run tells the runtime cache which pods changed (Changes) from the
// runtime's CRI container event stream (GetContainerEvents; containerd ≥
// 1.7). It never lists the runtime itself: without the stream (containerd
// 1.6, or while it is down; StreamsEvents says which) the runtime cache
// relists every second instead.
package cri
