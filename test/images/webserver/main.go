// Command webserver is the workload of mirrorlet's end-to-end tests: an HTTP
// server that says who it is, can be told to crash, and exits on SIGTERM
// (optionally after a delay, to test grace periods), and shows its
// environment, files and user so tests can check what the runtime gave it.
// Run with a tool name as first argument (tools.go), it is instead one of
// the small commands tests exec in containers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
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
	flag.Parse()
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
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
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
