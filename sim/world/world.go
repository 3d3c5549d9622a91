// Package world wires the simulated world together: the event loop, EC2, the cluster, the
// exporters and their in-memory Prometheus, the state store, and an autoscaler (SmartScale's
// engine.Step or a baseline) ticking every 2 minutes like EventBridge. Run returns the
// timeline, the per-tick records and the summary measures.
package world

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/cloud"
	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/event"
	"github.com/smartscale/smartscale/sim/metrics"
	"github.com/smartscale/smartscale/sim/store"
)

// Epoch is the virtual time every run starts at (a Monday, 00:00 UTC).
var Epoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// Intervals of the simulated world.
const (
	ScrapeInterval = 15 * time.Second
	TickInterval   = 2 * time.Minute
	TickOffset     = 5 * time.Second // EventBridge fires a few seconds into the period
)

// Autoscaler is what ticks every 2 minutes: SmartScale's engine.Step, or a baseline.
type Autoscaler interface {
	Tick(ctx context.Context, now time.Time) (engine.Record, error)
}

// Factory builds the autoscaler of a run once the world exists.
type Factory func(w *World) (Autoscaler, error)

// Config is one run.
type Config struct {
	Scenario scenarios.Scenario
	Seed     uint64
	Policy   engine.Policy
	// Name labels the autoscaler in outputs ("smartscale" by default).
	Name string
	// Autoscaler builds the autoscaler; nil: SmartScale's engine with Policy.
	Autoscaler Factory
	// InitialWorkers overrides the scenario's initial workers when >= 0 (static fleets).
	InitialWorkers int
	// Setup, when set, runs after the world is built and before the first event (the chaos
	// harness installs its faults here).
	Setup func(w *World) error
	// Progress, when set, is called about every simulated hour.
	Progress func(done, total time.Duration)
}

// Offerings the simulated autoscaler launches into.
var Offerings = []engine.Offering{
	{InstanceType: "t3.medium", Zone: "us-east-1a", Subnet: "subnet-a"},
	{InstanceType: "t3.medium", Zone: "us-east-1b", Subnet: "subnet-b"},
}

// World is one simulated world.
type World struct {
	Cfg     Config
	Sim     scenarios.Sim
	Loop    *event.Loop
	Cloud   *cloud.Cloud
	Cluster *cluster.Cluster
	TSDB    *metrics.Store
	// Metrics is what the autoscaler queries; the chaos harness may wrap it.
	Metrics engine.Metrics
	State   *store.Store
	Events  []engine.Event

	exp         *exporters
	loadRNG     *rand.Rand
	expRNG      *rand.Rand
	masterPrice float64
	m           measures
	notify      func(alerts []string) // the alert path's delivery (alerts.go), when alert ticks are on
	// AfterTick, when set, sees every tick's record (invariant checks).
	AfterTick func(rec engine.Record, err error)
	// AfterStep, when set, runs after every 15 s load step and scrape.
	AfterStep func()
}

// Notify implements engine.Notifier: events are kept for the outputs.
func (w *World) Notify(_ context.Context, ev engine.Event) error {
	w.Events = append(w.Events, ev)
	return nil
}

// New builds the world of a run.
func New(cfg Config) (*World, error) {
	if cfg.Name == "" {
		cfg.Name = "smartscale"
	}
	sc := cfg.Scenario
	loop := event.New(Epoch)
	cl, err := cloud.New(loop, event.Stream(cfg.Seed, "cloud"), sc.Sim.Cloud, sc.Sim.Node.InstanceType, sc.Sim.Node.PricePerHourUSD)
	if err != nil {
		return nil, err
	}
	masterPrice := sc.Sim.ControlPlane.PricePerHourUSD
	if masterPrice == 0 {
		if masterPrice, err = cloud.Price(sc.Sim.ControlPlane.InstanceType); err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}
	w := &World{Cfg: cfg, Sim: sc.Sim, Loop: loop, Cloud: cl,
		Cluster: cluster.New(loop, event.Stream(cfg.Seed, "cluster"), sc.Sim),
		TSDB:    metrics.NewStore(), State: store.New(),
		loadRNG: event.Stream(cfg.Seed, "load"), expRNG: event.Stream(cfg.Seed, "exporter"),
		masterPrice: masterPrice}
	w.Metrics = metrics.NewQuerier(w.TSDB)
	w.exp = newExporters(w.TSDB)
	if len(cfg.Policy.ReadingNames()) > len(engine.QueryNames()) || cfg.Policy.AlertTicks {
		w.exp.rules = newRuleSeries(w.TSDB, simShapes{appCPUm: w.Sim.App.CPURequestm, appMemMiB: w.Sim.App.MemoryRequestMiB,
			sysCPUm: w.Sim.Node.SystemCPUm, sysMemMiB: w.Sim.Node.SystemMemMiB})
	}
	if err := w.enableSpot(); err != nil { // spot.go
		return nil, err
	}
	cl.OnRunning = func(in *cloud.Instance) {
		join := cl.JoinDelay()
		loop.After(join, func() {
			if in.State == engine.InstanceRunning && w.Cluster.NodeByInstance(in.ID) == nil {
				w.register(in, event.Seconds(sc.Sim.Cloud.ReadyDelayS))
			}
		})
	}
	cl.OnTerminate = func(in *cloud.Instance) { w.Cluster.InstanceGone(in.ID) }

	n := sc.Sim.InitialWorkers
	if cfg.InitialWorkers >= 0 {
		n = cfg.InitialWorkers
	}
	spot := cfg.Policy.SpotWorkers(n) // 0 without spot: the run starts at the policy's mix
	for i := range n {
		off := Offerings[i%len(Offerings)]
		if i >= n-spot {
			off.CapacityType = engine.CapacitySpot
		}
		in := cl.StartRunning(off, true)
		w.Cluster.Register(in.ID, 0)
	}
	return w, nil
}

