package podlogs

import (
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	ts := time.Date(2026, 7, 1, 12, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name    string
		line    string
		want    Entry
		partial bool
		wantErr string
	}{
		{name: "full stdout", line: "2026-07-01T12:00:00.123456789Z stdout F hello world",
			want: Entry{Time: ts, Stream: "stdout", Content: []byte("hello world")}},
		{name: "partial stderr", line: "2026-07-01T12:00:00.123456789Z stderr P abc",
			want: Entry{Time: ts, Stream: "stderr", Content: []byte("abc")}, partial: true},
		{name: "content keeps its spaces", line: "2026-07-01T12:00:00.123456789Z stdout F  a  b ",
			want: Entry{Time: ts, Stream: "stdout", Content: []byte(" a  b ")}},
		{name: "empty line", line: "2026-07-01T12:00:00.123456789Z stdout F ",
			want: Entry{Time: ts, Stream: "stdout", Content: []byte{}}},
		{name: "empty line without its space", line: "2026-07-01T12:00:00.123456789Z stdout F",
			want: Entry{Time: ts, Stream: "stdout"}},
		{name: "more tags", line: "2026-07-01T12:00:00.123456789Z stdout P:x x",
			want: Entry{Time: ts, Stream: "stdout", Content: []byte("x")}, partial: true},
		{name: "short timestamp", line: "2026-07-01T12:00:00Z stdout F x",
			want: Entry{Time: ts.Truncate(time.Second), Stream: "stdout", Content: []byte("x")}},
		{name: "no timestamp", line: "hello world again", wantErr: "timestamp"},
		{name: "one word", line: "hello", wantErr: "no stream"},
		{name: "bad stream", line: "2026-07-01T12:00:00Z stdin F x", wantErr: "neither stdout nor stderr"},
		{name: "bad tag", line: "2026-07-01T12:00:00Z stdout X x", wantErr: "neither F nor P"},
		{name: "no tag", line: "2026-07-01T12:00:00Z stdout", wantErr: "neither stdout nor stderr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLine([]byte(tc.line))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(tc.want.Time) || got.Stream != tc.want.Stream ||
				string(got.Content) != string(tc.want.Content) || got.partial != tc.partial || got.Raw {
				t.Fatalf("got %+v (partial %v), want %+v (partial %v)", got.Entry, got.partial, tc.want, tc.partial)
			}
		})
	}
}

func TestDecoder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		flush bool
		want  []string // stream|content, or raw|content
	}{
		{name: "full lines", lines: []string{
			"2026-07-01T12:00:00Z stdout F one",
			"2026-07-01T12:00:01Z stderr F two",
		}, want: []string{"stdout|one", "stderr|two"}},
		{name: "partials joined", lines: []string{
			"2026-07-01T12:00:00Z stdout P a",
			"2026-07-01T12:00:01Z stdout P b",
			"2026-07-01T12:00:02Z stdout F c",
		}, want: []string{"stdout|abc"}},
		{name: "partials joined per stream", lines: []string{
			"2026-07-01T12:00:00Z stdout P a",
			"2026-07-01T12:00:01Z stderr F err",
			"2026-07-01T12:00:02Z stdout F b",
		}, want: []string{"stderr|err", "stdout|ab"}},
		{name: "malformed printed raw", lines: []string{
			"not a CRI line",
			"2026-07-01T12:00:00Z stdout F ok",
			"",
		}, want: []string{"raw|not a CRI line", "stdout|ok", "raw|"}},
		{name: "malformed ends a partial", lines: []string{
			"2026-07-01T12:00:00Z stdout P half",
			"garbage",
		}, want: []string{"stdout|half", "raw|garbage"}},
		{name: "flush unfinished partial", lines: []string{
			"2026-07-01T12:00:00Z stdout P never",
		}, flush: true, want: []string{"stdout|never"}},
		{name: "unfinished partial kept", lines: []string{
			"2026-07-01T12:00:00Z stdout P later",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			d := newDecoder(func(e Entry) {
				kind := e.Stream
				if e.Raw {
					kind = "raw"
				}
				got = append(got, kind+"|"+string(e.Content))
			})
			for _, l := range tc.lines {
				buf := []byte(l)
				d.line(buf)
				copy(buf, strings.Repeat("#", len(buf))) // the decoder must not keep the line
			}
			if tc.flush {
				d.flush()
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecoderKeepsFirstPieceTime(t *testing.T) {
	var got Entry
	d := newDecoder(func(e Entry) { got = e })
	d.line([]byte("2026-07-01T12:00:00Z stdout P a"))
	d.line([]byte("2026-07-01T12:00:05Z stdout F b"))
	if want := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC); !got.Time.Equal(want) {
		t.Fatalf("time %s, want the first piece's %s", got.Time, want)
	}
}
