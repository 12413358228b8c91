// Package app wires mirrorlet together: manifest sources feed the desired
// set; the static pod reconciler runs it on the container runtime; the mirror
// reconciler and the node registrar keep the API server in line. main parses
// flags and calls Run; the integration tests call Run too, so they test what
// ships.
//
// The node side (sources, runtime, static pod reconciler, health server)
// starts at once and never waits for the API server. The API side starts
// when the API server answers, and its failures never stop a container.
// Under systemd (Type=notify), package sdnotify reports READY=1 once the node
// side is up and the API caches have synced, or after a bounded wait.
package app
