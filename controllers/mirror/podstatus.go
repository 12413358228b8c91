package mirror

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// PodStatus is the status the mirror of sp shows for what runs on the
// node now (the node API's /pods serves it without the API server).
func PodStatus(sp *manifest.StaticPod, states *podstate.Store, problems []desired.Problem, hostIP, runtimeName string, now time.Time) corev1.PodStatus {
	state, ok := states.Get(sp.Key())
	if ok && state.UID != sp.Pod.UID {
		state, ok = podstate.State{}, false // the runtime still runs the old version
	}
	return computeStatus(statusInput{
		spec: &sp.Pod.Spec, state: state, hasState: ok, problems: problems,
		hostIP: hostIP, runtimeName: runtimeName, now: now, annotations: sp.Pod.Annotations,
	})
}
