package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 6443, "Port to listen on.")
	etcd := flag.String("etcd", "127.0.0.1:2379", "host:port of the etcd-like server it needs.")
	flag.Parse()
	conn, err := net.DialTimeout("tcp", *etcd, time.Second)
	if err != nil {
		fmt.Println("fakeapiserver: cannot reach etcd:", err)
		os.Exit(1)
	}
	_ = conn.Close()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: fmt.Sprintf(":%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-term
		_ = srv.Close()
	}()
	fmt.Printf("fakeapiserver serving on port %d\n", *port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Println("fakeapiserver:", err)
		os.Exit(1)
	}
}
