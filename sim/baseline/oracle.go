package baseline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/event"
	"github.com/smartscale/smartscale/sim/world"
)

// Plan is the clairvoyant oracle's schedule, computed from the scenario alone (never from a
// run): which workers to launch and release, and when.
//
// Need. The world applies load in 15 s steps: the step ending at T serves the scenario's
// rate at T-7.5 s (plus noise the oracle does not know). The oracle needs
// clamp(cluster.DemandNodes(RateAt(T-7.5s)), MinWorkers, MaxWorkers) workers Ready from the
// start of that step, T-15 s, which also leaves a step for the pods to start on them.
//
// Nodes. The need is split into layers: node k serves the times when at least k workers are
// needed. With identical workers, nested layers are the cheapest assignment, since a higher
// layer's idle gaps contain the lower layers'. Within a layer, each stretch of need is served
// by a node launched Lead before it starts; consecutive stretches share one node when keeping
// it idle through the gap costs no more than releasing it and launching another, priced with
// EC2's billing (running to terminated, 60 s minimum, the shutdown time billed, the boot
// not billed) at the scenario's median boot time. An exact dynamic programme over each
// layer's stretches picks the merges. Nodes a run needs before their launch time could fall
// (launch at or before 0, or before the first tick for the tick-grid variant) make up the
// initial fleet, running at the start like the other policies' initial workers.
//
// Latency. Lead is the scenario's p90 boot + p90 join + ready delay, not their medians: the
// world draws each node's latencies (log-normal), so a median lead would leave about half the
// nodes late. Launching at the p90s makes the floor robust to the draws for a few cents of
// idle Ready time; its node-seconds still count.
//
// Snap. The tick-grid variant launches at the last autoscaler tick at or before the launch
// time and releases at the first tick at or after the release time, then merges the same way.
type Plan struct {
	Snap    bool
	Lead    time.Duration
	End     time.Duration // the scenario's length
	Initial int           // nodes running from the start
	Nodes   []PlannedNode // initial nodes first, then by launch time
	// BilledSeconds is the plan's worker billed time at the median boot time.
	BilledSeconds float64
}

// PlannedNode is one worker of the plan. Offsets are from the start of the run.
type PlannedNode struct {
	Launch  time.Duration // 0 for the initial fleet
	Ready   time.Duration // when it is first needed
	Release time.Duration // >= End: kept to the end
	Initial bool
	Layer   int // 1-based: the node serves the times when at least Layer workers are needed
}

const stepLen = world.ScrapeInterval

// Need returns the oracle's need per 15 s load step: need[k] workers for the step that ends
// at (k+1)*15 s.
func Need(sc scenarios.Scenario, p engine.Policy) []int {
	steps := int(sc.Duration() / stepLen)
	need := make([]int, steps)
	for k := range need {
		end := time.Duration(k+1) * stepLen
		n := cluster.DemandNodes(sc.Sim, sc.RateAt(end-stepLen/2))
		need[k] = min(max(n, p.MinWorkers), p.MaxWorkers)
	}
	return need
}

