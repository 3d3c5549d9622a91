package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/event"
)

func testSim() scenarios.Sim {
	s := scenarios.DefaultSim()
	s.HPA.ScaleDownStabilization = 5 * time.Minute
	s.HPA.SyncPeriod = 15 * time.Second
	return s
}

func TestSchedulerLeavesUnplaceablePodsPending(t *testing.T) {
	loop := event.New(t0)
	c := New(loop, event.Stream(1, "c"), testSim())
	c.Register("i-1", 0)
	c.SetReplicas(10) // 7 fit on one node
	loop.RunUntil(t0.Add(time.Minute))
	if got := c.Unschedulable(); got != 3 {
		t.Fatalf("unschedulable %d, want 3", got)
	}
	if got := c.ReadyPods(); got != 7 {
		t.Fatalf("ready %d, want 7", got)
	}
	c.Register("i-2", 10*time.Second)
	loop.RunUntil(t0.Add(2 * time.Minute))
	if c.Unschedulable() != 0 || c.ReadyPods() != 10 {
		t.Fatalf("after a second node: unschedulable %d ready %d", c.Unschedulable(), c.ReadyPods())
	}
}

func TestDrainRespectsThePDB(t *testing.T) {
	loop := event.New(t0)
	c := New(loop, event.Stream(1, "c"), testSim())
	c.Register("i-1", 0)
	c.Register("i-2", 0)
	c.SetReplicas(6)
	loop.RunUntil(t0.Add(time.Minute))
	var victim string
	for _, n := range c.AllNodes() {
		if !n.ControlPlane {
			victim = n.Name
			break
		}
	}
	ctx := context.Background()
	if _, err := c.Drain(ctx, victim); err == nil {
		t.Fatal("drain of an uncordoned node accepted")
	}
	if err := c.Cordon(ctx, victim); err != nil {
		t.Fatal(err)
	}
	st, err := c.Drain(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	// maxUnavailable 1: one eviction now, the rest refused until the replacement is Ready
	if st.Evicted != 1 || st.Blocked == 0 || st.Done {
		t.Fatalf("first pass %+v", st)
	}
	// watch the PDB while the drain keeps retrying for its window
	minHealthy := 99
	for i := 0; i < 60; i++ {
		loop.RunUntil(loop.Now().Add(time.Second))
		minHealthy = min(minHealthy, c.healthy())
	}
	if minHealthy < 6-1 {
		t.Fatalf("healthy pods fell to %d: PDB maxUnavailable 1 violated", minHealthy)
	}
	st, _ = c.Drain(ctx, victim)
	loop.RunUntil(loop.Now().Add(time.Minute))
	st, _ = c.Drain(ctx, victim)
	if !st.Done {
		t.Fatalf("drain not done after two windows: %+v", st)
	}
	if c.ReadyPods() != 6 {
		t.Fatalf("ready pods %d after drain, want 6", c.ReadyPods())
	}
}

func TestLoadModelSaturatesAndDrops(t *testing.T) {
	loop := event.New(t0)
	cfg := testSim()
	c := New(loop, event.Stream(1, "c"), cfg)
	c.Register("i-1", 0)
	loop.RunUntil(t0.Add(time.Minute))
	var h Histogram
	// 2 pods, limit 1 core each, 10 ms per request: 200 req/s at most
	res := c.Step(15*time.Second, 50, 0, &h)
	if res.Dropped != 0 || res.Served != res.Offered {
		t.Fatalf("light load dropped: %+v", res)
	}
	h.Reset()
	res = c.Step(15*time.Second, 400, 0, &h)
	if res.Dropped <= 0 || res.Served > 200*15+1 {
		t.Fatalf("saturated: %+v", res)
	}
	if p95 := h.Quantile(0.95); p95 < 500 {
		t.Fatalf("saturated p95 %.0f ms, want > 500", p95)
	}
	n := c.NodeByInstance("i-1")
	if n.BusyCores < 1.9 {
		t.Fatalf("saturated node busy %.2f cores", n.BusyCores)
	}
}

func TestResourcesListsUnschedulablePodsAndRoom(t *testing.T) {
	loop := event.New(t0)
	cfg := testSim()
	c := New(loop, event.Stream(1, "c"), cfg)
	c.Register("i-1", 0)
	c.SetReplicas(10) // 7 fit on one node
	loop.RunUntil(t0.Add(time.Minute))
	res, err := c.Resources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pending) != 3 {
		t.Fatalf("pending %d, want 3", len(res.Pending))
	}
	if got := res.Pending[0].Requests.MilliCPU; got != int64(cfg.App.CPURequestm) {
		t.Errorf("pending pod cpu request %dm, want %dm", got, cfg.App.CPURequestm)
	}
	var worker *engine.NodeResources
	for i := range res.Nodes {
		if res.Nodes[i].Node != "k3s-master" {
			worker = &res.Nodes[i]
		}
	}
	if worker == nil || len(res.Nodes) != 2 {
		t.Fatalf("nodes %+v, want the master and one worker", res.Nodes)
	}
	wantReq := int64(cfg.Node.SystemCPUm + 7*cfg.App.CPURequestm)
	if worker.Requested.MilliCPU != wantReq || worker.DaemonSet.MilliCPU != int64(cfg.Node.SystemCPUm) {
		t.Errorf("worker requested %dm (want %dm), daemonset %dm", worker.Requested.MilliCPU, wantReq, worker.DaemonSet.MilliCPU)
	}
	// what is left is less than one more pod: that is why 3 are pending
	if worker.Free().Fits(res.Pending[0].Requests) {
		t.Errorf("free %+v fits a pending pod %+v", worker.Free(), res.Pending[0].Requests)
	}
}
