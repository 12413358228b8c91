package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mirrorlet/mirrorlet/controllers/node"
	"github.com/mirrorlet/mirrorlet/controllers/staticpod"
	"github.com/mirrorlet/mirrorlet/prober"
)

var registerProberMetrics sync.Once

// newProber makes the prober of the pod workers: exec probes through the
// runtime, Events through the engine's sink, and every result change wakes
// the worker of that pod (engine, once set).
func (a *agent) newProber(engine *atomic.Pointer[staticpod.Engine]) (*prober.Manager, error) {
	execer, ok := a.runtime.(prober.Execer)
	if !ok {
		a.opts.Log.Info("The container runtime cannot run commands in containers; exec probes will not tell", "runtime", a.runtime.Name())
		execer = noExec{}
	}
	registerProberMetrics.Do(func() {
		for _, c := range prober.Collectors() {
			metrics.Registry.MustRegister(c)
		}
	})
	m, err := prober.New(prober.Config{
		Execer: execer, NodeIP: node.HostIP(), Events: a.events, Log: a.opts.Log.WithName("prober"),
		OnChange: func(uid types.UID) {
			if e := engine.Load(); e != nil {
				e.OnChange(uid)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("setting up the prober: %w", err)
	}
	return m, nil
}

// noExec is the Execer of a runtime that cannot exec.
type noExec struct{}

func (noExec) ExecSync(context.Context, string, []string, time.Duration) ([]byte, []byte, int32, error) {
	return nil, nil, 0, errors.New("the container runtime cannot run commands in containers")
}
