package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/cloud"
	"github.com/smartscale/smartscale/sim/world"
)

// The spot faults: they act on spot workers only (the cloud warns only spot instances), so
// they inject nothing into a run whose policy buys on-demand capacity only.

// Spot fault kind names.
const (
	SpotStorm            = "spot-storm"
	SpotZoneOutage       = "spot-zone-outage"
	RebalanceFlood       = "rebalance-flood"
	InterruptDuringDrain = "interrupt-during-drain"
)

var spotCatalogue = []Kind{
	{SpotStorm, "cloud", "an interruption storm: half or more of the running spot workers get the 2-minute warning within the window",
		"each is drained at once and replaced; the replacements go to other offerings or on-demand; bounds return"},
	{SpotZoneOutage, "cloud", "one zone loses all spot capacity: spot launches there fail (InsufficientInstanceCapacity) and its spot workers are warned",
		"the zone's spot offerings back off; launches go to the other zone's spot, then on-demand"},
	{RebalanceFlood, "cloud", "every spot worker gets rebalance recommendations, some more than once",
		"one replacement per at-risk worker at most; repeated recommendations change nothing"},
	{InterruptDuringDrain, "cloud", "a spot worker is warned while a scale-down drains (the draining node itself when it is spot)",
		"the draining node's operation is bounded by the notice, or another node is kept instead of a replacement; no node is drained twice"},
}

// spotWorkers lists the running managed spot instances.
func (h *Harness) spotWorkers() []*cloud.Instance {
	var out []*cloud.Instance
	for _, in := range h.w.Cloud.All() {
		if in.Managed && in.Offering.Spot() && in.State == engine.InstanceRunning {
			out = append(out, in)
		}
	}
	return out
}

// warn sends a notice through the simulated EC2 and counts it.
func (h *Harness) warn(kind string, id string, n engine.NoticeKind) {
	if in, ok := h.w.Cloud.Get(id); !ok || (in.State != engine.InstanceRunning && in.State != engine.InstancePending) {
		return
	}
	h.inject(kind)
	if n == engine.NoticeInterruption {
		h.chk.disturbed()
	}
	h.w.Cloud.Warn(id, n)
}

// installSpotWindows schedules the spot faults of one schedule entry.
func (h *Harness) installSpotWindow(f Fault) {
	w := h.w
	start, end := world.Epoch.Add(f.At), world.Epoch.Add(f.End())
	length := f.For
	switch f.Kind {
	case SpotStorm:
		w.Loop.At(start, func() {
			share := 0.5 + float64(f.Param%51)/100 // 50-100% of the spot workers
			for _, in := range h.spotWorkers() {
				if h.rng.Float64() >= share {
					continue
				}
				id := in.ID
				w.Loop.After(time.Duration(h.rng.Int64N(int64(length))), func() { h.warn(SpotStorm, id, engine.NoticeInterruption) })
			}
		})
	case SpotZoneOutage:
		zone := pick(world.Offerings, f.Param).Zone
		w.Loop.At(start, func() {
			h.inject(SpotZoneOutage)
			w.Cloud.SetSpotShortage(zone, end)
			for _, in := range h.spotWorkers() {
				if in.Offering.Zone == zone {
					id := in.ID
					w.Loop.After(time.Duration(h.rng.Int64N(int64(min(length, 2*time.Minute)))), func() {
						h.warn(SpotZoneOutage, id, engine.NoticeInterruption)
					})
				}
			}
		})
	case RebalanceFlood:
		w.Loop.At(start, func() {
			for _, in := range h.spotWorkers() {
				id := in.ID
				for range 1 + h.rng.IntN(3) {
					w.Loop.After(time.Duration(h.rng.Int64N(int64(length))), func() { h.warn(RebalanceFlood, id, engine.NoticeRebalance) })
				}
			}
		})
	case InterruptDuringDrain:
		var probe func()
		probe = func() {
			now := w.Loop.Now()
			if !now.Before(end) {
				return
			}
			if id := h.drainVictim(); id != "" {
				h.warn(InterruptDuringDrain, id, engine.NoticeInterruption)
				return // once per window
			}
			w.Loop.After(15*time.Second, probe)
		}
		w.Loop.At(start, probe)
	}
}

// drainVictim is, while a scale-down drains, the draining node's instance when it is spot,
// else another running spot worker; "" while nothing drains.
func (h *Harness) drainVictim() string {
	spot := h.spotWorkers()
	if len(spot) == 0 {
		return ""
	}
	for _, op := range h.chk.state.Open() {
		if op.Kind != engine.OpScaleDown || op.Cause != "" || (op.Phase != engine.PhaseCordoned && op.Phase != engine.PhaseDraining) {
			continue
		}
		for _, in := range spot {
			if in.ID == op.Instance {
				return in.ID
			}
		}
		for _, in := range spot {
			if in.ID != op.Instance {
				return in.ID
			}
		}
	}
	return ""
}

// Notice implements world.NoticeHandler: a notice is an invocation like a tick (it can be
// killed, and delivered twice).
func (a *autoscaler) Notice(ctx context.Context, now time.Time, n engine.Notice) (engine.Record, error) {
	h := a.h
	nh, ok := a.inner.(world.NoticeHandler)
	if !ok {
		return engine.Record{}, fmt.Errorf("autoscaler takes no notices")
	}
	inv := h.newInvocation(ctx, "notice", now)
	if _, ok := h.active(InvokeKill); ok && h.chance(2) {
		inv.killAt = 1 + h.rng.IntN(4)
	}
	prev := h.cur
	h.cur = inv
	rec, err := nh.Notice(ctx, now, n)
	h.cur = prev
	h.chk.record(inv, rec, err)
	if _, dup := h.active(InvokeDuplicate); dup && err == nil && rec.Lock == engine.LockAcquired && !failed(rec) {
		before := h.rawState()
		d := h.newInvocation(ctx, "duplicate", now)
		h.cur = d
		drec, derr := h.step.Notice(ctx, now, fmt.Sprintf("dup-%d", d.id), n)
		h.cur = prev
		h.inject(InvokeDuplicate)
		h.chk.record(d, drec, derr)
		h.chk.duplicate(d, drec, derr, before, h.rawState())
	}
	return rec, err
}

// Prices passes the simulated EC2's prices through (engine.Pricer).
func (c *cloudPort) Prices(ctx context.Context, offs []engine.Offering) (map[string]float64, error) {
	if p, ok := c.inner.(engine.Pricer); ok {
		return p.Prices(ctx, offs)
	}
	return nil, nil
}