// NewPlan computes the oracle's plan for a scenario under the policy's bounds.
func NewPlan(sc scenarios.Scenario, p engine.Policy, snap bool) Plan {
	cl := sc.Sim.Cloud
	pl := Plan{Snap: snap, End: sc.Duration(),
		Lead: event.Seconds(cl.BootP90S + cl.JoinP90S + cl.ReadyDelayS)}
	boot := event.Seconds(cl.BootMedianS)
	shutdown := event.Seconds(cl.ShutdownS)
	need := Need(sc, p)
	top := 0
	for _, n := range need {
		top = max(top, n)
	}
	firstTick := world.TickOffset + world.TickInterval
	launchAt := func(ready time.Duration) (time.Duration, bool) {
		l := ready - pl.Lead
		if snap {
			if l < firstTick {
				return 0, true
			}
			k := (l - world.TickOffset) / world.TickInterval
			return world.TickOffset + k*world.TickInterval, false
		}
		if l <= 0 {
			return 0, true
		}
		return l, false
	}
	releaseAt := func(free time.Duration) time.Duration {
		if free >= pl.End {
			return pl.End
		}
		if snap {
			k := (free - world.TickOffset + world.TickInterval - 1) / world.TickInterval
			return min(pl.End, world.TickOffset+k*world.TickInterval)
		}
		return free
	}
	// billed is a node's billed seconds, launched at l (initial: running from 0) and
	// released at r.
	billed := func(l time.Duration, initial bool, r time.Duration) float64 {
		run := l + boot
		if initial {
			run = 0
		}
		if r >= pl.End {
			return max(0, (pl.End - run).Seconds())
		}
		return max(60, (r + shutdown - run).Seconds())
	}
	for layer := 1; layer <= top; layer++ {
		// the layer's stretches of need: [ready, free)
		type stretch struct{ ready, free time.Duration }
		var st []stretch
		for k := 0; k < len(need); k++ {
			if need[k] < layer {
				continue
			}
			j := k
			for j+1 < len(need) && need[j+1] >= layer {
				j++
			}
			// Ready from the start of step k; free after step j has run (1 s later, so the
			// release never lands before that step's load event at the same instant).
			free := time.Duration(j+1)*stepLen + time.Second
			st = append(st, stretch{time.Duration(k) * stepLen, free})
			k = j
		}
		// best[j]: cheapest cover of stretches [0, j); from[j]: start of its last block.
		m := len(st)
		best := make([]float64, m+1)
		from := make([]int, m+1)
		for j := 1; j <= m; j++ {
			best[j] = -1
			for i := j - 1; i >= 0; i-- {
				l, initial := launchAt(st[i].ready)
				r := releaseAt(st[j-1].free)
				if i > 0 && !initial {
					// the previous block's node must be gone before this one starts
					if prev := releaseAt(st[i-1].free); prev > l {
						continue
					}
				}
				if i > 0 && initial {
					continue // an initial node cannot follow another node of its layer
				}
				c := best[i] + billed(l, initial, r)
				if best[j] < 0 || c < best[j] {
					best[j], from[j] = c, i
				}
			}
		}
		pl.BilledSeconds += best[m]
		for j := m; j > 0; j = from[j] {
			i := from[j]
			l, initial := launchAt(st[i].ready)
			pl.Nodes = append(pl.Nodes, PlannedNode{Launch: l, Ready: st[i].ready, Release: releaseAt(st[j-1].free),
				Initial: initial, Layer: layer})
			if initial {
				pl.Initial++
			}
		}
	}
	slices.SortStableFunc(pl.Nodes, func(a, b PlannedNode) int {
		switch {
		case a.Initial != b.Initial:
			if a.Initial {
				return -1
			}
			return 1
		case a.Launch != b.Launch:
			return int(a.Launch - b.Launch)
		case a.Layer != b.Layer:
			return a.Layer - b.Layer
		}
		return 0
	})
	return pl
}

// OracleFactory returns the factory of the oracle (snap: its tick-grid variant). The world
// must start with the plan's initial fleet (Config.InitialWorkers = Plan.Initial, as
// Baseline.Config sets). The exact oracle acts at the plan's instants through the world's
// event loop; the tick-grid one acts in its ticks. Each tick's record lists what it did
// since the previous tick.
func OracleFactory(snap bool) world.Factory {
	return func(w *world.World) (world.Autoscaler, error) {
		pl := NewPlan(w.Cfg.Scenario, w.Cfg.Policy, snap)
		o := &oracle{w: w, plan: pl, ids: make([]string, len(pl.Nodes))}
		var initial []string
		for _, in := range w.Cloud.All() {
			if in.Managed && in.State == engine.InstanceRunning {
				initial = append(initial, in.ID)
			}
		}
		if len(initial) != pl.Initial {
			return nil, fmt.Errorf("oracle: the world started with %d workers, the plan with %d (set Config.InitialWorkers)", len(initial), pl.Initial)
		}
		for i := range pl.Initial {
			o.ids[i] = initial[i]
		}
		if !snap {
			o.schedule()
		}
		return o, nil
	}
}

