// Command webserver is the workload of mirrorlet's end-to-end tests: an HTTP
// server that says who it is, can be told to crash, and exits on SIGTERM
// (optionally after a delay, to test grace periods), and shows its
// environment, files and user so tests can check what the runtime gave it.
// Run with a tool name as first argument (tools.go), it is instead one of
// the small commands tests exec in containers.
// Its /healthz can be made to fail (/sick, /well, --start-delay,
// --sick-after) and /sleep to hang, for probes; `webserver --probe URL`
// is a command an exec probe can run in an image without a shell.
package main
