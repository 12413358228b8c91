package images

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// slowBlobs wraps a registry handler: blobs of repositories whose name
// starts with a slow prefix are sent in small pieces spread over the
// prefix's duration, as over a very slow link.
type slowBlobs struct {
	next http.Handler
	mu   sync.Mutex
	slow map[string]time.Duration // repository prefix -> time per blob
}

func (s *slowBlobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := s.delay(r)
	if d <= 0 || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
		s.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	trickle(r.Context(), w, rec.Body.Bytes(), d)
}

func (s *slowBlobs) delay(r *http.Request) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	for prefix, d := range s.slow {
		if strings.HasPrefix(r.URL.Path, "/v2/mirrorlet/"+prefix) {
			return d
		}
	}
	return 0
}

// trickle writes data in 100 pieces over d.
func trickle(ctx context.Context, w http.ResponseWriter, data []byte, d time.Duration) {
	const pieces = 100
	step := max(len(data)/pieces, 1)
	t := time.NewTicker(d / pieces)
	defer t.Stop()
	for r := bytes.NewReader(data); r.Len() > 0; {
		buf := make([]byte, min(step, r.Len()))
		_, _ = r.Read(buf)
		if _, err := w.Write(buf); err != nil {
			return
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SetSlow makes every blob of the repositories mirrorlet/<prefix>... take
// d to download (0: full speed again).
func (r *Registry) SetSlow(prefix string, d time.Duration) {
	r.slow.mu.Lock()
	defer r.slow.mu.Unlock()
	if d <= 0 {
		delete(r.slow.slow, prefix)
		return
	}
	r.slow.slow[prefix] = d
}

// Copy pushes the image Ref(from) again as Ref(to) with a config (and so
// an image ID) of its own, for an image the runtime has never pulled.
func (r *Registry) Copy(ctx context.Context, from, to string) error {
	src, err := name.ParseReference(r.Ref(from), name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(src, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading config of %s: %w", src, err)
	}
	cfg = cfg.DeepCopy()
	if cfg.Config.Labels == nil {
		cfg.Config.Labels = map[string]string{}
	}
	// A config of its own: the runtime must fetch it (the layer it has).
	cfg.Config.Labels["io.mirrorlet.copy"] = to
	out, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return r.Push(ctx, to, out)
}
