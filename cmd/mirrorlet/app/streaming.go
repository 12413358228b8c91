package app

import (
	"context"

	"github.com/mirrorlet/mirrorlet/nodeapi"
	"github.com/mirrorlet/mirrorlet/nodeapi/stats"
	"github.com/mirrorlet/mirrorlet/nodeapi/streaming"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/pleg"
)

// addStreamingHandlers fills the node API's exec, attach, port-forward and
// stats routes when the runtime can serve them (the CRI runtime can; the
// fake runtime cannot, and those routes then answer 501).
func (a *agent) addStreamingHandlers(cfg *nodeapi.Config) error {
	log := a.opts.Log.WithName("nodeapi")
	if rt, ok := a.runtime.(streaming.Runtime); ok {
		h, err := streaming.New(streaming.Config{Runtime: streamingRuntime{rt, a.cache}, NodeName: a.opts.NodeName, Log: log.WithName("streaming")})
		if err != nil {
			return err
		}
		cfg.Exec, cfg.Attach, cfg.PortForward = h.Exec, h.Attach, h.PortForward
	}
	if rt, ok := a.runtime.(stats.Runtime); ok {
		p, err := stats.New(stats.Config{Runtime: statsRuntime{rt, a.cache}, NodeName: a.opts.NodeName, Log: log.WithName("stats")})
		if err != nil {
			return err
		}
		h := p.Handlers()
		cfg.StatsSummary, cfg.ResourceMetrics = h.Summary, h.ResourceMetrics
	}
	return nil
}

// streamingRuntime and statsRuntime find pods in the runtime cache: the
// cache is the only lister of the runtime, so node API requests add no
// runtime listing of their own.
type streamingRuntime struct {
	streaming.Runtime
	cache *pleg.Cache
}

func (r streamingRuntime) ListPods(ctx context.Context) ([]mruntime.Pod, error) {
	return r.cache.ListPods(ctx)
}

type statsRuntime struct {
	stats.Runtime
	cache *pleg.Cache
}

func (r statsRuntime) ListPods(ctx context.Context) ([]mruntime.Pod, error) {
	return r.cache.ListPods(ctx)
}
