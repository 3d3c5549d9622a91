package engine

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Which worker a scale-down removes, and the rules that allow one: the brief's usage rule
// (CPU, pending pods, memory all low) and the requests rule (shedding.go's requestsLow).

// pickNode chooses the worker to remove: ready, schedulable, managed (its instance is in the
// cloud's list), no critical pods; fewest pods first, then the youngest, then by name.
func pickNode(obs Observation) (Node, bool) {
	cands := removable(obs)
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

// removable lists the workers a scale-down may remove: Ready, schedulable, managed (a
// running instance in the cloud's list), no critical pods.
func removable(obs Observation) []Node {
	managed := map[string]bool{}
	for _, in := range obs.Instances {
		if in.State == InstanceRunning {
			managed[in.ID] = true
		}
	}
	var out []Node
	for _, n := range obs.Nodes {
		if !n.ControlPlane && n.Ready && !n.Unschedulable && n.CriticalPods == 0 && managed[n.InstanceID] {
			out = append(out, n)
		}
	}
	return out
}

// requestsLow is the requests rule (cluster-autoscaler's scale-down, on the whole cluster's
// requests): the removable worker, least requested first, whose removal keeps the
// schedulable workers' requested CPU and memory, at their highest over ScaleDownSustain,
// under ScaleDownRequestedPercent; whose movable pods fit on the other workers now; and after
// whose removal the app pods wanted (and predicted, and the headroom) still fit. It returns
// the node and the reason, or why no node qualifies.
func requestsLow(p Policy, obs Observation, pv podView) (Node, string, bool) {
	r := obs.Readings
	if !pv.ok {
		return Node{}, "requests rule stands aside: " + pv.why, false
	}
	if n := len(pv.pending); n > 0 {
		return Node{}, fmt.Sprintf("%d pods unschedulable", n), false
	}
	res := obs.Resources
	cands := removable(obs)
	byName := map[string]NodeResources{}
	var total Resources
	for _, nr := range res.Nodes {
		byName[nr.Node] = nr
	}
	var takers []string // the workers that take pods
	for _, n := range obs.Nodes {
		if nr, ok := byName[n.Name]; ok && !n.ControlPlane && !n.Unschedulable {
			total = total.Add(nr.Allocatable)
			if n.Ready {
				takers = append(takers, n.Name)
			}
		}
	}
	share := func(nr NodeResources) float64 {
		return max(ratio(nr.Requested.MilliCPU, nr.Allocatable.MilliCPU), ratio(nr.Requested.Memory, nr.Allocatable.Memory))
	}
	slices.SortStableFunc(cands, func(a, b Node) int { return cmp.Compare(share(byName[a.Name]), share(byName[b.Name])) })
	need := pv.need(p)
	why := fmt.Sprintf("requested cpu max over %v %.1f%%, memory %.1f%%", p.ScaleDownSustain, r.RequestedCPUMax.Value, r.RequestedMemoryMax.Value)
	last := "no removable worker"
	for _, n := range cands {
		nr, ok := byName[n.Name]
		if !ok {
			continue
		}
		cpu := r.RequestedCPUMax.Value * ratio(total.MilliCPU, total.MilliCPU-nr.Allocatable.MilliCPU)
		mem := r.RequestedMemoryMax.Value * ratio(total.Memory, total.Memory-nr.Allocatable.Memory)
		if cpu >= p.ScaleDownRequestedPercent || mem >= p.ScaleDownRequestedPercent {
			last = fmt.Sprintf("without %s requests would reach cpu %.1f%%, memory %.1f%% (>= %g%%)", n.Name, cpu, mem, p.ScaleDownRequestedPercent)
			continue
		}
		var others []Resources
		for _, name := range takers {
			if name != n.Name {
				others = append(others, byName[name].Free())
			}
		}
		var pods []Resources
		nodeSlots := slotsIn(nr.Free(), pv.app)
		for _, ps := range nr.Pods {
			for range ps.Count {
				pods = append(pods, ps.Requests)
			}
			if ps.Requests == pv.app {
				nodeSlots += ps.Count
			}
		}
		if fit := pack(pods, others, Resources{}, 0); fit.Placed < len(pods) {
			last = fmt.Sprintf("the %d pods of %s do not fit on the other workers", len(pods), n.Name)
			continue
		}
		if pv.demandOK && need > pv.slots-nodeSlots {
			last = fmt.Sprintf("without %s %d app pods fit, %d wanted (%s)", n.Name, pv.slots-nodeSlots, need, pv.demandWhy)
			continue
		}
		return n, fmt.Sprintf("%s, without %s cpu %.1f%% and memory %.1f%% < %g%%, its %d pods fit on the others",
			why, n.Name, cpu, mem, p.ScaleDownRequestedPercent, len(pods)), true
	}
	return Node{}, why + ": " + last, false
}

func ratio(a, b int64) float64 {
	if b <= 0 {
		return math.Inf(1)
	}
	return float64(a) / float64(b)
}
