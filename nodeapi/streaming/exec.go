package streaming

import (
	"errors"
	"net/http"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	translator "k8s.io/apiserver/pkg/util/proxy"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// serveExec runs a command in a running container of a pod.
func (h *Handlers) serveExec(w http.ResponseWriter, r *http.Request) {
	opts, err := streamOptions(r.URL.Query())
	if err != nil {
		writeError(w, badRequest(err))
		return
	}
	cmd := r.URL.Query()[corev1.ExecCommandParam]
	if len(cmd) == 0 {
		writeError(w, badRequest(errors.New("you must specify a command (query parameter \"command\")")))
		return
	}
	ns, pod, container := r.PathValue("podNamespace"), r.PathValue("podID"), r.PathValue("containerName")
	id, err := h.containerID(r, ns, pod, container)
	if err != nil {
		writeError(w, err)
		return
	}
	u, err := h.cfg.Runtime.Exec(r.Context(), id, cmd, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	h.cfg.Log.V(1).Info("Proxying exec", "namespace", ns, "pod", pod, "container", container, "tty", opts.TTY, "stdin", opts.Stdin)
	h.proxyStream(w, r, u, translatorOptions(opts))
}

// serveAttach attaches to the main process of a running container.
func (h *Handlers) serveAttach(w http.ResponseWriter, r *http.Request) {
	opts, err := streamOptions(r.URL.Query())
	if err != nil {
		writeError(w, badRequest(err))
		return
	}
	ns, pod, container := r.PathValue("podNamespace"), r.PathValue("podID"), r.PathValue("containerName")
	id, err := h.containerID(r, ns, pod, container)
	if err != nil {
		writeError(w, err)
		return
	}
	u, err := h.cfg.Runtime.Attach(r.Context(), id, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	h.cfg.Log.V(1).Info("Proxying attach", "namespace", ns, "pod", pod, "container", container, "tty", opts.TTY, "stdin", opts.Stdin)
	h.proxyStream(w, r, u, translatorOptions(opts))
}

// containerID resolves the running attempt of a container of a pod.
func (h *Handlers) containerID(r *http.Request, ns, pod, container string) (string, error) {
	p, err := h.findPod(r.Context(), ns, pod)
	if err != nil {
		return "", err
	}
	return runningContainer(p, container)
}

// streamOptions reads the streams of an exec or attach request as the
// kubelet does: "input", "output", "error" and "tty" are on when "1";
// stderr is dropped with a tty (a terminal merges it into stdout); at least
// one stream is required.
func streamOptions(q url.Values) (mruntime.StreamOptions, error) {
	opts := mruntime.StreamOptions{
		Stdin:  q.Get(corev1.ExecStdinParam) == "1",
		Stdout: q.Get(corev1.ExecStdoutParam) == "1",
		Stderr: q.Get(corev1.ExecStderrParam) == "1",
		TTY:    q.Get(corev1.ExecTTYParam) == "1",
	}
	if opts.TTY {
		opts.Stderr = false
	}
	if !opts.Stdin && !opts.Stdout && !opts.Stderr {
		return opts, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	return opts, nil
}

func translatorOptions(o mruntime.StreamOptions) translator.Options {
	return translator.Options{Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Tty: o.TTY}
}
