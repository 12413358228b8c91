package sdnotify

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// DefaultMaxAPIWait is how long READY=1 waits for the API caches once the
// node side is up: long enough for a reachable API server to sync a node's
// few pods, well inside systemd's default start timeout (90 s).
const DefaultMaxAPIWait = 30 * time.Second

// Status lines sent with the notifications (systemctl status shows them).
const (
	StatusSynced   = "Running static pods; API caches synced"
	StatusNoAPI    = "Running static pods; API caches not synced yet, mirrors wait for the API server"
	StatusStopping = "Stopping; static pods keep running"
)

// Config configures a Notifier.
type Config struct {
	// MaxAPIWait bounds how long Run waits for APISynced before it sends
	// READY=1 anyway; 0: DefaultMaxAPIWait.
	MaxAPIWait time.Duration
	// Clock times MaxAPIWait; nil: the real clock.
	Clock clock.Clock
	Log   logr.Logger
}

// Notifier sends mirrorlet's readiness to systemd.
type Notifier struct {
	cfg       Config
	synced    chan struct{}
	closeOnce sync.Once
}

// New returns a Notifier; cfg's zero fields take their defaults.
func New(cfg Config) *Notifier {
	if cfg.MaxAPIWait <= 0 {
		cfg.MaxAPIWait = DefaultMaxAPIWait
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Notifier{cfg: cfg, synced: make(chan struct{})}
}

// APISynced records that the API caches have synced. It may be called any
// number of times, from any goroutine, before or while Run runs.
func (n *Notifier) APISynced() {
	n.closeOnce.Do(func() { close(n.synced) })
}

// Run is called once the node side is up; it blocks until ctx ends. It
// sends READY=1 when the API caches have synced or MaxAPIWait has passed,
// whichever comes first; a STATUS= line when the caches sync after that;
// and STOPPING=1 when ctx ends. Without NOTIFY_SOCKET it returns at once.
// It returns nil: failures to notify are logged.
func (n *Notifier) Run(ctx context.Context) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	defer n.send(daemon.SdNotifyStopping, StatusStopping)
	synced := n.synced
	timer := n.cfg.Clock.NewTimer(n.cfg.MaxAPIWait)
	defer timer.Stop()
	select {
	case <-synced:
		n.send(daemon.SdNotifyReady, StatusSynced)
		synced = nil // said already: the select below waits for ctx only
	case <-timer.C():
		n.send(daemon.SdNotifyReady, StatusNoAPI)
		n.cfg.Log.Info("Told systemd mirrorlet is ready before the API caches synced", "waited", n.cfg.MaxAPIWait)
	case <-ctx.Done():
		return nil
	}
	select {
	case <-synced:
		n.send("", StatusSynced)
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	return nil
}

// send sends state (if any) and a STATUS= line in one datagram.
func (n *Notifier) send(state, status string) {
	msg := "STATUS=" + status
	if state != "" {
		msg = state + "\n" + msg
	}
	if _, err := daemon.SdNotify(false, msg); err != nil {
		n.cfg.Log.Error(err, "Cannot notify systemd", "message", msg)
	}
}
