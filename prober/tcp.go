package prober

import (
	"context"
	"time"
)

// tcpProbe succeeds when a TCP connection to addr opens within timeout.
func tcpProbe(ctx context.Context, addr string, timeout time.Duration) (result, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := probeDialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return failure, err.Error(), nil
	}
	_ = conn.Close()
	return success, "", nil
}
