package streaming

import (
	"net/url"
	"slices"
	"testing"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

func TestStreamOptions(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  mruntime.StreamOptions
		err   bool
	}{
		{"output=1&error=1", mruntime.StreamOptions{Stdout: true, Stderr: true}, false},
		{"input=1&output=1&error=1&tty=1", mruntime.StreamOptions{Stdin: true, Stdout: true, TTY: true}, false},
		{"output=true", mruntime.StreamOptions{}, true},
		{"tty=1", mruntime.StreamOptions{}, true},
		{"", mruntime.StreamOptions{}, true},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := streamOptions(q)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("%q: %+v, %v; want %+v (error %t)", tc.query, got, err, tc.want, tc.err)
		}
	}
}

func TestPortsOf(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []int32
		err   bool
	}{
		{"port=80", []int32{80}, false},
		{"port=80,8080&port=9090", []int32{80, 8080, 9090}, false},
		{"", nil, true},
		{"port=", nil, true},
		{"port=0", nil, true},
		{"port=65536", nil, true},
		{"port=http", nil, true},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := portsOf(q)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v (error %t)", tc.query, got, err, tc.want, tc.err)
		}
	}
}
