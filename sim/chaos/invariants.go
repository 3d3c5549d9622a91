package chaos

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/world"
)

// Invariants, as numbered in issue 5 and docs/chaos.md.
var Invariants = []string{
	1:  "at most one invocation acts at a time; every state write carries the newest fence",
	2:  "after any crash the lock can be acquired again within one lease plus one tick",
	3:  "managed workers stay within [min, max] except while a fault makes that impossible, and return afterwards",
	4:  "instances per operation never exceed what it asked for",
	5:  "no scale-down on a tick whose metrics were missing, empty, NaN/Inf, stale, partial or errored",
	6:  "at most scale_down_max_step (brief: one) nodes drain at a time; one is removed per operation",
	7:  "only managed workers are terminated, never the master",
	8:  "no PodDisruptionBudget is violated; no node is terminated after a failed drain",
	9:  "every operation ends within a bounded number of ticks; no instance stays unregistered past the timeout",
	10: "no scale action inside its cooldown",
	11: "a failing offering is not retried before its backoff expires",
	12: "notification failures never change decisions",
	13: "running the same tick twice changes nothing the second time",
	14: "the same seed and fault schedule give the same outputs",
	15: "no worker stays cordoned for longer than a tick without an operation that owns it",
	// the spot invariants (spot_invariants.go)
	16: "the on-demand base is never short for longer than one launch",
	17: "no orphaned instances or spot requests: every open spot request has a live instance and every live spot instance its request",
	18: "no node is drained twice, and no two open operations own the same node",
	19: "min workers are Ready again within one tick plus a boot of falling short",
}

// Kinds that make holding the worker bounds impossible for a while (launches or the lock
// are blocked), and the kinds that delay the sweep of unregistered instances.
var (
	lowKinds   = []string{EC2Capacity, EC2Quota, EC2Throttle, EC2Unsupported, InvokeKill, InvokePause, LockHeld, StoreThrottle, StoreLostResponse}
	highKinds  = []string{EC2DescribeLag, EC2LaunchThenFail}
	sweepKinds = []string{InvokeKill, InvokePause, LockHeld, StoreThrottle, StoreLostResponse, EC2Throttle, EC2DescribeLag}
)

type violation struct {
	at   time.Time
	inv  int
	text string
}

// termination is a node's termination by its operation, at a time.
type termination struct {
	at       time.Time
	op, node string
}

// checker holds what the invariants need to remember between events.
type checker struct {
	h    *Harness
	v    []violation
	once map[string]bool

	maxFence int64
	dead     map[string]time.Time // holder -> when it died holding the lock
	backoff  map[string]time.Time // persisted backoff per offering
	asked    map[string]int       // operation -> workers asked for
	lastUp   time.Time            // last successful launch
	lastDown time.Time            // last scale-down started
	opTicks  map[string]int
	drained  map[string]bool
	aborted  map[string]bool
	// undrained are terminations seen while an invocation was paused, before its record
	// came: its drain may be in that record (checked once every record is in)
	undrained []termination
	removed   map[string]map[string]bool

	lowSince, highSince   time.Time
	lowExcuse, highExcuse time.Time
	sweepExcuse           time.Time
	cordonedSince         time.Time
	state                 engine.State         // the last accepted state write
	unowned               map[string]time.Time // cordoned worker -> since when no operation owns it
	sp                    spotCheck            // spot_invariants.go
}

func newChecker(h *Harness) *checker {
	return &checker{h: h, once: map[string]bool{}, dead: map[string]time.Time{}, backoff: map[string]time.Time{},
		asked: map[string]int{}, opTicks: map[string]int{}, drained: map[string]bool{}, aborted: map[string]bool{},
		removed: map[string]map[string]bool{}, unowned: map[string]time.Time{}}
}

func (c *checker) now() time.Time { return c.h.w.Loop.Now() }

// engineOn reports whether SmartScale's engine runs (baselines get world faults only).
func (c *checker) engineOn() bool { return c.h.step != nil }

func (c *checker) fail(inv int, format string, a ...any) {
	c.v = append(c.v, violation{at: c.now(), inv: inv, text: fmt.Sprintf(format, a...)})
}

