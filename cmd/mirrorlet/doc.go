// Command mirrorlet runs Kubernetes static pods on a node and keeps a
// read-only mirror Pod for each in the API server.
package main
