package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 2379, "Port to listen on.")
	after := flag.Duration("listen-after", 5*time.Second, "Listen only after this long.")
	flag.Parse()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("fakeetcd starting; listening on port %d in %s\n", *port, *after)
	select {
	case <-term:
		return
	case <-time.After(*after):
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: fmt.Sprintf(":%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-term
		_ = srv.Close()
	}()
	fmt.Println("fakeetcd listening")
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Println("fakeetcd:", err)
		os.Exit(1)
	}
}
