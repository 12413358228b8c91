package nodeapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mirrorlet/mirrorlet/runtime/podlogs"
)

// serveContainerLogs serves GET /containerLogs/{podNamespace}/{podID}/{containerName}
// with the query parameters of PodLogOptions, as the kubelet does, from
// the files `mirrorlet logs` reads.
func (s *Server) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	ns, podID, name := r.PathValue("podNamespace"), r.PathValue("podID"), r.PathValue("containerName")
	opts, err := parseLogOptions(r.URL.Query(), time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod, ok := s.cfg.Pods.GetPod(ns, podID)
	if !ok {
		http.Error(w, fmt.Sprintf("pod %q does not exist", podID), http.StatusNotFound)
		return
	}
	if !hasContainer(pod, name) {
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", name, podID), http.StatusNotFound)
		return
	}
	c, err := podlogs.Find(podlogs.Query{LogsDir: s.cfg.PodLogsDir, Namespace: ns, Pod: podID, UID: string(pod.UID), Container: name})
	if err != nil {
		http.Error(w, fmt.Sprintf("container %q in pod %q has no logs yet: %v", name, podID, err), http.StatusBadRequest)
		return
	}
	opts.Interval = s.cfg.FollowInterval
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if opts.Follow {
		go s.cancelWhenGone(ctx, cancel, types.NamespacedName{Namespace: ns, Name: podID}, pod.UID, opts.Interval)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	sw := newStreamWriter(w, s.cfg.StalledWriteTimeout)
	defer sw.done()
	if err := podlogs.Print(ctx, sw, c, opts); err != nil {
		if !sw.wrote {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.cfg.Log.V(1).Info("Container log stream ended", "pod", ns+"/"+podID, "container", name, "error", err.Error())
	}
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// cancelWhenGone ends a followed log when its pod is removed from the node
// or replaced by another version.
func (s *Server) cancelWhenGone(ctx context.Context, cancel func(), key types.NamespacedName, uid types.UID, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if pod, ok := s.cfg.Pods.GetPod(key.Namespace, key.Name); !ok || pod.UID != uid {
			cancel()
			return
		}
	}
}

// parseLogOptions decodes and checks PodLogOptions as query parameters,
// as the API server sends them (and "tail", the kubelet's older name of
// tailLines, "all" meaning every line).
func parseLogOptions(query url.Values, now time.Time) (podlogs.Options, error) {
	lo, err := decodeLogOptions(query)
	if err != nil {
		return podlogs.Options{}, fmt.Errorf("invalid log options: %w", err)
	}
	if errs := validateLogOptions(lo); len(errs) > 0 {
		return podlogs.Options{}, fmt.Errorf("invalid log options: %w", errs.ToAggregate())
	}
	o := podlogs.Options{Follow: lo.Follow, Previous: lo.Previous, Timestamps: lo.Timestamps, Tail: -1}
	if lo.TailLines != nil {
		o.Tail = int(min(*lo.TailLines, int64(1<<31-1)))
	}
	if lo.LimitBytes != nil {
		o.LimitBytes = *lo.LimitBytes
	}
	switch {
	case lo.SinceSeconds != nil:
		o.Since = now.Add(-time.Duration(*lo.SinceSeconds) * time.Second)
	case lo.SinceTime != nil:
		o.Since = lo.SinceTime.Time
	}
	if lo.Stream != nil && *lo.Stream != corev1.LogStreamAll {
		o.Stream = map[string]string{corev1.LogStreamStdout: "stdout", corev1.LogStreamStderr: "stderr"}[*lo.Stream]
	}
	return o, nil
}

// decodeLogOptions reads the query parameters of PodLogOptions.
func decodeLogOptions(q url.Values) (*corev1.PodLogOptions, error) {
	lo := &corev1.PodLogOptions{}
	var errs []error
	boolean := func(name string, into *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a boolean", name, v))
			}
			*into = b
		}
	}
	integer := func(name string) *int64 {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an integer", name, v))
			return nil
		}
		return &n
	}
	boolean("follow", &lo.Follow)
	boolean("previous", &lo.Previous)
	boolean("timestamps", &lo.Timestamps)
	lo.TailLines, lo.LimitBytes, lo.SinceSeconds = integer("tailLines"), integer("limitBytes"), integer("sinceSeconds")
	if tail := q.Get("tail"); tail != "" && tail != "all" {
		lo.TailLines = integer("tail")
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("sinceTime: %q is not an RFC 3339 time", v))
		}
		lo.SinceTime = &metav1.Time{Time: t}
	}
	if v := q.Get("stream"); v != "" {
		lo.Stream = &v
	}
	return lo, errors.Join(errs...)
}

// validateLogOptions checks what the API server's validation checks.
func validateLogOptions(lo *corev1.PodLogOptions) field.ErrorList {
	var errs field.ErrorList
	if lo.TailLines != nil && *lo.TailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *lo.TailLines, "must be greater than or equal to 0"))
	}
	if lo.LimitBytes != nil && *lo.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *lo.LimitBytes, "must be greater than 0"))
	}
	switch {
	case lo.SinceSeconds != nil && lo.SinceTime != nil:
		errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
	case lo.SinceSeconds != nil && *lo.SinceSeconds < 1:
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *lo.SinceSeconds, "must be greater than 0"))
	}
	if lo.Stream != nil {
		switch *lo.Stream {
		case corev1.LogStreamAll:
		case corev1.LogStreamStdout, corev1.LogStreamStderr:
			if lo.TailLines != nil {
				errs = append(errs, field.Forbidden(field.NewPath("tailLines"), "tailLines is not supported when a single stream is requested"))
			}
		default:
			errs = append(errs, field.NotSupported(field.NewPath("stream"), *lo.Stream,
				[]string{corev1.LogStreamStdout, corev1.LogStreamStderr, corev1.LogStreamAll}))
		}
	}
	return errs
}

// streamWriter writes a streamed response: every write is flushed to the
// client at once and must be taken within timeout, so that a client that
// stops reading ends its own request instead of holding it forever.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	wrote   bool
}

func newStreamWriter(w http.ResponseWriter, timeout time.Duration) *streamWriter {
	return &streamWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	sw.wrote = true
	n, err := sw.w.Write(p)
	if err != nil {
		return n, fmt.Errorf("writing to client: %w", err)
	}
	if err := sw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return n, fmt.Errorf("flushing to client: %w", err)
	}
	return n, nil
}

// done lifts the write deadline, so that the connection can serve another
// request.
func (sw *streamWriter) done() { _ = sw.rc.SetWriteDeadline(time.Time{}) }
