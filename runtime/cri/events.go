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

// How Changes learns of a change.
const (
	sourceEvent = "event"
	sourcePoll  = "poll"
)

// Run reports changes on Changes until ctx ends. It follows the runtime's
// container event stream (CRI GetContainerEvents, containerd ≥ 1.7) and
// polls ListContainers every PollInterval while the stream is not up: a
// runtime without it (containerd 1.6 answers Unimplemented), before the
// stream is confirmed, and after it broke until it is reconnected (with
// back-off). It is what notices a container exiting or being killed from
// outside.
func (r *Runtime) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.followEvents(ctx) })
	defer wg.Wait()
	t := time.NewTicker(r.opts.PollInterval)
	defer t.Stop()
	for {
		if !r.StreamsEvents() {
			r.poll(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// StreamsEvents reports whether Changes is currently fed by the runtime's
// event stream rather than by polling; a runtime cache may then relist
// less often.
func (r *Runtime) StreamsEvents() bool { return r.streaming.Load() }

func (r *Runtime) setStreaming(on bool) {
	if r.streaming.Swap(on) == on {
		return
	}
	r.metrics.setStreaming(on)
	if on {
		r.opts.Log.Info("Following the CRI runtime's container events; polling stopped", "endpoint", r.opts.Endpoint)
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
			r.opts.Log.Info("CRI runtime has no container event stream; polling", "endpoint", r.opts.Endpoint,
				"interval", r.opts.PollInterval.String(), "retry", retry.String())
		}
		return
	}
	r.opts.Log.Info("CRI container event stream ended; polling until it is back", "endpoint", r.opts.Endpoint,
		"error", errString(err), "retry", retry.String())
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// receiveEvents follows one event stream until it ends. The stream counts
// as up (polling stops) after its first event or once it has stayed open
// for EventsConfirm: a runtime without the call fails the first receive at
// once, and the polls made meanwhile cover changes made before the runtime
// subscribed the stream.
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

// handleEvent reports the pod of one event on Changes; events of
// containers and sandboxes that are not mirrorlet's are dropped.
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
	r.report(uid, sourceEvent)
}

// eventUID finds the pod UID of an event: from the sandbox's labels, else
// from the labels of the container the event is about, else from what an
// earlier event or poll learnt of that container ID (a deleted container's
// event may come without either status).
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
	if uid, ok := r.eventUIDs[ev.ContainerId]; ok {
		return uid, true
	}
	if e, ok := r.pollState[ev.ContainerId]; ok {
		return e.uid, true
	}
	return "", false
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
