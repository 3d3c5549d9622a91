package engine

import (
	"fmt"
	"strings"
	"time"
)

// Action is what a decision asks for. Only scale_up and scale_down act; the others explain
// why nothing is done.
type Action string

const (
	ActionNone      Action = "none"       // no rule fires
	ActionScaleUp   Action = "scale_up"   // add Delta workers
	ActionScaleDown Action = "scale_down" // remove Node
	ActionAtMax     Action = "at_max"     // a scale-up is wanted but the fleet is at max (warning)
	ActionAtMin     Action = "at_min"     // a scale-down is wanted but the fleet is at min
	ActionCooldown  Action = "cooldown"   // a scale action is wanted but its cooldown runs
	ActionNoData    Action = "no_data"    // readings are missing or invalid, so no scale-down (and no scale-up was asked for)
	ActionBusy      Action = "busy"       // an earlier operation is still in progress
)

// Trigger names a rule that fired.
const (
	TriggerCPUHigh  = "cpu_high"
	TriggerPending  = "pending_pods"
	TriggerMemHigh  = "memory_high"
	TriggerBelowMin = "below_min"
	TriggerAboveMax = "above_max"
	TriggerLow      = "low_utilisation"

	TriggerUnschedulable = "unschedulable" // pods the scheduler could not place (pod rules)
	TriggerDemand        = "demand"        // the app pods wanted do not fit (HPA-aware)
	TriggerPredicted     = "predicted"     // the app pods wanted soon do not fit (predictive)
	TriggerLowRequests   = "low_requests"  // the requests fit on fewer workers
)

// Decision is the value Decide returns. It has the same shape everywhere a decision is shown:
// decisions.jsonl, the runtime's explain mode and flight records, replays and reports.
type Decision struct {
	Action   Action `json:"action"`
	Delta    int    `json:"delta"`              // workers added (> 0) or removed (< 0)
	Reason   string `json:"reason"`             // the rule and the figures behind it
	Node     string `json:"node,omitempty"`     // the node to remove (scale_down)
	Instance string `json:"instance,omitempty"` // its instance
	// Also are the further nodes a multi-node scale-down removes (the requests rule).
	Also     []NodeRef `json:"also,omitempty"`
	Triggers []string  `json:"triggers,omitempty"` // rules that fired
	Workers  int       `json:"workers"`            // worker capacity (registered + launching) now
	Target   int       `json:"target"`             // worker capacity after the action
}

// NodeRef names a node and its instance.
type NodeRef struct {
	Node     string `json:"node"`
	Instance string `json:"instance,omitempty"`
}

// Acts reports whether the decision asks for a change.
func (d Decision) Acts() bool { return d.Action == ActionScaleUp || d.Action == ActionScaleDown }

