package streaming

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/proxy"
	translator "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// Config configures the handlers.
type Config struct {
	// Runtime resolves pods and gives streaming URLs. Required.
	Runtime Runtime
	// NodeName, when set, limits the handlers to the pods of this node:
	// those whose name ends in "-<NodeName>" (every mirror's does). It
	// matters only where several mirrorlets share a runtime (tests).
	NodeName string
	// Transport reaches the runtime's streaming server; nil means
	// http.DefaultTransport's settings (plain HTTP to 127.0.0.1 for
	// containerd's default streaming server).
	Transport http.RoundTripper
	// MaxBytesPerSec throttles translated WebSocket sessions; 0: no limit.
	MaxBytesPerSec int64
	Log            logr.Logger
}

// Handlers serves the streaming routes. Each route is an http.Handler.
type Handlers struct {
	cfg Config
	// Exec serves /exec/{podNamespace}/{podID}/{containerName}.
	Exec http.Handler
	// Attach serves /attach/{podNamespace}/{podID}/{containerName}.
	Attach http.Handler
	// PortForward serves /portForward/{podNamespace}/{podID}.
	PortForward http.Handler
}

// New returns the handlers of cfg.
func New(cfg Config) (*Handlers, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("streaming: a runtime is required")
	}
	h := &Handlers{cfg: cfg}
	h.Exec = http.HandlerFunc(h.serveExec)
	h.Attach = http.HandlerFunc(h.serveAttach)
	h.PortForward = http.HandlerFunc(h.servePortForward)
	return h, nil
}

// proxyStream proxies the client's upgrade request to the runtime's
// streaming URL u, as the kubelet's proxyStream does: a WebSocket request
// of the v5 stream-close protocol (client-go's and kubectl's default) is
// translated to SPDY, every other upgrade request passes unchanged.
func (h *Handlers) proxyStream(w http.ResponseWriter, r *http.Request, u *url.URL, opts translator.Options) {
	r = withoutBody(r)
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		translator.NewStreamTranslatorHandler(u, h.cfg.Transport, h.cfg.MaxBytesPerSec, opts).ServeHTTP(w, r)
		return
	}
	h.upgradeHandler(u).ServeHTTP(w, r)
}

// withoutBody returns r with http.NoBody as its body when it has none.
// An upgrade request carries no body, but a wrapped one (a size limit
// around http.NoBody) makes the proxy send the request to the runtime
// with "Transfer-Encoding: chunked" and a final empty chunk that the
// runtime then reads as the first bytes of the SPDY session, which breaks
// it.
func withoutBody(r *http.Request) *http.Request {
	if r.ContentLength != 0 || r.Body == nil || r.Body == http.NoBody {
		return r
	}
	r2 := r.WithContext(r.Context())
	r2.Body = http.NoBody
	return r2
}

// upgradeHandler proxies an upgrade request to u; a request that is not
// an upgrade is refused with 400.
func (h *Handlers) upgradeHandler(u *url.URL) http.Handler {
	return proxy.NewUpgradeAwareHandler(u, h.cfg.Transport, false, true, responder{log: h.cfg.Log})
}

// responder answers a failed proxy with 500, as the kubelet's does.
type responder struct{ log logr.Logger }

func (r responder) Error(w http.ResponseWriter, req *http.Request, err error) {
	r.log.Error(err, "Error proxying a streaming request", "path", req.URL.Path)
	http.Error(w, fmt.Sprintf("proxying to the runtime's streaming server: %v", err), http.StatusInternalServerError)
}
