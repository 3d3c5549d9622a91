package world

import (
	"context"
	"fmt"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/cloud"
	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/event"
)

// Spot capacity in the simulated world: the cloud's spot market is on for a policy with
// spot_percent > 0, its notices reach the autoscaler as EventBridge delivers them to the
// Lambda, nodes take their instance type's shape, and the summary counts capacity by type.

// SpotSummary holds the spot measures of summary.json, written only for a policy that uses
// spot (so the brief's summaries do not change). The workers' cost is worker_cost_usd.
type SpotSummary struct {
	SpotNodeHours     *float64 `json:"spot_node_hours,omitempty"`
	OnDemandNodeHours *float64 `json:"on_demand_node_hours,omitempty"`
	SpotCostUSD       *float64 `json:"spot_cost_usd,omitempty"`
	// SpotSharePct is the spot share of the billed node-hours.
	SpotSharePct *float64 `json:"spot_share_pct,omitempty"`
	// Interruptions counts the spot instances the cloud reclaimed; Notices every
	// interruption warning and rebalance recommendation sent.
	Interruptions *int `json:"interruptions,omitempty"`
	Notices       *int `json:"spot_notices,omitempty"`
}

// NoticeHandler is an autoscaler that takes the cloud's notices (SmartScale's engine).
type NoticeHandler interface {
	Notice(ctx context.Context, now time.Time, n engine.Notice) (engine.Record, error)
}

// noticeRetry is how long a notice that found the lock held waits before it is tried again
// (the Lambda handler retries within its invocation the same way), while it is still useful.
const noticeRetry = 20 * time.Second

func (w *World) enableSpot() error {
	if !w.Cfg.Policy.UsesSpot() {
		return nil
	}
	var zones []string
	for _, o := range Offerings {
		zones = append(zones, o.Zone)
	}
	return w.Cloud.EnableSpot(event.Stream(w.Cfg.Seed, "spot"), event.Stream(w.Cfg.Seed, "spot-shortage"),
		w.Sim.Cloud.SpotInterruptionScale, w.Sim.Cloud.SpotShortageScale, zones, w.Cfg.Scenario.Duration())
}

// register adds the node of a running instance, shaped by its instance type.
func (w *World) register(in *cloud.Instance, ready time.Duration) {
	typ := in.Offering.InstanceType
	if typ == "" || typ == w.Sim.Node.InstanceType {
		w.Cluster.Register(in.ID, ready)
		return
	}
	n := w.Sim.Node
	sh, err := cloud.ShapeOf(typ, cloud.Shape{InstanceType: n.InstanceType, Cores: n.CPUMillicores / 1000,
		MemTotalMiB: float64(n.MemoryMiB), AllocCPUm: n.AllocatableCPUm, AllocMemMiB: n.AllocatableMemMiB}, workerGiB(n.InstanceType))
	if err != nil { // no figures: the scenario's shape (the cloud priced it, so it exists)
		w.Cluster.Register(in.ID, ready)
		return
	}
	w.Cluster.RegisterShape(in.ID, cluster.Shape{InstanceType: sh.InstanceType, Cores: sh.Cores, MemTotalMiB: sh.MemTotalMiB,
		AllocCPUm: sh.AllocCPUm, AllocMemMiB: sh.AllocMemMiB}, ready)
}

// workerGiB is the memory AWS publishes for the scenario's worker type (its MemoryMiB is
// what the OS sees); 4 GiB when the type is unknown.
func workerGiB(typ string) float64 {
	if _, gib, err := cloud.Published(typ); err == nil {
		return gib
	}
	return 4
}

// deliver hands a notice to the autoscaler, as EventBridge invokes the Lambda; a notice that
// finds the lock held is tried again while it is still useful (an interruption: until the
// instance is reclaimed; a rebalance recommendation: for two minutes).
func (w *World) deliver(ctx context.Context, as Autoscaler, n engine.Notice) {
	h, ok := as.(NoticeHandler)
	if !ok {
		return // a baseline: it learns of the loss at its next tick
	}
	until := n.Time.Add(engine.InterruptionNotice)
	if !n.Deadline.IsZero() {
		until = n.Deadline
	}
	var try func()
	try = func() {
		rec, err := h.Notice(ctx, w.Loop.Now(), n)
		w.m.notice(rec, err)
		if w.AfterTick != nil {
			w.AfterTick(rec, err)
		}
		if rec.Lock == engine.LockHeld && w.Loop.Now().Add(noticeRetry).Before(until) {
			w.Loop.After(noticeRetry, try)
		}
	}
	try()
}

// Notice implements NoticeHandler for SmartScale's engine.
func (s *stepper) Notice(ctx context.Context, now time.Time, n engine.Notice) (engine.Record, error) {
	s.n++
	return s.step.Notice(ctx, now, fmt.Sprintf("notice-%d", s.n), n)
}

func (m *measures) notice(rec engine.Record, err error) {
	if err != nil {
		m.tickErrors++
	}
	m.records = append(m.records, rec)
	m.notices++
	m.decisions[string(rec.Decision.Action)]++
}

func (w *World) spotSummary(now time.Time) SpotSummary {
	if !w.Cloud.SpotEnabled() || !w.Cfg.Policy.UsesSpot() {
		return SpotSummary{}
	}
	od, spot := w.Cloud.CapacitySeconds(now)
	cost := 0.0
	for _, in := range w.Cloud.All() {
		if in.Offering.Spot() {
			cost += in.Price * in.BilledSeconds(now) / 3600
		}
	}
	f := func(v float64) *float64 { v = round6(v); return &v }
	i := func(v int) *int { return &v }
	s := SpotSummary{SpotNodeHours: f(spot / 3600), OnDemandNodeHours: f(od / 3600), SpotCostUSD: f(cost),
		Interruptions: i(w.Cloud.Interruptions), Notices: i(w.Cloud.Notices)}
	if od+spot > 0 {
		s.SpotSharePct = f(100 * spot / (od + spot))
	}
	return s
}
