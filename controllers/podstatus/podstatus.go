package podstatus

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// Of is the status the mirror of sp shows for what runs on the
// node now (the node API's /pods serves it without the API server).
func Of(sp *manifest.StaticPod, states *podstate.Store, problems []desired.Problem, hostIP, runtimeName string, now time.Time) corev1.PodStatus {
	state, ok := states.Get(sp.Key())
	if ok && state.UID != sp.Pod.UID {
		state, ok = podstate.State{}, false // the runtime still runs the old version
	}
	return Compute(Input{
		Spec: &sp.Pod.Spec, State: state, HasState: ok, Problems: problems,
		HostIP: hostIP, RuntimeName: runtimeName, Now: now, Annotations: sp.Pod.Annotations,
	})
}
