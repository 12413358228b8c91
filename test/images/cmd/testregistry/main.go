// Command testregistry serves mirrorlet's test images from a local OCI
// registry: it builds them, pushes them, writes the image references to
// --ready-file and serves until SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mirrorlet/mirrorlet/test/images"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:5000", "Address to serve the registry on (127.0.0.1 only).")
	ready := flag.String("ready-file", "", "File to write the image references to once they are pushed.")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	reg, err := images.Serve(*addr)
	if err != nil {
		return err
	}
	defer func() { _ = reg.Close() }()
	work, err := os.MkdirTemp("", "mirrorlet-images-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	if err := images.BuildAndPush(ctx, reg, work); err != nil {
		return err
	}
	var refs []string
	for _, img := range images.All {
		refs = append(refs, reg.Ref(img.Name))
	}
	fmt.Println("serving", strings.Join(refs, " "))
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(strings.Join(refs, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}
