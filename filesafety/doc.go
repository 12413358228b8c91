// Package filesafety checks the local files mirrorlet trusts with the node:
// whoever can write a static pod manifest (or the directory holding it)
// runs containers as root on the node, and whoever can read a kubeconfig
// holding a credential acts as the node in the API server.
//
// The checks look at one file or directory (its mode and owner), not at
// its parent directories (README, "Local files mirrorlet trusts", says so).
package filesafety
