package cluster

import (
	"context"
	"testing"
	"time"

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
