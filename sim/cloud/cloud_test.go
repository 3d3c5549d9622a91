package cloud

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/event"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func newCloud(t *testing.T) (*Cloud, *event.Loop) {
	loop := event.New(t0)
	c, err := New(loop, event.Stream(1, "cloud"), scenarios.DefaultSim().Cloud, "t3.medium", 0)
	if err != nil {
		t.Fatal(err)
	}
	return c, loop
}

func TestPriceTable(t *testing.T) {
	if p, err := Price("t3.medium"); err != nil || p != 0.0416 {
		t.Fatalf("t3.medium %v %v", p, err)
	}
	if _, err := Price("x9.huge"); err == nil {
		t.Fatal("unknown type priced")
	}
}

// Hand-worked billing: per second from running to terminated, 60 s minimum.
func TestBilling(t *testing.T) {
	c, loop := newCloud(t)
	c.cfg.ShutdownS = 0
	short := c.StartRunning(engine.Offering{}, true)
	long := c.StartRunning(engine.Offering{}, true)
	loop.RunUntil(t0.Add(20 * time.Second))
	if err := c.Terminate(context.Background(), []string{short.ID}); err != nil {
		t.Fatal(err)
	}
	loop.RunUntil(t0.Add(time.Hour))
	// short: 20 s billed as 60 s; long: 3600 s so far
	if got := short.BilledSeconds(loop.Now()); got != 60 {
		t.Errorf("short instance billed %v s, want 60", got)
	}
	if got := long.BilledSeconds(loop.Now()); got != 3600 {
		t.Errorf("long instance billed %v s, want 3600", got)
	}
	want := 0.0416 * (60 + 3600) / 3600
	if got := c.Cost(loop.Now()); math.Abs(got-want) > 1e-12 {
		t.Errorf("cost %v, want %v", got, want)
	}
}

func TestPendingInstanceTerminatedIsNeverBilled(t *testing.T) {
	c, loop := newCloud(t)
	ins, err := c.Launch(context.Background(), engine.LaunchRequest{Token: "a", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Terminate(context.Background(), []string{ins[0].ID}); err != nil {
		t.Fatal(err)
	}
	loop.RunUntil(t0.Add(time.Hour))
	if got := c.Cost(loop.Now()); got != 0 {
		t.Fatalf("cost %v for an instance that never ran", got)
	}
}

func TestLaunchIsIdempotentOnToken(t *testing.T) {
	c, _ := newCloud(t)
	a, err := c.Launch(context.Background(), engine.LaunchRequest{Token: "op-1", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Launch(context.Background(), engine.LaunchRequest{Token: "op-1", Count: 2})
	if err != nil || len(b) != 2 || a[0].ID != b[0].ID || len(c.All()) != 2 {
		t.Fatalf("retry created instances: %v %v, %d total", a, b, len(c.All()))
	}
}

func TestQuotaIsATypedError(t *testing.T) {
	c, _ := newCloud(t)
	_, err := c.Launch(context.Background(), engine.LaunchRequest{Token: "x", Count: 21})
	if !engine.IsQuota(err) {
		t.Fatalf("err %v, want quota", err)
	}
	var ce *engine.CloudError
	if !errors.As(err, &ce) || ce.Code != "InstanceLimitExceeded" {
		t.Fatalf("err %#v", err)
	}
}

func TestBootLatencies(t *testing.T) {
	c, loop := newCloud(t)
	var running []time.Duration
	c.OnRunning = func(in *Instance) { running = append(running, in.RunningAt.Sub(in.LaunchedAt)) }
	if _, err := c.Launch(context.Background(), engine.LaunchRequest{Token: "x", Count: 20}); err != nil {
		t.Fatal(err)
	}
	loop.RunUntil(t0.Add(10 * time.Minute))
	if len(running) != 20 {
		t.Fatalf("%d of 20 running", len(running))
	}
	for _, d := range running {
		if d < 5*time.Second || d > 3*time.Minute {
			t.Errorf("boot took %v", d)
		}
	}
}

func TestTerminateRefusesUnknownAndUnmanaged(t *testing.T) {
	c, _ := newCloud(t)
	if err := c.Terminate(context.Background(), []string{"i-nope"}); !engine.IsNotFound(err) {
		t.Fatalf("unknown: %v", err)
	}
	master := c.StartRunning(engine.Offering{}, false)
	if err := c.Terminate(context.Background(), []string{master.ID}); err == nil || master.State != engine.InstanceRunning {
		t.Fatalf("unmanaged instance terminated: %v", err)
	}
}