type oracle struct {
	w    *world.World
	plan Plan
	ids  []string // instance of each planned node
	seq  int
	// since the last tick
	acts            []engine.Act
	events          []engine.Event
	launched, freed int
	reasons         []string
	launchedThrough int // plan.Nodes[:launchedThrough] are launched (snap)
	released        map[int]bool
	joined          map[int]bool
	// Late counts the planned nodes that became Ready after the plan needed them; MaxLate
	// is the longest such delay (the drawn latencies beat the p90 lead).
	Late    int
	MaxLate time.Duration
}

// schedule puts the exact oracle's actions on the event loop.
func (o *oracle) schedule() {
	nodes := o.plan.Nodes
	for i := o.plan.Initial; i < len(nodes); {
		j := i
		for j < len(nodes) && nodes[j].Launch == nodes[i].Launch {
			j++
		}
		lo, hi := i, j
		o.w.Loop.At(world.Epoch.Add(nodes[i].Launch), func() { o.launch(lo, hi) })
		i = j
	}
	for i, n := range nodes {
		if n.Release < o.plan.End {
			o.w.Loop.At(world.Epoch.Add(n.Release), func() { o.release(i) })
		}
	}
}

func (o *oracle) launch(lo, hi int) {
	ctx := context.Background()
	now := o.w.Loop.Now()
	o.seq++
	op := fmt.Sprintf("oracle-op-%d", o.seq)
	off := world.Offerings[o.seq%len(world.Offerings)]
	n := hi - lo
	before := look(o.w).active
	insts, err := o.w.Cloud.Launch(ctx, engine.LaunchRequest{Token: op, OperationID: op, Count: n, Offering: off})
	a := engine.Act{Kind: "launch", Operation: op, Count: n, Offering: off.Key(), Result: "ok"}
	reason := fmt.Sprintf("%d more %s needed from %s", n, plural(n, "worker"), world.Epoch.Add(o.plan.Nodes[lo].Ready).Format("15:04:05"))
	d := engine.Decision{Action: engine.ActionScaleUp, Delta: n, Reason: "clairvoyant plan: " + reason, Workers: before, Target: before + n}
	if err != nil {
		a.Result, a.Error, a.ErrorKind = "failed", err.Error(), string(engine.KindOf(err))
		o.acts = append(o.acts, a)
		ev := engine.Event{Kind: engine.EventFailure, Time: now.UTC(), Message: "Scale-up failed: " + err.Error(), Decision: d, Error: err.Error()}
		o.events = append(o.events, ev)
		_ = o.w.Notify(ctx, ev)
		return
	}
	for k, in := range insts {
		o.ids[lo+k] = in.ID
		a.Instances = append(a.Instances, in.ID)
	}
	o.acts = append(o.acts, a)
	o.launched += n
	o.reasons = append(o.reasons, reason)
	ev := engine.Event{Kind: engine.EventScaleUp, Time: now.UTC(), Decision: d,
		Message: fmt.Sprintf("Added %d %s (clairvoyant plan) → Total: %d nodes", n, plural(n, "node"), before+n)}
	o.events = append(o.events, ev)
	_ = o.w.Notify(ctx, ev)
}

// release removes a planned node at once: cordon, delete the node object (its pods are
// recreated elsewhere or stay Pending), terminate the instance.
func (o *oracle) release(i int) {
	ctx := context.Background()
	now := o.w.Loop.Now()
	id := o.ids[i]
	if id == "" {
		return // its launch failed
	}
	before := look(o.w).active
	name := ""
	if n := o.w.Cluster.NodeByInstance(id); n != nil {
		name = n.Name
		_ = o.w.Cluster.Cordon(ctx, name)
		if err := o.w.Cluster.Delete(ctx, name); err != nil && !engine.IsNotFound(err) {
			o.acts = append(o.acts, engine.Act{Kind: "delete_node", Node: name, Result: "failed", Error: err.Error()})
		}
	}
	reason := fmt.Sprintf("idle until its next need costs more than a relaunch (layer %d)", o.plan.Nodes[i].Layer)
	d := engine.Decision{Action: engine.ActionScaleDown, Delta: -1, Node: name, Instance: id,
		Reason: "clairvoyant plan: " + reason, Workers: before, Target: before - 1}
	a := engine.Act{Kind: "terminate", Instances: []string{id}, Node: name, Result: "ok"}
	if err := o.w.Cloud.Terminate(ctx, []string{id}); err != nil && !engine.IsNotFound(err) {
		a.Result, a.Error = "failed", err.Error()
		o.acts = append(o.acts, a)
		return
	}
	o.acts = append(o.acts, a)
	o.freed++
	o.reasons = append(o.reasons, "release "+name+": "+reason)
	ev := engine.Event{Kind: engine.EventScaleDown, Time: now.UTC(), Decision: d,
		Message: fmt.Sprintf("Removed 1 node (clairvoyant plan) → Total: %d nodes", before-1)}
	o.events = append(o.events, ev)
	_ = o.w.Notify(ctx, ev)
}

