package integration

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/controllers/node"
)

// TestLeaseRenewedWithoutReading: once mirrorlet has written its node
// Lease, each renewal (every 10 s) is one update of the Lease it wrote
// last, with no get before it, as the kubelet renews: a fleet's steady
// requests are halved.
func TestLeaseRenewedWithoutReading(t *testing.T) {
	var gets atomic.Int32
	name := newNodeName("lease")
	startAgent(t, name, "", nil, func(o *app.Options) {
		c := rest.CopyConfig(o.RestConfig)
		c.Wrap(func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/leases/"+name) {
					gets.Add(1)
				}
				return next.RoundTrip(r)
			})
		})
		o.RestConfig = c
	})
	renewals := func(n int) {
		t.Helper()
		var seen []string
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Duration(n+1)*15*time.Second, true,
			func(ctx context.Context) (bool, error) {
				lease := &coordinationv1.Lease{}
				if err := k8s.Get(ctx, types.NamespacedName{Namespace: node.LeaseNS, Name: name}, lease); err != nil || lease.Spec.RenewTime == nil {
					return false, nil //nolint:nilerr // not written yet
				}
				if r := lease.Spec.RenewTime.String(); len(seen) == 0 || seen[len(seen)-1] != r {
					seen = append(seen, r)
				}
				return len(seen) > n, nil
			})
		if err != nil {
			t.Fatalf("saw %d lease renewals, want %d", len(seen)-1, n)
		}
	}
	renewals(0) // the Lease exists
	before := gets.Load()
	renewals(2)
	if got := gets.Load() - before; got != 0 {
		t.Errorf("mirrorlet read its Lease %d times over 2 renewals, want 0 (it updates the Lease it wrote last)", got)
	}
}