// SmartScale is the default Factory: the engine's Step over the world's adapters.
func SmartScale(w *World) (Autoscaler, error) {
	if err := w.Cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &stepper{step: &engine.Step{ClusterID: "sim", Policy: w.Cfg.Policy, Metrics: w.Metrics, Cloud: w.Cloud,
		Cluster: w.Cluster, Store: w.State, Notifier: w, Offerings: Offerings, Clock: w.Loop.Now}}, nil
}

type stepper struct {
	step *engine.Step
	n    int
}

func (s *stepper) Tick(ctx context.Context, now time.Time) (engine.Record, error) {
	s.n++
	trigger := ""
	if s.step.Policy.AlertTicks {
		trigger = engine.TriggerSchedule // the records say which ticks the schedule made
	}
	return s.step.RunTriggered(ctx, now, fmt.Sprintf("tick-%d", s.n), trigger)
}

// Step exposes the engine step of a SmartScale autoscaler (nil for baselines).
func Step(a Autoscaler) *engine.Step {
	if s, ok := a.(*stepper); ok {
		return s.step
	}
	return nil
}

// ZoneOf returns the zone of an instance.
func (w *World) ZoneOf(id string) string {
	if in, ok := w.Cloud.Get(id); ok {
		return in.Offering.Zone
	}
	return ""
}

// Cost is the cost so far: workers plus the always-on master.
func (w *World) Cost() float64 {
	return w.Cloud.Cost(w.Loop.Now()) + w.masterPrice*w.Loop.Now().Sub(Epoch).Hours()
}

// Run simulates the scenario and returns the result.
func (w *World) Run(ctx context.Context) (*Result, error) {
	factory := w.Cfg.Autoscaler
	if factory == nil {
		factory = SmartScale
	}
	if w.Cfg.Setup != nil {
		if err := w.Cfg.Setup(w); err != nil {
			return nil, err
		}
	}
	as, err := factory(w)
	if err != nil {
		return nil, err
	}
	w.Cloud.OnNotice = func(n engine.Notice) { w.deliver(ctx, as, n) } // spot.go
	total := w.Cfg.Scenario.Duration()
	end := Epoch.Add(total)
	var runErr error
	fail := func(err error) {
		if runErr == nil {
			runErr = err
		}
	}
	w.m.init(w)

	if err := w.exp.scrape(w.Cluster, Epoch.UnixMilli(), w.ZoneOf); err != nil {
		return nil, err
	}
	w.Loop.Every(Epoch.Add(ScrapeInterval), ScrapeInterval, func() {
		now := w.Loop.Now()
		off := now.Sub(Epoch) - ScrapeInterval/2
		rate := w.Cfg.Scenario.RateAt(off)
		if nf := w.Sim.NoiseFraction; nf > 0 {
			rate *= max(0, 1+nf*w.loadRNG.NormFloat64())
		}
		jitter := 0.02 * w.expRNG.NormFloat64()
		res := w.Cluster.Step(ScrapeInterval, rate, jitter, &w.m.minuteHist)
		if err := w.exp.scrape(w.Cluster, now.UnixMilli(), w.ZoneOf); err != nil {
			fail(fmt.Errorf("scrape at %s: %w", now.Format(time.RFC3339), err))
		}
		w.Cluster.SyncHPA(now)
		w.m.step(w, res, rate)
		if w.AfterStep != nil {
			w.AfterStep()
		}
		if now.Sub(Epoch)%time.Minute == 0 {
			w.m.minute(w)
		}
		if w.Cfg.Progress != nil && now.Sub(Epoch)%time.Hour == 0 {
			w.Cfg.Progress(now.Sub(Epoch), total)
		}
	})
	every := TickInterval
	if iv, ok := as.(interface{ TickEvery() time.Duration }); ok && iv.TickEvery() > 0 {
		every = iv.TickEvery() // a baseline with its own scan interval (ca-native)
	}
	w.Loop.Every(Epoch.Add(every+TickOffset), every, func() {
		rec, err := as.Tick(ctx, w.Loop.Now())
		w.m.tick(rec, err)
		if w.AfterTick != nil {
			w.AfterTick(rec, err)
		}
	})
	if at, ok := as.(AlertTicker); ok && w.Cfg.Policy.AlertTicks {
		w.scheduleAlerts(ctx, at)
	}
	w.Loop.RunUntil(end)
	if runErr != nil {
		return nil, runErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return w.m.result(w), nil
}

// round6 keeps JSON figures stable and short.
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