// checkJoins records, once per launched node, when it became Ready against when the plan
// needed it.
func (o *oracle) checkJoins() {
	if o.joined == nil {
		o.joined = map[int]bool{}
	}
	ready := event.Seconds(o.w.Sim.Cloud.ReadyDelayS)
	for i := o.plan.Initial; i < len(o.plan.Nodes); i++ {
		id := o.ids[i]
		if id == "" || o.joined[i] {
			continue
		}
		n := o.w.Cluster.NodeByInstance(id)
		if n == nil || !n.Ready {
			continue
		}
		o.joined[i] = true
		in, _ := o.w.Cloud.Get(id)
		readyAt := n.Created.Add(ready)
		a := engine.Act{Kind: "joined", Instances: []string{id}, Node: n.Name, Result: "ok",
			JoinSeconds: readyAt.Sub(in.LaunchedAt).Seconds()}
		if late := readyAt.Sub(world.Epoch.Add(o.plan.Nodes[i].Ready)); late > 0 {
			o.Late++
			o.MaxLate = max(o.MaxLate, late)
			a.Error = fmt.Sprintf("Ready %v after the plan needed it", late)
		}
		o.acts = append(o.acts, a)
	}
}

// Lateness reports the late nodes of an oracle autoscaler (ok false for other autoscalers).
func Lateness(a world.Autoscaler) (late int, maxLate time.Duration, ok bool) {
	if o, is := a.(*oracle); is {
		return o.Late, o.MaxLate, true
	}
	return 0, 0, false
}

func (o *oracle) Tick(_ context.Context, now time.Time) (engine.Record, error) {
	o.checkJoins()
	if o.plan.Snap {
		off := now.Sub(world.Epoch)
		if o.released == nil {
			o.released = map[int]bool{}
			o.launchedThrough = o.plan.Initial
		}
		for i, n := range o.plan.Nodes {
			if n.Release <= off && n.Release < o.plan.End && !o.released[i] && i < o.launchedThrough {
				o.released[i] = true
				o.release(i)
			}
		}
		nodes := o.plan.Nodes
		for i := o.launchedThrough; i < len(nodes) && nodes[i].Launch <= off; {
			j := i
			for j < len(nodes) && nodes[j].Launch == nodes[i].Launch {
				j++
			}
			o.launch(i, j)
			i, o.launchedThrough = j, j
		}
	}
	f := look(o.w)
	rec := record(now, f)
	d := &rec.Decision
	rec.Acted = append(rec.Acted, o.acts...)
	rec.Events = o.events
	d.Delta = o.launched - o.freed
	switch {
	case o.launched > 0:
		d.Action = engine.ActionScaleUp
	case o.freed > 0:
		d.Action = engine.ActionScaleDown
	}
	d.Workers = f.active - d.Delta
	d.Target = f.active
	if len(o.reasons) > 0 {
		d.Reason = "clairvoyant plan: " + joinReasons(o.reasons)
	} else {
		d.Reason = fmt.Sprintf("clairvoyant plan: %d workers cover the need", f.active)
	}
	o.acts, o.events, o.launched, o.freed, o.reasons = nil, nil, 0, 0, nil
	return rec, nil
}

func joinReasons(rs []string) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += "; "
		}
		out += r
	}
	return out
}
