package prober

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Execer runs a command in a running container and waits for it
// (runtime/cri and runtime/fake implement it).
type Execer interface {
	// ExecSync runs cmd in containerID. The runtime kills a command that
	// runs longer than timeout: that is an error wrapping
	// runtime.ErrExecTimeout. Any other error means the command could not
	// be run (container gone, runtime down); a command that ran and failed
	// is a nil error with a non-zero exitCode.
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error)
}

// EventSink records an Event on a static pod's mirror. pod is the static
// pod's key (the mirror's namespace and name), container the one the Event
// is about. It must not block.
type EventSink interface {
	Event(pod types.NamespacedName, container, eventType, reason, message string)
}

// Config configures a Manager.
type Config struct {
	// Execer runs exec probes. Required.
	Execer Execer
	// NodeIP is where probes of hostNetwork pods go (unless the probe
	// names a host). Required.
	NodeIP string
	// OnChange is called with the pod's UID whenever the Status of one of
	// its container attempts changes. It must not block. Optional.
	OnChange func(uid types.UID)
	// Events receives Unhealthy (and ProbeWarning) Events. Optional.
	Events EventSink
	// Clock schedules probes. Default: the real clock.
	Clock clock.WithTicker
	Log   logr.Logger
	// Jitter returns how long to wait, between 0 and max, before the first
	// probe of a container that was already running when the Manager was
	// made. Default: uniformly random.
	Jitter func(max time.Duration) time.Duration
	// EventBurst and EventInterval rate-limit the Events of one probe of
	// one container attempt: the first EventBurst are recorded at once
	// (a few may be lost while the mirror does not exist yet), then one
	// per EventInterval. Defaults 5 and 30s.
	EventBurst    int
	EventInterval time.Duration
}

func (c *Config) validateAndDefault() error {
	if c.Execer == nil {
		return errors.New("prober: an Execer is required")
	}
	if net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("prober: node IP %q is not an IP address", c.NodeIP)
	}
	if c.OnChange == nil {
		c.OnChange = func(types.UID) {}
	}
	if c.Events == nil {
		c.Events = discardEvents{}
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Jitter == nil {
		c.Jitter = func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return rand.N(max)
		}
	}
	if c.EventBurst <= 0 {
		c.EventBurst = 5
	}
	if c.EventInterval <= 0 {
		c.EventInterval = 30 * time.Second
	}
	return nil
}

type discardEvents struct{}

func (discardEvents) Event(types.NamespacedName, string, string, string, string) {}
