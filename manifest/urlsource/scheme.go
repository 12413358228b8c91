package urlsource

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// CheckScheme refuses a manifest URL that is not https://, unless it is
// http:// and allowHTTP is set or its host is a loopback address: whoever
// can answer or alter plain HTTP on the network runs containers as root on
// the node.
func CheckScheme(rawURL string, allowHTTP bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("manifest URL %q: %w", rawURL, err)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme != "http":
		return fmt.Errorf("manifest URL %q: only http:// and https:// are supported", rawURL)
	case allowHTTP || isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("manifest URL %q: plain http:// to %s, which is not a loopback address: whoever can answer "+
		"or alter that traffic runs containers as root on this node; use https:// (--manifest-url-ca-file for a "+
		"private CA) or --manifest-url-allow-http", rawURL, u.Hostname())
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkRedirect follows a redirect only to the same host (and port), and
// only where CheckScheme allows the new URL.
func checkRedirect(allowHTTP bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("manifest URL: stopped after 10 redirects")
		}
		from := via[0].URL
		if req.URL.Host != from.Host {
			return fmt.Errorf("manifest URL: refusing a redirect from host %s to another host %s (only same-host redirects are followed)",
				from.Host, req.URL.Host)
		}
		return CheckScheme(req.URL.String(), allowHTTP)
	}
}
