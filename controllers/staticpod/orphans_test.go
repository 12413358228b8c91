package staticpod

import (
	"context"
	"testing"
)

// The data of a pod version that went while mirrorlet was stopped (its
// sandbox gone, its manifest changed meanwhile) is removed once the
// sources have synced; the data of the desired version is kept.
func TestOrphanDataRemovedAfterSync(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.want(true)
	f.settle(f.sp.Key())
	old := f.pod()
	if err := f.rt.StopPod(context.Background(), old.SandboxID, 0); err != nil {
		t.Fatal(err)
	}
	// A restarted mirrorlet: new engine state, the sources not read yet.
	f2 := newFixture(t, manifestWithPolicy("OnFailure"))
	f2.rt = f.rt
	f2.e.cfg.Runtime, f2.e.cfg.Cache = f.rt, f.e.cfg.Cache
	f2.e.cfg.Cache.Relist(context.Background())
	if f2.e.removeOrphanData(context.Background()) {
		t.Fatal("orphan data removed before the sources synced")
	}
	f2.want(true)
	f2.settle(f2.sp.Key())
	if !f2.e.removeOrphanData(context.Background()) {
		t.Fatal("orphan data not swept once synced")
	}
	if n := f.rt.RemovedData(old.UID); n != 1 {
		t.Errorf("data of the vanished version removed %d times, want 1", n)
	}
	if n := f.rt.RemovedData(f2.sp.Pod.UID); n != 0 {
		t.Errorf("data of the desired version removed %d times", n)
	}
}
