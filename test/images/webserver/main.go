package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if code, ok := runTool(); ok {
		os.Exit(code)
	}
	port := flag.Int("port", 8080, "Port to listen on.")
	message := flag.String("message", "hello", "Message in every answer.")
	exitAfter := flag.Duration("exit-after", 0, "Exit 0 after this long (0: never).")
	termDelay := flag.Duration("term-delay", 0, "Wait this long after SIGTERM before exiting.")
	writeFile := flag.String("write-file", "", "Write --message to this file and exit 0 (an init container's job).")
	startDelay := flag.Duration("start-delay", 0, "/healthz answers 503 for this long after start (a slow starter).")
	sickAfter := flag.Duration("sick-after", 0, "/healthz answers 500 from this long after start on (0: never).")
	probeURL := flag.String("probe", "", "GET this URL and exit 0 if it answers 2xx, else 1 (an exec probe's command).")
	tcpPort := flag.Int("tcp-port", 0, "Accept TCP connections on this port while healthy (a tcpSocket probe's target; 0: none).")
	grpcPort := flag.Int("grpc-port", 0, "Serve grpc.health.v1 on this port, SERVING while healthy (a grpc probe's target; 0: none).")
	flag.Parse()
	if *probeURL != "" {
		os.Exit(probe(*probeURL))
	}
	if *writeFile != "" {
		if err := os.WriteFile(*writeFile, []byte(*message), 0o644); err != nil {
			fmt.Println("writing:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", *writeFile)
		return
	}
	host, _ := os.Hostname()
	fmt.Printf("webserver starting on port %d (host %s)\n", *port, host)

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("request %s %s\n", r.Method, r.URL.Path)
		_, _ = fmt.Fprintf(w, "%s from %s pid %d\n", *message, host, os.Getpid())
	})
	// Endpoints that let tests look inside the container.
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
		for _, kv := range os.Environ() {
			_, _ = fmt.Fprintln(w, kv)
		}
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := os.WriteFile(q.Get("path"), []byte(q.Get("data")), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("written\n"))
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, _ *http.Request) {
		groups, _ := os.Getgroups()
		_, _ = fmt.Fprintf(w, "uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups)
	})
	h := &health{started: time.Now(), startDelay: *startDelay, sickAfter: *sickAfter}
	targets := &probeTargets{}
	if err := targets.start(*tcpPort, *grpcPort); err != nil {
		fmt.Println("serving:", err)
		os.Exit(2)
	}
	mux.HandleFunc("/healthz", h.serve)
	mux.HandleFunc("/sick", func(w http.ResponseWriter, _ *http.Request) { h.setSick(w, targets, true) })
	mux.HandleFunc("/well", func(w http.ResponseWriter, _ *http.Request) { h.setSick(w, targets, false) })
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		_, _ = fmt.Fprintf(w, "slept %s\n", d)
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Println("crashing on request")
		_, _ = w.Write([]byte("crashing\n"))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(1) }()
	})
	srv := &http.Server{Addr: fmt.Sprintf(":%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("serving:", err)
			os.Exit(2)
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var exit <-chan time.Time
	if *exitAfter > 0 {
		exit = time.After(*exitAfter)
	}
	select {
	case s := <-sigs:
		fmt.Printf("received %s, exiting after %s\n", s, *termDelay)
		time.Sleep(*termDelay)
	case <-exit:
		fmt.Println("exit-after reached")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// health is the state of /healthz.
type health struct {
	started               time.Time
	startDelay, sickAfter time.Duration
	sick                  atomic.Bool
}

// setSick makes /healthz and the probe targets answer as a sick (or well)
// server.
func (h *health) setSick(w http.ResponseWriter, targets *probeTargets, sick bool) {
	h.sick.Store(sick)
	if err := targets.set(!sick); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = fmt.Fprintln(w, map[bool]string{true: "sick", false: "well"}[sick])
}

func (h *health) serve(w http.ResponseWriter, _ *http.Request) {
	up := time.Since(h.started)
	switch {
	case up < h.startDelay:
		http.Error(w, "starting", http.StatusServiceUnavailable)
	case h.sick.Load() || (h.sickAfter > 0 && up >= h.sickAfter):
		http.Error(w, "sick", http.StatusInternalServerError)
	default:
		_, _ = w.Write([]byte("ok\n"))
	}
}

// probe GETs url and returns the exit code of an exec probe.
func probe(url string) int {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		fmt.Println("probe:", err)
		return 1
	}
	_ = resp.Body.Close()
	fmt.Println("probe:", resp.Status)
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}
