// Package images builds the container images of mirrorlet's end-to-end
// tests from our own code — a pause image and a small web server, each a
// static Go binary in a one-layer OCI image — and serves them from a local
// registry on 127.0.0.1 so that image pulls are real.
package images
