package baseline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/world"
)

// CAConfig holds the cluster-autoscaler-style rules (its defaults: scale-down-utilization-
// threshold 0.5, scale-down-unneeded-time 10m, scale-down-delay-after-add 10m).
type CAConfig struct {
	UtilizationThreshold float64       // a node whose requested share stays under this ...
	UnneededTime         time.Duration // ... for this long may be removed
	DelayAfterAdd        time.Duration // no scale-down this long after a scale-up
	// ScanInterval is how often it looks (cluster-autoscaler's --scan-interval); 0: the
	// world's 2-minute tick, as SmartScale's Lambda is scheduled.
	ScanInterval time.Duration
}

// NativeCAConfig is cluster-autoscaler as it runs in a cluster: its defaults, scanning every
// 10 s (--scan-interval), scaling up for a pod as soon as it is unschedulable
// (--new-pod-scale-up-delay 0).
func NativeCAConfig() CAConfig {
	c := DefaultCAConfig()
	c.ScanInterval = 10 * time.Second
	return c
}

// TickEvery tells the world the baseline's own tick interval.
func (c *caLike) TickEvery() time.Duration { return c.cfg.ScanInterval }

// DefaultCAConfig returns cluster-autoscaler's defaults.
func DefaultCAConfig() CAConfig {
	return CAConfig{UtilizationThreshold: 0.5, UnneededTime: 10 * time.Minute, DelayAfterAdd: 10 * time.Minute}
}

// NewCALike returns the factory of a cluster-autoscaler-style policy, evaluated on the same
// 2-minute tick as SmartScale and bounded by the run policy's MinWorkers and MaxWorkers:
//
//   - scale up only when pods are unschedulable: as many workers as the pods that the
//     workers still launching will not take need (packed by requests), no usage trigger;
//   - a Ready worker whose requested share (max of CPU and memory requests, system pods
//     included, over allocatable) stays under the threshold for UnneededTime, and whose pods
//     fit on the other workers, is removed: cordon, drain (PodDisruptionBudget-respecting,
//     one Drain call per tick, given up after the policy's DrainTimeout), terminate, delete;
//     one node at a time, never within DelayAfterAdd of a scale-up, never below min.
func NewCALike(cfg CAConfig) world.Factory {
	return func(w *world.World) (world.Autoscaler, error) {
		if err := w.Cfg.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		return &caLike{w: w, cfg: cfg, p: w.Cfg.Policy, perNode: cluster.PodsPerNode(w.Sim), under: map[string]time.Time{}}, nil
	}
}

type caLike struct {
	w       *world.World
	cfg     CAConfig
	p       engine.Policy
	perNode int
	lastUp  time.Time
	under   map[string]time.Time // node name -> start of its current under-threshold stretch
	drain   *caDrain
	seq     int
}

type caDrain struct {
	node, instance, reason string
	started                time.Time
}

