package main

import (
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// probeTargets are what tcpSocket and grpc probes check; each follows the
// server's health (/sick, /well):
//   - --tcp-port accepts connections while well; /sick closes it;
//   - --grpc-port serves grpc.health.v1: SERVING while well, NOT_SERVING
//     while sick.
type probeTargets struct {
	tcpPort int
	mu      sync.Mutex
	tcp     net.Listener
	grpc    *grpchealth.Server
}

// start opens the ports asked for (0: none), well.
func (p *probeTargets) start(tcpPort, grpcPort int) error {
	p.tcpPort = tcpPort
	if grpcPort != 0 {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", grpcPort))
		if err != nil {
			return fmt.Errorf("listening for gRPC: %w", err)
		}
		srv := grpc.NewServer()
		p.grpc = grpchealth.NewServer()
		healthpb.RegisterHealthServer(srv, p.grpc)
		go func() { _ = srv.Serve(l) }()
	}
	return p.set(true)
}

// set makes the targets answer as a well (or sick) server.
func (p *probeTargets) set(well bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.grpc != nil {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if well {
			st = healthpb.HealthCheckResponse_SERVING
		}
		p.grpc.SetServingStatus("", st)
	}
	switch {
	case p.tcpPort == 0:
	case well && p.tcp == nil:
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p.tcpPort))
		if err != nil {
			return fmt.Errorf("listening on the TCP port: %w", err)
		}
		p.tcp = l
		go acceptAndClose(l)
	case !well && p.tcp != nil:
		_ = p.tcp.Close()
		p.tcp = nil
	}
	return nil
}

func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}
