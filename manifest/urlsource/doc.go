// Package urlsource reads static pods from a manifest URL (the kubelet's
// --manifest-url): one Pod or a PodList, YAML or JSON, fetched at start and
// then every CheckFrequency.
//
// Fetches are conditional (If-None-Match / If-Modified-Since), so an
// unchanged manifest costs a 304; they time out after 10 s and read at most
// 10 MiB. A failed fetch (non-200 answer, timeout, refused connection, a body
// that does not decode) keeps the pods of the last good fetch; a pod that
// turns invalid keeps its last good version. An empty 200 body means "no URL
// pods", as with the kubelet.
package urlsource
