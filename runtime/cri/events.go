package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sourceEvent labels the changes learnt from the event stream.
const sourceEvent = "event"

// Run reports changes on Changes until ctx ends: it follows the runtime's
// container event stream (CRI GetContainerEvents, containerd ≥ 1.7),
// reconnecting with back-off, and reports the pods whose containers or
// sandboxes stopped or were deleted (not those mirrorlet created or
// started: madeByUs). It never lists the runtime: while the stream
// is not up (a runtime without it, as containerd 1.6, which answers
// Unimplemented; before the stream is confirmed; after it broke)
// StreamsEvents is false and the runtime cache (runtime/pleg), the only
// lister, relists often instead.
func (r *Runtime) Run(ctx context.Context) { r.followEvents(ctx) }

// StreamsEvents reports whether Changes is currently fed by the runtime's
// event stream; a runtime cache may then relist less often.
func (r *Runtime) StreamsEvents() bool { return r.streaming.Load() }

func (r *Runtime) setStreaming(on bool) {
	if r.streaming.Swap(on) == on {
		return
	}
	r.metrics.setStreaming(on)
	if on {
		r.opts.Log.Info("Following the CRI runtime's container events", "endpoint", r.opts.Endpoint)
		return
	}
	// Changes made while no stream was up are unseen: ask the cache to
	// relist everything now (and often, until the stream is back).
	select {
	case r.changes <- "":
	default:
	}
}

// followEvents keeps an event stream open until ctx ends, reconnecting
// with back-off (EventsRetryMin doubling up to EventsRetryMax; reset once a
// stream has lived EventsRetryMax).
func (r *Runtime) followEvents(ctx context.Context) {
	delay := r.opts.EventsRetryMin
	for ctx.Err() == nil {
		opened := time.Now()
		err := r.receiveEvents(ctx)
		r.setStreaming(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(opened) >= r.opts.EventsRetryMax {
			delay = r.opts.EventsRetryMin
		}
		r.logStreamEnd(err, delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, r.opts.EventsRetryMax)
	}
}

// logStreamEnd says why the stream ended: once at Info for a runtime that
// has no event stream, at Info for a stream that broke.
func (r *Runtime) logStreamEnd(err error, retry time.Duration) {
	if status.Code(err) == codes.Unimplemented {
		if !r.unimplementedLogged.Swap(true) {
			r.opts.Log.Info("CRI runtime has no container event stream; the runtime cache relists instead", "endpoint", r.opts.Endpoint,
				"retry", retry.String())
		}
		return
	}
	r.opts.Log.Info("CRI container event stream ended; the runtime cache relists until it is back", "endpoint", r.opts.Endpoint,
		"error", errString(err), "retry", retry.String())
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// receiveEvents follows one event stream until it ends. The stream counts
// as up (StreamsEvents) after its first event or once it has stayed open
// for EventsConfirm: a runtime without the call fails the first receive at
// once, and the relists made meanwhile cover changes made before the
// runtime subscribed the stream.
func (r *Runtime) receiveEvents(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := r.rt.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return fmt.Errorf("opening CRI container event stream: %w", err)
	}
	var mu sync.Mutex
	ended := false
	confirm := time.AfterFunc(r.opts.EventsConfirm, func() {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			r.setStreaming(true)
		}
	})
	defer func() {
		confirm.Stop()
		mu.Lock()
		ended = true
		mu.Unlock()
	}()
	for {
		ev, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("CRI runtime closed the container event stream")
			}
			return fmt.Errorf("receiving CRI container events: %w", err)
		}
		r.setStreaming(true)
		r.handleEvent(ev)
	}
}

// handleEvent reports the pod of one event on Changes when the event says
// something changed on its own (stopped, deleted); events of containers and
// sandboxes that are not mirrorlet's are dropped.
func (r *Runtime) handleEvent(ev *runtimeapi.ContainerEventResponse) {
	r.metrics.event(ev.ContainerEventType)
	uid, ok := r.eventUID(ev)
	if !ok {
		return
	}
	r.mu.Lock()
	if ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
		delete(r.eventUIDs, ev.ContainerId)
	} else {
		r.eventUIDs[ev.ContainerId] = uid
	}
	r.mu.Unlock()
	if madeByUs(ev.ContainerEventType) {
		return
	}
	r.report(uid, sourceEvent)
}

// madeByUs reports whether an event of one of mirrorlet's containers or
// sandboxes reports what a pod worker just did: only mirrorlet creates and
// starts them, and the worker that did waits for a refresh of its pod
// itself (pleg WaitNewer). Changes carries only changes made on their own
// (mruntime.Runtime), as stops and deletions can be. Refreshing on these
// too made the runtime cache list the runtime back to back while 50 pods
// start (two events a sandbox, two a container), and containerd lists
// everything to answer even a listing of one pod: one back-to-back lister
// slowed a 50-pod start from ~5.4 s to ~7.6 s (issue 12,
// BenchmarkContainerdStartFloor listers=1).
func madeByUs(t runtimeapi.ContainerEventType) bool {
	return t == runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT ||
		t == runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
}

// eventUID finds the pod UID of an event: from the sandbox's labels, else
// from the labels of the container the event is about, else from what an
// earlier event or listing learnt of that container ID (a deleted
// container's event may come without either status).
func (r *Runtime) eventUID(ev *runtimeapi.ContainerEventResponse) (types.UID, bool) {
	if uid, ok := managedUID(ev.GetPodSandboxStatus().GetLabels()); ok {
		return uid, true
	}
	for _, cs := range ev.GetContainersStatuses() {
		if cs.GetId() == ev.ContainerId {
			if uid, ok := managedUID(cs.GetLabels()); ok {
				return uid, true
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	uid, ok := r.eventUIDs[ev.ContainerId]
	return uid, ok && uid != ""
}

func managedUID(labels map[string]string) (types.UID, bool) {
	if labels[LabelManaged] != "true" || labels[LabelPodUID] == "" {
		return "", false
	}
	return types.UID(labels[LabelPodUID]), true
}

// report sends uid on Changes without blocking (a slow reader resyncs).
func (r *Runtime) report(uid types.UID, source string) {
	r.metrics.change(source)
	select {
	case r.changes <- uid:
	default:
	}
}
