package engine

import (
	"fmt"
	"math"
	"slices"
)

// How many workers a scale-up adds: the brief's metric rules (upStep) or, with pod sizing,
// the nodes the pods that need room take (podView.upNeed, packed in pack.go).

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

// podStep sizes a scale-up by pods: the nodes the pod rules need, and, when a CPU or memory
// trigger fired, no fewer than the nodes that bring CPU or memory back under its threshold
// at today's load (at least ScaleUpStep): a node for usage no pod explains. The brief's
// pending-pod heuristics do not apply: the pods are packed.
func podStep(p Policy, obs Observation, triggers []string, podNodes int) (int, string) {
	step, why := podNodes, ""
	if slices.Contains(triggers, TriggerCPUHigh) || slices.Contains(triggers, TriggerMemHigh) {
		if k, w := usageStep(p, obs); k > step {
			step, why = k, w
		}
	}
	return min(step, p.ScaleUpMaxStep), why
}

// usageStep is the nodes that bring CPU and memory under their scale-up thresholds at
// today's load, at least ScaleUpStep. With the demand rule on, the CPU is that of the load
// offered, not only of the load served: a saturated app turns requests away, and the CPU it
// shows is capped by the nodes it has (the same offered/served the demand grows by).
//
// The usage is that of the nodes measured (node-exporter's, which a launching node is not
// yet among), spread over every node there will be, those launching included.
func usageStep(p Policy, obs Observation) (int, string) {
	n := float64(obs.Capacity() + p.ControlPlaneNodes)
	measured := n
	if r := obs.Readings.Nodes; r.OK() && r.Value >= 1 && r.Value < n {
		measured = r.Value
	}
	step, why := p.ScaleUpStep, fmt.Sprintf("adding %d for the usage trigger", p.ScaleUpStep)
	cpu, offered := obs.Readings.CPU, ""
	if f := offeredPerServed(obs.Readings); p.ScaleUpOnDemand && cpu.OK() && f > 1 {
		cpu.Value *= f
		offered = fmt.Sprintf(" for the load offered (x %.2f offered/served)", f)
	}
	for _, u := range []struct {
		name string
		r    Reading
		t    float64
		of   string
	}{{"cpu", cpu, p.ScaleUpCPUPercent, offered}, {"memory", obs.Readings.Memory, p.ScaleUpMemoryPercent, ""}} {
		if !u.r.OK() {
			continue
		}
		if k := int(math.Ceil(measured*u.r.Value/u.t-1e-9) - n); k > step {
			step, why = k, fmt.Sprintf("adding %d: %s %.1f%%%s on %.0f nodes needs %d more than the %.0f there will be to get under %g%%", k, u.name, u.r.Value, u.of, measured, k, n, u.t)
		}
	}
	return step, why
}
