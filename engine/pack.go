package engine

import (
	"fmt"
	"slices"
)

// Bin packing for need-based sizing (cluster-autoscaler's binpacking estimator and
// Karpenter's provisioner are the models): pods, largest first, go to the first bin with
// room; what is left opens new bins of the node shape.

// packResult is what pack did.
type packResult struct {
	NewNodes   int // new nodes of the shape opened
	Placed     int // pods placed on the existing bins
	Unplaceble int // pods larger than an empty node of the shape
}

// pack places pods first-fit-decreasing onto the free room of bins (which it uses up), then
// onto new nodes of shape, at most limit of them (pods left over count as not placed).
func pack(pods []Resources, bins []Resources, shape Resources, limit int) packResult {
	sorted := slices.Clone(pods)
	slices.SortStableFunc(sorted, func(a, b Resources) int { return -a.compare(b) })
	var res packResult
	var opened []Resources
	for _, p := range sorted {
		if i := firstFit(bins, p); i >= 0 {
			bins[i] = bins[i].Sub(p)
			res.Placed++
			continue
		}
		if !shape.Fits(p) {
			res.Unplaceble++
			continue
		}
		if i := firstFit(opened, p); i >= 0 {
			opened[i] = opened[i].Sub(p)
			continue
		}
		if len(opened) >= limit {
			continue
		}
		opened = append(opened, shape.Sub(p))
	}
	res.NewNodes = len(opened)
	return res
}

func firstFit(bins []Resources, p Resources) int {
	for i, b := range bins {
		if b.Fits(p) {
			return i
		}
	}
	return -1
}

// slotsIn is how many pods of shape p fit in room r.
func slotsIn(r, p Resources) int {
	n := -1
	div := func(have, need int64) {
		if need <= 0 {
			return
		}
		k := int(max(0, have) / need)
		if n < 0 || k < n {
			n = k
		}
	}
	div(r.MilliCPU, p.MilliCPU)
	div(r.Memory, p.Memory)
	if r.Pods > 0 {
		div(r.Pods, p.Pods)
	}
	return max(n, 0)
}

// nodeShape is the room a new node of an instance type gives the workload: learned from a
// Ready worker of that type (its allocatable less its DaemonSet pods' requests), else the
// type's capacity less the policy's reserve.
type nodeShape struct {
	Room Resources
	Type string
	From string // how it was found, for the reason
}

func learnShape(p Policy, obs Observation, instanceType string) (nodeShape, error) {
	res := obs.Resources
	byNode := map[string]Node{}
	for _, n := range obs.Nodes {
		byNode[n.Name] = n
	}
	var other *NodeResources
	for i := range res.Nodes {
		nr := &res.Nodes[i]
		n, ok := byNode[nr.Node]
		if !ok || n.ControlPlane || !n.Ready || nr.Allocatable.IsZero() {
			continue
		}
		if instanceType == "" || nr.InstanceType == instanceType {
			return nodeShape{Room: nr.Allocatable.Sub(nr.DaemonSet), Type: nr.InstanceType, From: "learned from " + nr.Node}, nil
		}
		if other == nil {
			other = nr
		}
	}
	if c, ok := instanceCapacity[instanceType]; ok {
		reserve := Resources{MilliCPU: int64(p.NodeReserveCPUm), Memory: int64(p.NodeReserveMemoryMiB) << 20}
		return nodeShape{Room: c.Sub(reserve), Type: instanceType,
			From: fmt.Sprintf("%s capacity less the %dm/%dMiB reserve", instanceType, p.NodeReserveCPUm, p.NodeReserveMemoryMiB)}, nil
	}
	if other != nil {
		return nodeShape{Room: other.Allocatable.Sub(other.DaemonSet), Type: other.InstanceType,
			From: fmt.Sprintf("learned from %s (a %s; no %q worker and no capacity figures for that type)", other.Node, other.InstanceType, instanceType)}, nil
	}
	return nodeShape{}, fmt.Errorf("no Ready worker to learn a node's room from and no capacity figures for instance type %q", instanceType)
}

// instanceCapacity is the capacity of common worker instance types: AWS's published vCPU
// and memory of the burstable, general purpose, compute and memory optimised families.
var instanceCapacity = func() map[string]Resources {
	out := map[string]Resources{}
	shape := func(vcpu, gib int64) Resources { return Resources{MilliCPU: vcpu * 1000, Memory: gib << 30, Pods: 110} }
	for _, f := range []string{"t3", "t3a", "t4g"} {
		out[f+".small"], out[f+".medium"], out[f+".large"] = shape(2, 2), shape(2, 4), shape(2, 8)
		out[f+".xlarge"], out[f+".2xlarge"] = shape(4, 16), shape(8, 32)
	}
	families := map[int64][]string{ // GiB per vCPU
		2: {"c5", "c5a", "c6i", "c6a", "c6g", "c7i", "c7g"},
		4: {"m5", "m5a", "m6i", "m6a", "m6g", "m7i", "m7g"},
		8: {"r5", "r5a", "r6i", "r6a", "r6g", "r7i", "r7g"},
	}
	sizes := map[string]int64{"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16}
	for per, fams := range families {
		for _, f := range fams {
			for size, vcpu := range sizes {
				out[f+"."+size] = shape(vcpu, vcpu*per)
			}
		}
	}
	return out
}()
