package prober

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Manager runs the probes of every running container attempt it is told
// about. Create it with New. All methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	start time.Time
	// ctx ends when the Manager stops; every worker runs under it.
	ctx  context.Context
	stop context.CancelFunc
	http *http.Transport

	mu sync.Mutex
	// pods holds the attempts of each pod version, by container ID.
	pods map[types.UID]map[string]*attempt

	// probed, if set (tests), is called after every probe.
	probed func(pt probeType, containerID string, r result)
}

// New validates and defaults cfg and returns a Manager. Containers that
// started before this call count as "already running when mirrorlet
// started" (their first probe is delayed by Config.Jitter).
func New(cfg Config) (*Manager, error) {
	if err := cfg.validateAndDefault(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg: cfg, start: cfg.Clock.Now(), ctx: ctx, stop: cancel,
		http: newHTTPTransport(),
		pods: map[types.UID]map[string]*attempt{},
	}, nil
}

// Start blocks until ctx ends, then stops every probe (a
// controller-runtime Runnable). Probes run from UpdatePod on, Start or not.
func (m *Manager) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-m.ctx.Done():
	}
	m.Stop()
	return nil
}

// Stop stops every probe. UpdatePod starts none afterwards.
func (m *Manager) Stop() {
	m.stop()
	m.http.CloseIdleConnections()
}

// UpdatePod starts probing the attempts in running that are new (one
// worker per probe the container's spec has) and stops probing the
// attempts of pod.UID that are not in running. pod is the desired pod (UID
// = spec hash); running lists the running attempt of each container by
// name. Calling it again with the same arguments changes nothing.
func (m *Manager) UpdatePod(pod *corev1.Pod, running []Running) {
	var notify bool
	m.mu.Lock()
	attempts := m.pods[pod.UID]
	if attempts == nil {
		attempts = map[string]*attempt{}
	}
	keep := sets.New[string]()
	for _, r := range running {
		c := findContainer(pod, r.Name)
		if c == nil || r.ID == "" {
			m.cfg.Log.V(1).Info("Not probing unknown container", "pod", types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}, "container", r.Name)
			continue
		}
		keep.Insert(r.ID)
		if _, ok := attempts[r.ID]; ok || m.ctx.Err() != nil {
			continue
		}
		a := m.newAttempt(pod, c, r)
		attempts[r.ID] = a
		notify = notify || a.status().Started
	}
	for id, a := range attempts {
		if !keep.Has(id) {
			a.cancel()
			delete(attempts, id)
		}
	}
	if len(attempts) > 0 {
		m.pods[pod.UID] = attempts
	} else {
		delete(m.pods, pod.UID)
	}
	m.mu.Unlock()
	if notify {
		// The attempt's Status went from "unknown" (not started) to
		// started: a caller that read it before this call must read again.
		m.cfg.OnChange(pod.UID)
	}
}

// RemovePod stops every probe of the pod version uid and forgets its
// results.
func (m *Manager) RemovePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.pods[uid] {
		a.cancel()
	}
	delete(m.pods, uid)
}

// Status returns the probe results of one container attempt. An attempt
// that UpdatePod was not told about is neither started nor ready.
func (m *Manager) Status(uid types.UID, containerID string) Status {
	m.mu.Lock()
	a := m.pods[uid][containerID]
	m.mu.Unlock()
	if a == nil {
		return Status{}
	}
	return a.status()
}

// newAttempt records a running attempt and starts a worker per probe.
func (m *Manager) newAttempt(pod *corev1.Pod, c *corev1.Container, r Running) *attempt {
	ctx, cancel := context.WithCancel(m.ctx)
	a := newAttempt(pod, c, cancel)
	started := r.StartedAt
	if started.IsZero() {
		started = m.cfg.Clock.Now()
	}
	host := r.PodIP
	if pod.Spec.HostNetwork || host == "" {
		host = m.cfg.NodeIP
	}
	for pt, spec := range a.specs {
		w := &worker{
			m: m, a: a, pt: pt, spec: spec, container: c, host: host,
			containerID: r.ID, startedAt: started, trigger: make(chan struct{}, 1),
			events: rate.NewLimiter(rate.Every(m.cfg.EventInterval), m.cfg.EventBurst),
		}
		a.workers[pt] = w
	}
	for _, w := range a.workers {
		go w.loop(ctx)
	}
	return a
}

// findContainer returns the app container called name, or nil. Init
// containers have no probes (validation refuses them).
func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return pod.Spec.Containers[i].DeepCopy()
		}
	}
	return nil
}