func (c *caLike) Tick(ctx context.Context, now time.Time) (engine.Record, error) {
	f := look(c.w)
	rec := record(now, f)
	d := &rec.Decision
	set := func(a engine.Action, delta int, reason string) {
		d.Action, d.Delta, d.Reason, d.Target = a, delta, reason, d.Workers+delta
	}
	c.trackUnneeded(now)

	if c.drain != nil {
		c.continueDrain(ctx, now, &rec)
		f = look(c.w)
		d.Workers, d.Target = f.active, f.active
	}

	// Scale up: unschedulable pods that the launching workers will not take.
	pending := c.w.Cluster.Unschedulable()
	if f.active < c.p.MinWorkers {
		d.Triggers = []string{engine.TriggerBelowMin}
		set(engine.ActionScaleUp, c.p.MinWorkers-f.active, fmt.Sprintf("%d workers below min %d", f.active, c.p.MinWorkers))
		return rec, c.launch(ctx, now, &rec)
	}
	if pending > 0 {
		left := pending - f.launching*c.perNode
		need := (max(0, left) + c.perNode - 1) / c.perNode
		why := fmt.Sprintf("%d pods unschedulable, %d launching workers take %d", pending, f.launching, f.launching*c.perNode)
		switch {
		case need == 0:
			set(engine.ActionNone, 0, why)
		case f.active >= c.p.MaxWorkers:
			d.Triggers = []string{engine.TriggerPending}
			set(engine.ActionAtMax, 0, fmt.Sprintf("at max capacity (%d workers): %s", c.p.MaxWorkers, why))
		default:
			d.Triggers = []string{engine.TriggerPending}
			set(engine.ActionScaleUp, min(need, c.p.MaxWorkers-f.active), why)
			return rec, c.launch(ctx, now, &rec)
		}
		return rec, nil
	}

	// Scale down.
	switch {
	case c.drain != nil:
		set(engine.ActionBusy, 0, "draining "+c.drain.node)
		return rec, nil
	case !c.lastUp.IsZero() && now.Sub(c.lastUp) < c.cfg.DelayAfterAdd:
		set(engine.ActionCooldown, 0, fmt.Sprintf("scale-down delay after add, %v left", c.cfg.DelayAfterAdd-now.Sub(c.lastUp)))
		return rec, nil
	}
	node, share, ok := c.unneeded(now)
	if !ok {
		set(engine.ActionNone, 0, fmt.Sprintf("no node under %.0f%% requested for %v whose pods fit elsewhere",
			100*c.cfg.UtilizationThreshold, c.cfg.UnneededTime))
		return rec, nil
	}
	reason := fmt.Sprintf("node %s requested %.0f%% < %.0f%% for %v", node.Name, 100*share, 100*c.cfg.UtilizationThreshold, c.cfg.UnneededTime)
	if f.active <= c.p.MinWorkers {
		set(engine.ActionAtMin, 0, fmt.Sprintf("at min (%d workers): %s", c.p.MinWorkers, reason))
		return rec, nil
	}
	d.Triggers = []string{engine.TriggerLow}
	d.Node, d.Instance = node.Name, node.InstanceID
	set(engine.ActionScaleDown, -1, reason)
	c.drain = &caDrain{node: node.Name, instance: node.InstanceID, reason: reason, started: now}
	delete(c.under, node.Name)
	if err := c.w.Cluster.Cordon(ctx, node.Name); err != nil {
		rec.Acted = append(rec.Acted, engine.Act{Kind: "cordon", Node: node.Name, Result: "failed", Error: err.Error()})
		c.drain = nil
		return rec, nil
	}
	rec.Acted = append(rec.Acted, engine.Act{Kind: "cordon", Node: node.Name, Result: "ok"})
	c.continueDrain(ctx, now, &rec)
	return rec, nil
}

// requested is a node's requested share: the larger of its CPU and memory requests (system
// pods included) over allocatable.
func (c *caLike) requested(n *cluster.Node, pods int) float64 {
	app, nd := c.w.Sim.App, c.w.Sim.Node
	cpu := float64(nd.SystemCPUm+pods*app.CPURequestm) / float64(n.AllocCPUm)
	mem := float64(nd.SystemMemMiB+pods*app.MemoryRequestMiB) / float64(n.AllocMemMiB)
	return max(cpu, mem)
}

func (c *caLike) podsOn() map[*cluster.Node]int {
	on := map[*cluster.Node]int{}
	for _, p := range c.w.Cluster.Pods() {
		if p.Node != nil && !p.Terminating {
			on[p.Node]++
		}
	}
	return on
}

func (c *caLike) candidates() []*cluster.Node {
	var out []*cluster.Node
	for _, n := range c.w.Cluster.AllNodes() {
		if !n.ControlPlane && !n.Gone && n.Ready && !n.Unschedulable {
			out = append(out, n)
		}
	}
	return out
}

// trackUnneeded updates when each Ready worker went under the threshold.
func (c *caLike) trackUnneeded(now time.Time) {
	on := c.podsOn()
	seen := map[string]bool{}
	for _, n := range c.candidates() {
		seen[n.Name] = true
		if c.requested(n, on[n]) < c.cfg.UtilizationThreshold {
			if _, ok := c.under[n.Name]; !ok {
				c.under[n.Name] = now
			}
		} else {
			delete(c.under, n.Name)
		}
	}
	for name := range c.under {
		if !seen[name] {
			delete(c.under, name)
		}
	}
}

// unneeded picks the removable node: under the threshold for UnneededTime, its pods fit in
// the free request room of the other Ready workers; lowest share first, then by name.
func (c *caLike) unneeded(now time.Time) (*cluster.Node, float64, bool) {
	on := c.podsOn()
	cands := c.candidates()
	free := 0
	for _, n := range cands {
		free += max(0, c.perNode-on[n])
	}
	type cand struct {
		n     *cluster.Node
		share float64
	}
	var ok []cand
	for _, n := range cands {
		since, under := c.under[n.Name]
		if !under || now.Sub(since) < c.cfg.UnneededTime {
			continue
		}
		if free-max(0, c.perNode-on[n]) < on[n] {
			continue // its pods would not fit elsewhere
		}
		ok = append(ok, cand{n, c.requested(n, on[n])})
	}
	if len(ok) == 0 {
		return nil, 0, false
	}
	slices.SortFunc(ok, func(a, b cand) int {
		if a.share != b.share {
			if a.share < b.share {
				return -1
			}
			return 1
		}
		if a.n.Name < b.n.Name {
			return -1
		}
		return 1
	})
	return ok[0].n, ok[0].share, true
}