// Decide applies the policy to one observation. It is pure: no I/O, no clock, no logging;
// the same inputs give the same decision.
//
// Order of the rules:
//  1. Unknown worker count: no_data.
//  2. Below MinWorkers: scale up to MinWorkers (bounds are restored before anything else).
//  3. Any scale-up trigger (CPU above ScaleUpCPUPercent for ScaleUpSustain, pods pending for
//     ScaleUpSustain, memory above ScaleUpMemoryPercent): at_max when at the bound, cooldown
//     inside ScaleUpCooldown of the last scale-up, else scale up. Only the scale-up cooldown
//     holds a scale-up back: a scale-down cooldown never does.
//  4. An unfinished operation (in the slot or finishing): busy.
//  5. Any invalid reading: no_data (missing, empty, NaN, Inf, stale or partial data never
//     leads to a scale-down).
//  6. Above MaxWorkers, or all scale-down conditions (CPU below ScaleDownCPUPercent for
//     ScaleDownSustain, no pending pods, memory below ScaleDownMemoryPercent): at_min at the
//     bound, none while workers launch, cooldown inside either cooldown, none when removing
//     one node would lift CPU or memory over the scale-up thresholds (anti-flap), else
//     scale down the least-loaded removable worker.
func Decide(now time.Time, p Policy, obs Observation, st State) Decision {
	capacity := obs.Capacity()
	d := Decision{Action: ActionNone, Workers: capacity, Target: capacity}
	r := obs.Readings

	if !obs.WorkersKnown {
		return d.with(ActionNoData, 0, fmt.Sprintf("worker count unknown: nodes reading is %s", problemText(r.Nodes)))
	}

	if capacity < p.MinWorkers {
		d.Triggers = []string{TriggerBelowMin}
		return d.with(ActionScaleUp, p.MinWorkers-capacity,
			fmt.Sprintf("%d workers below min %d", capacity, p.MinWorkers))
	}
	if k, why := baseShort(p, obs, st); k > 0 && capacity < p.MaxWorkers {
		d.Triggers = []string{TriggerOnDemandBase}
		return d.with(ActionScaleUp, min(k, p.MaxWorkers-capacity), why)
	}

	triggers, why := upTriggers(p, r)
	var pv podView
	podNodes := 0
	if p.SizesByPods() {
		pv = newPodView(p, obs)
		t, k, w := pv.upNeed(p, max(0, p.MaxWorkers-capacity))
		triggers, why, podNodes = append(triggers, t...), append(why, w...), k
		if !pv.ok {
			why = append(why, "pod rules stand aside: "+pv.why)
		}
	}
	if len(triggers) > 0 {
		d.Triggers = triggers
		reason := strings.Join(why, "; ")
		if capacity >= p.MaxWorkers {
			return d.with(ActionAtMax, 0, fmt.Sprintf("at max capacity (%d workers), cannot scale further: %s", p.MaxWorkers, reason))
		}
		if left := cooldownLeft(now, st.LastScaleUp, p.ScaleUpCooldown); left > 0 {
			return d.with(ActionCooldown, 0, fmt.Sprintf("scale-up cooldown, %v left: %s", left, reason))
		}
		if sameTick(now, st.LastScaleUp) {
			return d.with(ActionCooldown, 0, "scaled up at this very time already (duplicate invocation): "+reason)
		}
		if sameTick(now, st.LastRemoved) {
			// the tick that ended a scale-down (a reclaimed spot node's, say) was busy with
			// it; a second run of that tick decides nothing either
			return d.with(ActionCooldown, 0, "a node was removed at this very time (duplicate invocation): "+reason)
		}
		var step int
		var stepWhy string
		if p.ScaleUpSizing == SizingPods && pv.ok {
			step, stepWhy = podStep(p, obs, triggers, podNodes)
			if step == 0 {
				return d.with(ActionNone, 0, "no new node needed: "+reason)
			}
		} else {
			step, stepWhy = upStep(p, obs, triggers)
		}
		if stepWhy != "" {
			reason += "; " + stepWhy
		}
		return d.with(ActionScaleUp, min(step, p.MaxWorkers-capacity), reason)
	}

	if ops := st.Open(); len(ops) > 0 {
		op := ops[0]
		return d.with(ActionBusy, 0, fmt.Sprintf("operation %s (%s) is %s", op.ID, op.Kind, op.Phase))
	}

	if len(obs.Invalid) > 0 {
		var parts []string
		for _, n := range obs.Invalid {
			parts = append(parts, n+" "+problemText(r.Get(n)))
		}
		return d.with(ActionNoData, 0, "scale-down withheld, invalid data: "+strings.Join(parts, "; "))
	}

	var reason string
	var also []Node // further nodes of a multi-node scale-down
	pick := func(o Observation) (Node, bool) { return pickNode(p, o) }
	if capacity > p.MaxWorkers {
		d.Triggers = []string{TriggerAboveMax}
		reason = fmt.Sprintf("%d workers above max %d", capacity, p.MaxWorkers)
	} else {
		var hold []string
		if v := r.CPULowMax.Value; v >= p.ScaleDownCPUPercent {
			hold = append(hold, fmt.Sprintf("cpu max over %v %.1f%% >= %g%%", p.ScaleDownSustain, v, p.ScaleDownCPUPercent))
		}
		if v := r.Pending.Value; v > 0 {
			hold = append(hold, fmt.Sprintf("%.0f pods pending", v))
		}
		if v := r.Memory.Value; v >= p.ScaleDownMemoryPercent {
			hold = append(hold, fmt.Sprintf("memory %.1f%% >= %g%%", v, p.ScaleDownMemoryPercent))
		}
		switch {
		case len(hold) == 0 && p.ScaleDownRequestedPercent == 0:
			d.Triggers = []string{TriggerLow}
			reason = fmt.Sprintf("cpu max over %v %.1f%% < %g%%, no pods pending, memory %.1f%% < %g%%",
				p.ScaleDownSustain, r.CPULowMax.Value, p.ScaleDownCPUPercent, r.Memory.Value, p.ScaleDownMemoryPercent)
		case p.ScaleDownRequestedPercent > 0:
			// the requests rule replaces the usage rule: pods, not CPU, decide whether a
			// worker can go (low usage on full requests frees no node)
			nodes, why, ok := requestsLow(p, obs, pv, capacity-p.MinWorkers)
			if !ok {
				return d.with(ActionNone, 0, "steady: "+why)
			}
			d.Triggers = []string{TriggerLowRequests}
			reason = why
			also = nodes[1:]
			pick = func(Observation) (Node, bool) { return nodes[0], true }
		default:
			return d.with(ActionNone, 0, "steady: "+strings.Join(hold, "; "))
		}
		if capacity <= p.MinWorkers {
			return d.with(ActionAtMin, 0, fmt.Sprintf("at min (%d workers): %s", p.MinWorkers, reason))
		}
	}
	if obs.Launching > 0 {
		return d.with(ActionNone, 0, fmt.Sprintf("%d workers still launching: %s", obs.Launching, reason))
	}
	if left := cooldownLeft(now, st.LastScaleUp, p.ScaleUpCooldown); left > 0 {
		return d.with(ActionCooldown, 0, fmt.Sprintf("scale-up cooldown, %v left: %s", left, reason))
	}
	if left := cooldownLeft(now, st.LastScaleDown, p.ScaleDownCooldown); left > 0 {
		return d.with(ActionCooldown, 0, fmt.Sprintf("scale-down cooldown, %v left: %s", left, reason))
	}
	if sameTick(now, st.LastScaleUp) || sameTick(now, st.LastScaleDown) || sameTick(now, st.LastRemoved) {
		return d.with(ActionCooldown, 0, "scaled at this very time already (duplicate invocation): "+reason)
	}
	if capacity <= p.MaxWorkers {
		nodes := float64(capacity + p.ControlPlaneNodes)
		after := nodes / (nodes - 1 - float64(len(also)))
		if cpu := r.CPULowMax.Value * after; cpu >= p.ScaleUpCPUPercent {
			return d.with(ActionNone, 0, fmt.Sprintf("removing a node would lift cpu to %.1f%% (>= %g%%): %s", cpu, p.ScaleUpCPUPercent, reason))
		}
		if mem := r.Memory.Value * after; mem >= p.ScaleUpMemoryPercent {
			return d.with(ActionNone, 0, fmt.Sprintf("removing a node would lift memory to %.1f%% (>= %g%%): %s", mem, p.ScaleUpMemoryPercent, reason))
		}
	}
	node, ok := pick(obs)
	if !ok {
		return d.with(ActionNone, 0, "no removable worker (ready, schedulable, managed, no critical pods): "+reason)
	}
	d.Node, d.Instance = node.Name, node.InstanceID
	if len(also) == 0 {
		return d.with(ActionScaleDown, -1, fmt.Sprintf("%s; removing %s (%d pods)", reason, node.Name, node.Pods))
	}
	pods := node.Pods
	for _, n := range also {
		d.Also = append(d.Also, NodeRef{Node: n.Name, Instance: n.InstanceID})
		pods += n.Pods
	}
	return d.with(ActionScaleDown, -1-len(also), fmt.Sprintf("%s; removing %d nodes (%d pods)", reason, 1+len(also), pods))
}

func (d Decision) with(a Action, delta int, reason string) Decision {
	d.Action, d.Delta, d.Reason = a, delta, reason
	d.Target = d.Workers + delta
	return d
}

// sameTick reports whether a scale action was already taken at now (or, with a clock
// going back, after it): a duplicate delivery of the same tick must change nothing, even
// with a zero cooldown.
func sameTick(now, last time.Time) bool { return !last.IsZero() && !now.After(last) }

func cooldownLeft(now, last time.Time, cooldown time.Duration) time.Duration {
	if last.IsZero() {
		return 0
	}
	return max(0, last.Add(cooldown).Sub(now))
}

func problemText(r Reading) string {
	if r.OK() {
		return "ok"
	}
	if r.Detail != "" && r.Detail != string(r.Problem) {
		return fmt.Sprintf("%s (%s)", r.Problem, r.Detail)
	}
	return string(r.Problem)
}
