package engine

import (
	"fmt"
	"math"
	"slices"
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
)

// Decision is the value Decide returns. It has the same shape everywhere a decision is shown:
// decisions.jsonl, the runtime's explain mode and flight records, replays and reports.
type Decision struct {
	Action   Action   `json:"action"`
	Delta    int      `json:"delta"`              // workers added (> 0) or removed (< 0)
	Reason   string   `json:"reason"`             // the rule and the figures behind it
	Node     string   `json:"node,omitempty"`     // the node to remove (scale_down)
	Instance string   `json:"instance,omitempty"` // its instance
	Triggers []string `json:"triggers,omitempty"` // rules that fired
	Workers  int      `json:"workers"`            // worker capacity (registered + launching) now
	Target   int      `json:"target"`             // worker capacity after the action
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

	triggers, why := upTriggers(p, r)
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
		step, why := upStep(p, obs, triggers)
		if why != "" {
			reason += "; " + why
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
		if len(hold) > 0 {
			return d.with(ActionNone, 0, "steady: "+strings.Join(hold, "; "))
		}
		d.Triggers = []string{TriggerLow}
		reason = fmt.Sprintf("cpu max over %v %.1f%% < %g%%, no pods pending, memory %.1f%% < %g%%",
			p.ScaleDownSustain, r.CPULowMax.Value, p.ScaleDownCPUPercent, r.Memory.Value, p.ScaleDownMemoryPercent)
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
		after := nodes / (nodes - 1)
		if cpu := r.CPULowMax.Value * after; cpu >= p.ScaleUpCPUPercent {
			return d.with(ActionNone, 0, fmt.Sprintf("removing a node would lift cpu to %.1f%% (>= %g%%): %s", cpu, p.ScaleUpCPUPercent, reason))
		}
		if mem := r.Memory.Value * after; mem >= p.ScaleUpMemoryPercent {
			return d.with(ActionNone, 0, fmt.Sprintf("removing a node would lift memory to %.1f%% (>= %g%%): %s", mem, p.ScaleUpMemoryPercent, reason))
		}
	}
	node, ok := pickNode(obs)
	if !ok {
		return d.with(ActionNone, 0, "no removable worker (ready, schedulable, managed, no critical pods): "+reason)
	}
	d.Node, d.Instance = node.Name, node.InstanceID
	return d.with(ActionScaleDown, -1, fmt.Sprintf("%s; removing %s (%d pods)", reason, node.Name, node.Pods))
}

func (d Decision) with(a Action, delta int, reason string) Decision {
	d.Action, d.Delta, d.Reason = a, delta, reason
	d.Target = d.Workers + delta
	return d
}

// upTriggers returns the scale-up rules that fire on usable readings, with their reasons.
func upTriggers(p Policy, r Readings) (triggers, why []string) {
	if r.CPUHighMin.OK() && r.CPUHighMin.Value > p.ScaleUpCPUPercent {
		triggers = append(triggers, TriggerCPUHigh)
		why = append(why, fmt.Sprintf("cpu %.1f%% > %g%% for %v", r.CPUHighMin.Value, p.ScaleUpCPUPercent, p.ScaleUpSustain))
	}
	if r.PendingMin.OK() && r.PendingMin.Value >= 1 {
		triggers = append(triggers, TriggerPending)
		why = append(why, fmt.Sprintf("%.0f+ pods pending for %v", r.PendingMin.Value, p.ScaleUpSustain))
	}
	if r.Memory.OK() && r.Memory.Value > p.ScaleUpMemoryPercent {
		triggers = append(triggers, TriggerMemHigh)
		why = append(why, fmt.Sprintf("memory %.1f%% > %g%%", r.Memory.Value, p.ScaleUpMemoryPercent))
	}
	return triggers, why
}

// upStep is ScaleUpStep, raised up to ScaleUpMaxStep when one node clearly is not enough:
//   - the nodes needed to bring CPU (or memory) back under its scale-up threshold, at the
//     current load, exceed the current nodes by at least ScaleUpMaxStep: ceil(n*u/t) - n;
//   - or CPU is high and pods are pending at the same time (the nodes are busy and work is
//     queued besides);
//   - or the pods pending throughout the window would fill more than one node, at the
//     average pods per ready worker: ceil(pending / pods-per-worker).
func upStep(p Policy, obs Observation, triggers []string) (int, string) {
	n := float64(obs.Capacity() + p.ControlPlaneNodes)
	need, why := 0, ""
	raise := func(k int, because string) {
		if k > need {
			need, why = k, because
		}
	}
	extra := func(util, threshold float64) int {
		return int(math.Ceil(n*util/threshold-1e-9) - n)
	}
	if r := obs.Readings.CPU; r.OK() {
		k := extra(r.Value, p.ScaleUpCPUPercent)
		raise(k, fmt.Sprintf("cpu %.1f%% on %.0f nodes needs %d more to get under %g%%", r.Value, n, k, p.ScaleUpCPUPercent))
	}
	if r := obs.Readings.Memory; r.OK() {
		k := extra(r.Value, p.ScaleUpMemoryPercent)
		raise(k, fmt.Sprintf("memory %.1f%% on %.0f nodes needs %d more to get under %g%%", r.Value, n, k, p.ScaleUpMemoryPercent))
	}
	if slices.Contains(triggers, TriggerCPUHigh) && slices.Contains(triggers, TriggerPending) {
		raise(p.ScaleUpMaxStep, "cpu high and pods pending at once")
	}
	if r := obs.Readings.PendingMin; r.OK() && r.Value >= 1 {
		if per := podsPerWorker(obs); per > 0 {
			k := int(math.Ceil(r.Value/per - 1e-9))
			raise(k, fmt.Sprintf("%.0f pending pods fill %d nodes at %.1f pods per worker", r.Value, k, per))
		}
	}
	step := min(max(need, p.ScaleUpStep), p.ScaleUpMaxStep)
	if step <= p.ScaleUpStep {
		return step, ""
	}
	return step, fmt.Sprintf("adding %d: %s", step, why)
}

// podsPerWorker is the average number of pods on a ready, schedulable worker (0 without a
// node list): when pods are pending, the workers are full, so it is what a new one holds.
func podsPerWorker(obs Observation) float64 {
	pods, workers := 0, 0
	for _, n := range obs.Nodes {
		if !n.ControlPlane && n.Ready && !n.Unschedulable {
			pods += n.Pods
			workers++
		}
	}
	if workers == 0 {
		return 0
	}
	return float64(pods) / float64(workers)
}

// pickNode chooses the worker to remove: ready, schedulable, managed (its instance is in the
// cloud's list), no critical pods; fewest pods first, then the youngest, then by name.
func pickNode(obs Observation) (Node, bool) {
	managed := map[string]bool{}
	for _, in := range obs.Instances {
		if in.State == InstanceRunning {
			managed[in.ID] = true
		}
	}
	var cands []Node
	for _, n := range obs.Nodes {
		if !n.ControlPlane && n.Ready && !n.Unschedulable && n.CriticalPods == 0 && managed[n.InstanceID] {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return Node{}, false
	}
	slices.SortFunc(cands, func(a, b Node) int {
		if a.Pods != b.Pods {
			return a.Pods - b.Pods
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return b.CreatedAt.Compare(a.CreatedAt)
		}
		return cmpString(a.Name, b.Name)
	})
	return cands[0], true
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
