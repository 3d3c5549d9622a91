package engine

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
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
// requests): the removable workers, least requested first, up to ScaleDownMaxStep, each
// taken only if, without it and those taken before it, the schedulable workers' requested
// CPU and memory, at their highest over ScaleDownSustain, stay within
// ScaleDownRequestedPercent; its movable pods fit, first-fit-decreasing, on the workers that
// stay (after the pods of the nodes taken before it); and the app pods wanted (and
// predicted, and the headroom) still fit; at most limit of them (what min_workers leaves). It
// returns the nodes and the reason, or why none qualifies.
func requestsLow(p Policy, obs Observation, pv podView, limit int) ([]Node, string, bool) {
	r := obs.Readings
	if !pv.ok {
		return nil, "requests rule stands aside: " + pv.why, false
	}
	if n := len(pv.pending); n > 0 {
		return nil, fmt.Sprintf("%d pods unschedulable", n), false
	}
	res := obs.Resources
	cands := removable(obs)
	byName := map[string]NodeResources{}
	for _, nr := range res.Nodes {
		byName[nr.Node] = nr
	}
	var total Resources
	room := map[string]Resources{} // free room of the workers that take pods
	var takers []string
	for _, n := range obs.Nodes {
		if nr, ok := byName[n.Name]; ok && !n.ControlPlane && !n.Unschedulable {
			total = total.Add(nr.Allocatable)
			if n.Ready {
				takers = append(takers, n.Name)
				room[n.Name] = nr.Free()
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
	var taken []Node
	var gone, goneDS Resources // allocatable and DaemonSet requests of the nodes taken
	slots := pv.slots
	var cpu, mem float64
	for _, n := range cands {
		if len(taken) >= max(1, min(limit, p.ScaleDownMaxStep)) {
			break
		}
		nr, ok := byName[n.Name]
		if !ok {
			continue
		}
		// the requests, at their highest, less the DaemonSet pods that leave with the nodes,
		// over the allocatable that stays
		without, withoutDS := gone.Add(nr.Allocatable), goneDS.Add(nr.DaemonSet)
		after := func(share float64, total, alloc, ds int64) float64 {
			return 100 * (share/100*float64(total) - float64(ds)) / float64(max(1, total-alloc))
		}
		c := after(r.RequestedCPUMax.Value, total.MilliCPU, without.MilliCPU, withoutDS.MilliCPU)
		m := after(r.RequestedMemoryMax.Value, total.Memory, without.Memory, withoutDS.Memory)
		if c > p.ScaleDownRequestedPercent+1e-9 || m > p.ScaleDownRequestedPercent+1e-9 {
			last = fmt.Sprintf("without %s requests would reach cpu %.1f%%, memory %.1f%% (> %g%%)", n.Name, c, m, p.ScaleDownRequestedPercent)
			continue
		}
		var names []string
		var bins []Resources
		for _, name := range takers {
			if name != n.Name && !slices.ContainsFunc(taken, func(t Node) bool { return t.Name == name }) {
				names = append(names, name)
				bins = append(bins, room[name])
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
		if fit := pack(pods, bins, Resources{}, 0); fit.Placed < len(pods) {
			last = fmt.Sprintf("the %d pods of %s do not fit on the other workers", len(pods), n.Name)
			continue
		}
		if pv.demandOK && need > slots-nodeSlots {
			last = fmt.Sprintf("without %s %d app pods fit, %d wanted (%s)", n.Name, slots-nodeSlots, need, pv.demandWhy)
			continue
		}
		// taken: its pods now use the others' room (pack used the bins up)
		for i, name := range names {
			room[name] = bins[i]
		}
		taken, gone, goneDS, slots, cpu, mem = append(taken, n), without, withoutDS, slots-nodeSlots, c, m
	}
	if len(taken) == 0 {
		return nil, why + ": " + last, false
	}
	names := make([]string, len(taken))
	for i, n := range taken {
		names[i] = n.Name
	}
	return taken, fmt.Sprintf("%s, without %s cpu %.1f%% and memory %.1f%% <= %g%%, their pods fit on the others",
		why, strings.Join(names, ", "), cpu, mem, p.ScaleDownRequestedPercent), true
}

func ratio(a, b int64) float64 {
	if b <= 0 {
		return math.Inf(1)
	}
	return float64(a) / float64(b)
}