// failOnce reports a violation once per key.
func (c *checker) failOnce(key string, inv int, format string, a ...any) {
	if c.once[key] {
		return
	}
	c.once[key] = true
	c.fail(inv, format, a...)
}

func (c *checker) list() []string {
	for _, u := range c.undrained {
		if !c.drained[u.op] {
			c.v = append(c.v, violation{at: u.at, inv: 8, text: fmt.Sprintf("node %s terminated before its drain finished (%s)", u.node, u.op)})
		}
	}
	c.undrained = nil
	sort.SliceStable(c.v, func(i, j int) bool { return c.v[i].at.Before(c.v[j].at) })
	out := make([]string, 0, len(c.v))
	for _, v := range c.v {
		out = append(out, fmt.Sprintf("inv %d at %s: %s", v.inv, shortDur(v.at.Sub(world.Epoch)), v.text))
	}
	return out
}

func (c *checker) policy() engine.Policy { return c.h.pol }

func (c *checker) capBackoff() time.Duration {
	if s := c.h.step; s != nil && s.CapacityBackoff > 0 {
		return s.CapacityBackoff
	}
	return 5 * time.Minute
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// --- after every 15 s step: bounds, drains, unregistered instances --------------------

func (c *checker) afterStep() {
	if !c.engineOn() {
		return
	}
	now, p, w := c.now(), c.policy(), c.h.w
	lease, tick := c.h.lease(), world.TickInterval
	if c.h.anyActive(lowKinds...) {
		c.lowExcuse = later(c.lowExcuse, now.Add(lease+c.capBackoff()+tick+30*time.Second))
	}
	if c.allBackingOff(now) {
		// every offering failed (capacity, unsupported) and backs off: no launch is possible
		c.lowExcuse = later(c.lowExcuse, now.Add(tick+30*time.Second))
	}
	if c.h.anyActive(highKinds...) {
		c.highExcuse = later(c.highExcuse, now.Add(lease+tick+30*time.Second))
	}
	if c.h.anyActive(sweepKinds...) {
		c.sweepExcuse = later(c.sweepExcuse, now.Add(lease+2*tick+30*time.Second))
	}

	c.afterStepSpot()
	// 3: bounds
	n := w.Workers()
	if n < p.MinWorkers {
		if c.lowSince.IsZero() {
			c.lowSince = now
		}
		if deadline := later(c.lowSince.Add(tick+30*time.Second), c.lowExcuse); now.After(deadline) {
			c.failOnce(fmt.Sprintf("low@%d", c.lowSince.Unix()), 3, "%d managed workers, below min %d since %s and no fault explains it",
				n, p.MinWorkers, shortDur(c.lowSince.Sub(world.Epoch)))
		}
	} else {
		c.lowSince = time.Time{}
	}
	if n -= c.warnedLive(); n > p.MaxWorkers { // a warned instance leaves within its notice
		if c.highSince.IsZero() {
			c.highSince = now
		}
		deadline := c.highSince
		if !c.highSince.After(c.highExcuse) {
			// a fault hid instances: the excess must be gone in time afterwards
			per := p.ScaleDownCooldown + p.DrainTimeout + tick
			deadline = c.highExcuse.Add(time.Duration(n-p.MaxWorkers)*per + p.ScaleUpCooldown + tick)
		}
		if !now.Before(deadline) {
			c.failOnce(fmt.Sprintf("high@%d", c.highSince.Unix()), 3, "%d managed workers, above max %d since %s",
				n, p.MaxWorkers, shortDur(c.highSince.Sub(world.Epoch)))
		}
	} else {
		c.highSince = time.Time{}
	}

	// 6: at most one node drains at a time
	var cordoned, scaledDown []string
	cloudAsked := c.cloudAsked() // interrupted and at-risk nodes drain as the cloud demands
	for _, nd := range w.Cluster.AllNodes() {
		if !nd.ControlPlane && !nd.Gone && nd.Unschedulable {
			cordoned = append(cordoned, nd.Name)
			if !cloudAsked[nd.Name] {
				scaledDown = append(scaledDown, nd.Name)
			}
		}
	}
	if limit := max(1, p.ScaleDownMaxStep); len(scaledDown) > limit {
		c.failOnce(fmt.Sprintf("cordoned@%v", scaledDown), 6, "%d nodes cordoned at once (scale_down_max_step %d): %v", len(scaledDown), limit, scaledDown)
	}

	// 15: a cordoned worker belongs to an operation (it is drained, terminated or given back)
	owned := map[string]bool{}
	for _, op := range c.state.Open() {
		if op.Kind == engine.OpScaleDown {
			owned[op.Node] = true
		}
	}
	for name := range c.unowned {
		if !slices.Contains(cordoned, name) || owned[name] {
			delete(c.unowned, name)
		}
	}
	for _, name := range cordoned {
		if owned[name] {
			continue
		}
		since, ok := c.unowned[name]
		if !ok {
			c.unowned[name] = now
			continue
		}
		if now.Sub(since) > tick+30*time.Second {
			c.failOnce("unowned@"+name+"@"+fmt.Sprint(since.Unix()), 15, "node %s cordoned since %s and no operation owns it: drained of nothing, billed, never removed or given back",
				name, shortDur(since.Sub(world.Epoch)))
		}
	}

	// 9: no instance stays unregistered past the timeout
	limit := p.NodeReadyTimeout + tick + 30*time.Second
	for _, in := range w.Cloud.All() {
		if !in.Managed || (in.State != engine.InstancePending && in.State != engine.InstanceRunning) {
			continue
		}
		if w.Cluster.NodeByInstance(in.ID) != nil {
			continue
		}
		if age := now.Sub(in.LaunchedAt); age > limit && now.After(c.sweepExcuse) {
			c.failOnce("unregistered@"+in.ID, 9, "instance %s (%s) has had no node for %s (node-ready timeout %s): orphaned and billed",
				in.ID, in.State, age.Round(time.Second), p.NodeReadyTimeout)
		}
	}
}

// allBackingOff reports whether the stored state backs off every offering at now.
func (c *checker) allBackingOff(now time.Time) bool {
	offs := world.Offerings
	if s := c.h.step; s != nil && len(s.Offerings) > 0 {
		offs = s.Offerings
	}
	for _, o := range offs {
		if until, ok := c.backoff[o.Key()]; !ok || !now.Before(until) {
			return false
		}
	}
	return true
}

// disturbed notes a loss of capacity the autoscaler did not ask for (or a timeout
// termination): being below min is excused until the next tick has had its chance.
func (c *checker) disturbed() {
	c.lowExcuse = later(c.lowExcuse, c.now().Add(world.TickInterval+30*time.Second))
}

// --- the lock and the store ----------------------------------------------------------

// died notes an invocation that leaves the lock held with no one alive behind it.
func (c *checker) died(inv *invocation, why string) {
	if inv.holder != "" {
		c.dead[inv.holder] = c.now()
	}
}

func (c *checker) onWrite(l engine.Lease, st engine.State) {
	if l.Fence < c.maxFence {
		c.fail(1, "state written by %s with fence %d after fence %d was granted", l.Holder, l.Fence, c.maxFence)
	}
	c.maxFence = max(c.maxFence, l.Fence)
	if hd, f, _ := c.h.w.State.Holder(); l.Fence != f || l.Holder != hd {
		c.fail(1, "state written by %s (fence %d) while %s holds fence %d", l.Holder, l.Fence, hd, f)
	}
	// a copy: the engine goes on changing its state (slices.DeleteFunc clears the dropped
	// operations' slots in the backing array this write shares)
	c.state = st.Clone()
	c.backoff = map[string]time.Time{}
	for k, v := range st.Backoff {
		c.backoff[k] = v
	}
	if op := st.Operation; op != nil && op.Kind == engine.OpScaleDown && op.Phase == engine.PhaseTerminating {
		c.drained[op.ID] = true
	}
	for _, op := range st.Open() { // a planned scale-up launches its parts one call each
		if op.Kind == engine.OpScaleUp {
			c.asked[op.ID] = max(c.asked[op.ID], op.Count)
		}
	}
	c.onWriteSpot(st)
}

// stale reports whether a side effect by inv comes from a lease that is no longer the
// newest (a newer invocation took the lock over).
func (c *checker) stale(inv *invocation) (bool, string) {
	if inv == nil || c.h.step == nil || c.h.step.DryRun {
		return false, ""
	}
	hd, f, _ := c.h.w.State.Holder()
	if !inv.acquired || inv.lease.Fence != f {
		return true, fmt.Sprintf("%s (fence %d) while %s holds fence %d", inv.holder, inv.lease.Fence, hd, f)
	}
	return false, ""
}

func (c *checker) nodeEffect(inv *invocation, what, node string) {
	if bad, who := c.stale(inv); bad {
		c.fail(1, "%s of %s by %s", what, node, who)
	}
	for _, n := range c.h.w.Cluster.AllNodes() {
		if n.Name == node && n.ControlPlane {
			c.fail(7, "%s of the control-plane node %s", what, node)
		}
	}
}

// --- EC2 -----------------------------------------------------------------------------

func (c *checker) beforeLaunch(inv *invocation, req engine.LaunchRequest) {
	c.asked[req.OperationID] = max(c.asked[req.OperationID], req.Count)
	if until, ok := c.backoff[req.Offering.Key()]; ok && c.now().Before(until) {
		c.fail(11, "launch of %s on %s (token %s) while it backs off until %s", req.OperationID, req.Offering.Key(),
			req.Token, shortDur(until.Sub(world.Epoch)))
	}
}

func (c *checker) afterLaunch(inv *invocation, req engine.LaunchRequest, created bool) {
	if created {
		if bad, who := c.stale(inv); bad {
			c.fail(1, "launch of new instances for %s (token %s) by %s", req.OperationID, req.Token, who)
		}
	}
	n := 0
	for _, in := range c.h.w.Cloud.All() {
		if in.OperationID == req.OperationID && req.OperationID != "" {
			n++
		}
	}
	if n > c.asked[req.OperationID] {
		c.failOnce("asked@"+req.OperationID, 4, "operation %s has %d instances, asked for %d", req.OperationID, n, c.asked[req.OperationID])
	}
}

// beforeTerminate checks a termination and returns the pods on each instance's node.
func (c *checker) beforeTerminate(inv *invocation, ids []string) map[string]int {
	if bad, who := c.stale(inv); bad {
		c.fail(1, "terminate of %v by %s", ids, who)
	}
	pods := map[string]int{}
	for _, id := range ids {
		if in, ok := c.h.w.Cloud.Get(id); ok && !in.Managed {
			c.fail(7, "terminate of unmanaged instance %s", id)
		}
		nd := c.h.w.Cluster.NodeByInstance(id)
		if nd == nil || nd.Gone {
			continue
		}
		if nd.ControlPlane {
			c.fail(7, "terminate of the control plane's instance %s", id)
		}
		for _, p := range c.h.w.Cluster.Pods() {
			if p.Node == nd {
				pods[id]++
			}
		}
	}
	return pods
}

func (c *checker) afterTerminate(ids []string, pods map[string]int) {
	for _, id := range ids {
		if n := pods[id]; n > 0 {
			c.fail(8, "instance %s terminated with %d pods still on its node (no eviction, PodDisruptionBudget bypassed)", id, n)
		}
	}
	c.disturbed()
}

// checkEviction runs before every eviction the simulated cluster lets through.
func (c *checker) checkEviction(p *cluster.Pod) {
	if !p.Ready || p.Terminating {
		return
	}
	healthy := 0
	for _, q := range c.h.w.Cluster.Pods() {
		if q.Ready && !q.Terminating {
			healthy++
		}
	}
	minAvail := c.h.w.Cluster.Replicas() - c.h.w.Sim.App.PDBMaxUnavailable
	if healthy-1 < minAvail {
		c.fail(8, "eviction of %s leaves %d healthy pods, the PodDisruptionBudget wants %d", p.Name, healthy-1, minAvail)
	}
}

// --- every invocation's record -------------------------------------------------------

func (c *checker) record(inv *invocation, rec engine.Record, err error) {
	if !c.engineOn() {
		return
	}
	iv := Invocation{ID: inv.id, Role: inv.role, Zombie: inv.zombie, Record: rec}
	if err != nil {
		iv.Error = err.Error()
	}
	c.h.invocations = append(c.h.invocations, iv)
	p := c.policy()
	// 2: a lock left by a dead invocation is free within one lease plus one tick
	if inv.role == "tick" && rec.Lock == engine.LockHeld && !c.h.anyActive(LockHeld) {
		hd, _, exp := c.h.w.State.Holder()
		if !rec.Time.Before(exp) {
			c.fail(2, "lock reported held at %s but %s's lease expired at %s", rec.Time.Format(time.TimeOnly), hd, exp.Format(time.TimeOnly))
		}
		if t, ok := c.dead[hd]; ok && !rec.Time.Before(t.Add(c.h.lease()+world.TickInterval)) {
			c.fail(2, "lock still held by %s, dead since %s, more than a lease plus a tick later", hd, shortDur(t.Sub(world.Epoch)))
		}
	}
	// 5: no scale-down on faulty metrics
	if rec.Decision.Action == engine.ActionScaleDown && (inv.promFaulted || len(rec.Observation.Invalid) > 0) {
		c.fail(5, "scale-down of %s decided on faulty metrics (invalid: %v)", rec.Decision.Node, rec.Observation.Invalid)
	}
	open := map[string]bool{} // operations that existed when the tick began
	for _, op := range rec.State.Open() {
		open[op.ID] = true
	}
	downChecked := false // a multi-node scale-down cordons several nodes in one tick: one scale-down
	launched := map[string]bool{}
	for _, a := range rec.Acted {
		switch {
		case a.Kind == "launch" && a.Result == "ok":
			if inv.zombie {
				continue
			}
			// a planned scale-up launches its parts one call each: the first is the scale-up
			first := !launched[a.Operation]
			launched[a.Operation] = true
			if !open[a.Operation] && first && rec.Decision.Action == engine.ActionScaleUp &&
				!slices.Contains(rec.Decision.Triggers, engine.TriggerBelowMin) &&
				!slices.Contains(rec.Decision.Triggers, engine.TriggerOnDemandBase) &&
				!c.lastUp.IsZero() && rec.Time.Sub(c.lastUp) < p.ScaleUpCooldown {
				c.fail(10, "scale-up %s %s after the last one (cooldown %s)", a.Operation, rec.Time.Sub(c.lastUp), p.ScaleUpCooldown)
			}
			c.lastUp = later(c.lastUp, rec.Time)
		case a.Kind == "cordon" && a.Result == "ok" && !open[a.Operation] && !downChecked:
			if inv.zombie || rec.Notice != nil { // the cloud asked for it: no cooldown applies
				continue
			}
			if inv.zombie {
				continue
			}
			downChecked = true
			if !c.lastUp.IsZero() && rec.Time.Sub(c.lastUp) < p.ScaleUpCooldown {
				c.fail(10, "scale-down %s started %s after a scale-up (cooldown %s)", a.Operation, rec.Time.Sub(c.lastUp), p.ScaleUpCooldown)
			}
			if !c.lastDown.IsZero() && rec.Time.Sub(c.lastDown) < p.ScaleDownCooldown {
				c.fail(10, "scale-down %s started %s after the last one (cooldown %s)", a.Operation, rec.Time.Sub(c.lastDown), p.ScaleDownCooldown)
			}
			c.lastDown = later(c.lastDown, rec.Time)
		case a.Kind == "drain" && a.Result == "ok":
			c.drained[a.Operation] = true
		case a.Kind == "uncordon":
			c.aborted[a.Operation] = true
		case a.Kind == "terminate" && a.Result == "ok" && a.Node != "":
			if c.aborted[a.Operation] {
				c.fail(8, "node %s terminated after its drain failed (%s)", a.Node, a.Operation)
			} else if !c.drained[a.Operation] && c.h.paused != nil {
				c.undrained = append(c.undrained, termination{at: c.now(), op: a.Operation, node: a.Node})
			} else if !c.drained[a.Operation] {
				c.fail(8, "node %s terminated before its drain finished (%s)", a.Node, a.Operation)
			}
			if c.removed[a.Operation] == nil {
				c.removed[a.Operation] = map[string]bool{}
			}
			for _, id := range a.Instances {
				c.removed[a.Operation][id] = true
			}
			if n := len(c.removed[a.Operation]); n > 1 {
				c.failOnce("removed@"+a.Operation, 6, "scale-down %s removed %d instances", a.Operation, n)
			}
		}
	}
	// a resumed (zombie) invocation decided on a stale view: not a clean tick
	clean := inv.role == "tick" && !inv.zombie && rec.Lock == engine.LockAcquired && err == nil && !failed(rec)
	c.recordSpot(inv, rec)
	// 3: a tick that nothing got in the way of leaves at least min workers (launching
	// ones count), and a launch never takes the fleet over max
	if n := c.h.w.Workers(); clean && n < p.MinWorkers {
		c.fail(3, "%d managed workers after a clean tick, below min %d (the engine counted %d registered + %d launching)",
			n, p.MinWorkers, rec.Observation.RegisteredWorkers, rec.Observation.Launching)
	}
	for _, a := range rec.Acted {
		if n := c.h.w.Workers() - c.warnedLive(); a.Kind == "launch" && a.Result == "ok" && n > p.MaxWorkers && !c.now().Before(c.highExcuse) {
			c.fail(3, "%d managed workers after launch %s, above max %d", n, a.Operation, p.MaxWorkers)
		}
	}
	// 9: every operation ends within a bounded number of clean ticks
	if clean {
		bound := int(math.Ceil(float64(max(p.NodeReadyTimeout, p.DrainTimeout))/float64(world.TickInterval))) + 3
		// the cloud's scale-downs: an at-risk node waits for its replacement, then drains
		causeBound := int(math.Ceil(float64(p.NodeReadyTimeout+p.DrainTimeout+engine.InterruptionNotice)/float64(world.TickInterval))) + 3
		caused := map[string]bool{}
		for _, op := range rec.State.Open() {
			caused[op.ID] = op.Cause != ""
		}
		for id := range open {
			c.opTicks[id]++
			if c.opTicks[id] > bound && (!caused[id] || c.opTicks[id] > causeBound) {
				c.failOnce("op@"+id, 9, "operation %s still open after %d ticks (bound %d)", id, c.opTicks[id], bound)
			}
		}
	}
}

// overlap checks an invocation that ran while another held the lock (invariant 1).
func (c *checker) overlap(inv *invocation, rec engine.Record, err error) {
	if !c.engineOn() {
		return
	}
	if rec.Lock == engine.LockAcquired {
		c.fail(1, "overlapping invocation %s acquired the lock while another held it", inv.holder)
	}
	if len(rec.Acted) > 0 {
		c.fail(1, "overlapping invocation %s acted (%s) while another held the lock", inv.holder, rec.Acted[0].Kind)
	}
}

// duplicate checks a tick run a second time at the same instant (invariant 13).
func (c *checker) duplicate(inv *invocation, rec engine.Record, err error, before, after engine.State) {
	if !c.engineOn() || rec.Lock != engine.LockAcquired {
		return
	}
	for _, a := range rec.Acted {
		switch a.Kind {
		case "launch", "terminate", "cordon", "uncordon":
			c.fail(13, "the duplicate of the tick did a %s (%s %s)", a.Kind, a.Operation, a.Result)
		}
	}
	if before.Seq != after.Seq {
		c.fail(13, "the duplicate of the tick started operation %d", after.Seq)
	}
	opKey := func(s engine.State) string {
		if s.Operation == nil {
			return ""
		}
		return s.Operation.ID + "/" + string(s.Operation.Phase)
	}
	// finishing the open operation (its instances turned Ready: "joined") is allowed:
	// it is bookkeeping, no side effect
	if opKey(before) != opKey(after) && after.Operation != nil {
		c.fail(13, "the duplicate of the tick moved the operation from %q to %q", opKey(before), opKey(after))
	}
}