func (c *caLike) launch(ctx context.Context, now time.Time, rec *engine.Record) error {
	d := rec.Decision
	c.seq++
	op := fmt.Sprintf("ca-op-%d", c.seq)
	off := world.Offerings[c.seq%len(world.Offerings)]
	insts, err := c.w.Cloud.Launch(ctx, engine.LaunchRequest{Token: op, OperationID: op, Count: d.Delta, Offering: off})
	a := engine.Act{Kind: "launch", Operation: op, Count: d.Delta, Offering: off.Key(), Result: "ok"}
	if err != nil {
		a.Result, a.Error, a.ErrorKind = "failed", err.Error(), string(engine.KindOf(err))
		rec.Acted = append(rec.Acted, a)
		ev := engine.Event{Kind: engine.EventFailure, Time: now.UTC(), Message: "Scale-up failed: " + err.Error(), Decision: d, Error: err.Error()}
		rec.Events = append(rec.Events, ev)
		return c.w.Notify(ctx, ev)
	}
	for _, in := range insts {
		a.Instances = append(a.Instances, in.ID)
	}
	rec.Acted = append(rec.Acted, a)
	c.lastUp = now
	total := look(c.w).active
	ev := engine.Event{Kind: engine.EventScaleUp, Time: now.UTC(), Decision: d,
		Message: fmt.Sprintf("Added %d %s (%s) → Total: %d nodes", len(insts), plural(len(insts), "node"), d.Reason, total)}
	rec.Events = append(rec.Events, ev)
	return c.w.Notify(ctx, ev)
}

// continueDrain drives the drain: one Drain call per tick; when done, terminate and delete;
// past the policy's DrainTimeout, uncordon and give up.
func (c *caLike) continueDrain(ctx context.Context, now time.Time, rec *engine.Record) {
	dr := c.drain
	ds, err := c.w.Cluster.Drain(ctx, dr.node)
	a := engine.Act{Kind: "drain", Node: dr.node, Count: ds.Remaining, Result: "in_progress"}
	switch {
	case err != nil:
		a.Result, a.Error = "failed", err.Error()
	case ds.Done:
		a.Result = "ok"
	case ds.Blocked > 0:
		a.Error = fmt.Sprintf("%d evictions refused by a PodDisruptionBudget", ds.Blocked)
	}
	rec.Acted = append(rec.Acted, a)
	dec := engine.Decision{Action: engine.ActionScaleDown, Delta: -1, Node: dr.node, Instance: dr.instance, Reason: dr.reason}
	switch {
	case err == nil && ds.Done:
		if err := c.w.Cloud.Terminate(ctx, []string{dr.instance}); err != nil && !engine.IsNotFound(err) {
			rec.Acted = append(rec.Acted, engine.Act{Kind: "terminate", Instances: []string{dr.instance}, Node: dr.node, Result: "failed", Error: err.Error()})
			return // retried next tick
		}
		rec.Acted = append(rec.Acted, engine.Act{Kind: "terminate", Instances: []string{dr.instance}, Node: dr.node, Result: "ok"})
		if err := c.w.Cluster.Delete(ctx, dr.node); err != nil && !engine.IsNotFound(err) {
			rec.Acted = append(rec.Acted, engine.Act{Kind: "delete_node", Node: dr.node, Result: "failed", Error: err.Error()})
		}
		c.drain = nil
		ev := engine.Event{Kind: engine.EventScaleDown, Time: now.UTC(), Decision: dec,
			Message: fmt.Sprintf("Removed 1 node (%s) → Total: %d nodes", dr.reason, look(c.w).active)}
		rec.Events = append(rec.Events, ev)
		_ = c.w.Notify(ctx, ev)
	case err != nil || now.Sub(dr.started) >= c.p.DrainTimeout:
		why := fmt.Sprintf("drain not finished after %v (%d pods left)", now.Sub(dr.started), ds.Remaining)
		if err != nil {
			why = "drain failed: " + err.Error()
		}
		_ = c.w.Cluster.Uncordon(ctx, dr.node)
		rec.Acted = append(rec.Acted, engine.Act{Kind: "uncordon", Node: dr.node, Result: "ok", Error: why})
		c.drain = nil
		ev := engine.Event{Kind: engine.EventFailure, Time: now.UTC(), Decision: dec, Message: "Scale-down of " + dr.node + " abandoned: " + why, Error: why}
		rec.Events = append(rec.Events, ev)
		_ = c.w.Notify(ctx, ev)
	}
}
