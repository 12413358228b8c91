// Package fake is an in-memory runtime.Runtime. Containers "run" until a
// test (or nobody) says they exit; nothing is executed. Tests drive it with
// Exit and SetUnreachable and inspect it with Pods and Starts. It is also
// what the binary uses for --container-runtime-endpoint=fake://, to try the
// API side of mirrorlet without a container runtime.
package fake
