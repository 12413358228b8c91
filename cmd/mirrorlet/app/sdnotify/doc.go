// Package sdnotify tells systemd when mirrorlet is ready and when it stops,
// with the sd_notify protocol (go-systemd's daemon package), for a unit of
// Type=notify such as deploy/systemd/mirrorlet.service.
//
// mirrorlet is ready when its node side runs (sources, runtime, static pod
// reconciler, health server) and either the API caches have synced or
// Config.MaxAPIWait has passed since then. The bound matters: the node side
// runs static pods without the API server, so an API server outage must not
// hold `systemctl start` (and the units ordered after mirrorlet) until
// systemd's start timeout kills a mirrorlet that works. When the caches sync
// after READY=1 was sent, STATUS= says so.
//
// Without NOTIFY_SOCKET (not started by systemd, or not as Type=notify)
// nothing is sent. A message that cannot be sent is logged, never returned:
// notification never stops mirrorlet.
package sdnotify
