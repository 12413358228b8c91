package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxRedirects bounds the redirects an HTTP probe follows.
const maxRedirects = 10

func newHTTPTransport() *http.Transport {
	return &http.Transport{
		// Probes check the container, not its certificate (as the kubelet).
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet's probe semantics
		DisableKeepAlives:  true,
		DisableCompression: true,
		Proxy:              nil,
		DialContext:        probeDialer().DialContext,
	}
}

// httpProbe GETs the probe's URL: a status from 200 to 399 succeeds.
// Redirects are followed only to the same host; a redirect elsewhere ends
// the probe with a success and a warning, as in the kubelet.
func (m *Manager) httpProbe(ctx context.Context, h *corev1.HTTPGetAction, host string, port int, timeout time.Duration) (result, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, probeURL(h, host, port), nil)
	if err != nil {
		return failure, err.Error(), nil
	}
	setHeaders(req, h.HTTPHeaders)
	client := &http.Client{Transport: m.http, CheckRedirect: sameHostRedirects}
	res, err := client.Do(req)
	if err != nil {
		return failure, err.Error(), nil
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxOutput))
	if err != nil {
		return failure, fmt.Sprintf("reading the response of %s: %v", req.URL, err), nil
	}
	switch code := res.StatusCode; {
	case code < http.StatusOK || code >= http.StatusBadRequest:
		return failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", code), nil
	case code >= http.StatusMultipleChoices:
		return warning, fmt.Sprintf("Probe terminated redirects, Response body: %s", body), nil
	}
	return success, string(body), nil
}

// probeURL builds the URL of an httpGet probe. The path may carry a query.
func probeURL(h *corev1.HTTPGetAction, host string, port int) string {
	u, err := url.Parse(h.Path)
	if err != nil {
		u = &url.URL{Path: h.Path}
	}
	u.Scheme = strings.ToLower(string(h.Scheme))
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	return u.String()
}

// setHeaders sets the probe's headers (a Host header sets the request's
// host) and the kubelet's User-Agent and Accept unless given.
func setHeaders(req *http.Request, headers []corev1.HTTPHeader) {
	for _, hd := range headers {
		if http.CanonicalHeaderKey(hd.Name) == "Host" {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header.Set("User-Agent", userAgent)
	}
	if _, ok := req.Header["Accept"]; !ok {
		req.Header.Set("Accept", "*/*")
	}
}

// sameHostRedirects follows a redirect only to the host of the first
// request; to another host, the redirect itself is the answer.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= maxRedirects {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}
