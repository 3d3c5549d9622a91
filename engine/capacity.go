package engine

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Capacity: where a scale-up's workers go (capacity type, zone, instance type) and which
// worker a scale-down takes, for a policy with spot capacity, instance types or zone spread
// (docs/algorithm.md "Capacity"). With all of it off (the brief and responsive presets) none
// of this runs: the Step launches into its offerings in order, as the brief says.

// Capacity types, EC2's names.
const (
	CapacityOnDemand = "on-demand"
	CapacitySpot     = "spot"
)

// Spot allocation strategies (EC2 Fleet's names; ours are approximations, see orderSpot).
const (
	AllocPriceCapacity = "price-capacity-optimized"
	AllocLowestPrice   = "lowest-price"
	AllocPrioritized   = "prioritized"
)

// TriggerOnDemandBase: fewer on-demand workers than the policy's base.
const TriggerOnDemandBase = "on_demand_base"

// spotTroubleWindow: an offering that had an interruption, a rebalance recommendation or
// a capacity failure this recently ranks after the calm ones (price-capacity-optimized).
const spotTroubleWindow = time.Hour

// Spot reports whether the offering is spot capacity.
func (o Offering) Spot() bool { return o.CapacityType == CapacitySpot }

// CheckCapacityType returns an error naming the value unless it is a known capacity type
// ("" is on-demand).
func CheckCapacityType(s string) error {
	switch s {
	case "", CapacityOnDemand, CapacitySpot:
		return nil
	}
	return fmt.Errorf("unknown capacity type %q (known: %s, %s)", s, CapacityOnDemand, CapacitySpot)
}

// Pricer is an optional interface of a Cloud: the current hourly prices of offerings in USD,
// by Offering.Key (spot prices move, so a spot allocation strategy asks before launching).
// Offerings it has no price for are left out of the map.
type Pricer interface {
	Prices(ctx context.Context, offerings []Offering) (map[string]float64, error)
}

// LaunchPart is one part of a scale-up's plan: Count workers of one capacity type, in one
// zone ("" when the zone is not chosen ahead).
type LaunchPart struct {
	CapacityType string `json:"capacity_type,omitempty"`
	Zone         string `json:"zone,omitempty"`
	Count        int    `json:"count"`
}

// UsesSpot reports whether the policy launches spot workers.
func (p Policy) UsesSpot() bool { return p.SpotPercent > 0 }

// PlansCapacity reports whether scale-ups are planned over capacity types, zones and
// instance types (capacity.go) rather than launched into the offerings in order.
func (p Policy) PlansCapacity() bool {
	return p.UsesSpot() || p.ZoneSpread || len(p.InstanceTypes) > 0
}

var instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)

func (r Rules) validateCapacity(p Policy) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.SpotPercent < 0 || r.SpotPercent > 100 {
		bad("spot_percent must be in [0, 100] (0: on-demand only), got %d", r.SpotPercent)
	}
	if r.OnDemandBase < 0 || r.OnDemandBase > p.MaxWorkers {
		bad("on_demand_base must be in [0, max_workers (%d)], got %d", p.MaxWorkers, r.OnDemandBase)
	}
	if !slices.Contains([]string{AllocPriceCapacity, AllocLowestPrice, AllocPrioritized}, r.SpotAllocation) {
		bad("spot_allocation must be %q, %q or %q, got %q", AllocPriceCapacity, AllocLowestPrice, AllocPrioritized, r.SpotAllocation)
	}
	seen := map[string]bool{}
	for _, t := range r.InstanceTypes {
		switch {
		case !instanceTypeRE.MatchString(t):
			bad("instance_types: %q is not an EC2 instance type (e.g. \"t3.medium\")", t)
		case seen[t]:
			bad("instance_types: %q is listed twice", t)
		}
		seen[t] = true
	}
	return errs
}

// SpotWorkers is how many of total workers the policy wants on spot: SpotPercent of those
// above the on-demand base, to the nearest worker (a half goes to spot).
func (p Policy) SpotWorkers(total int) int {
	above := max(0, total-p.OnDemandBase)
	return (above*p.SpotPercent + 50) / 100
}

func spotTarget(p Policy, total int) int { return p.SpotWorkers(total) }

// fleetMix is the live workers by capacity type and zone: instances pending or running that
// no scale-down or interruption is taking away, and the instances of open scale-ups that
// DescribeInstances does not list yet.
type fleetMix struct {
	OnDemand, Spot int
	Zones          map[string]int
}

func (m fleetMix) total() int { return m.OnDemand + m.Spot }

func (m *fleetMix) add(spot bool, zone string) {
	if spot {
		m.Spot++
	} else {
		m.OnDemand++
	}
	if zone != "" {
		m.Zones[zone]++
	}
}

// mixOf counts the fleet's mix in obs, leaving out the instances of st's scale-downs.
func mixOf(obs Observation, st State) fleetMix {
	m := fleetMix{Zones: map[string]int{}}
	leaving, listed := map[string]bool{}, map[string]bool{}
	for _, op := range st.Open() {
		if op.Kind == OpScaleDown && op.Instance != "" {
			leaving[op.Instance] = true
		}
	}
	for _, in := range obs.Instances {
		listed[in.ID] = true
		if (in.State == InstancePending || in.State == InstanceRunning) && !leaving[in.ID] {
			m.add(in.Offering.Spot(), in.Offering.Zone)
		}
	}
	for _, op := range st.Open() {
		if op.Kind != OpScaleUp {
			continue
		}
		for _, id := range op.Instances {
			if !listed[id] {
				listed[id] = true
				m.add(slices.Contains(op.SpotInstances, id), "")
			}
		}
	}
	return m
}

// baseShort is the number of on-demand workers missing from the policy's base: a worker
// lost outside the autoscaler (a failed instance, a hand-made termination) is replaced by an
// on-demand one before anything else.
func baseShort(p Policy, obs Observation, st State) (int, string) {
	if p.OnDemandBase == 0 || !p.UsesSpot() || obs.Instances == nil {
		return 0, ""
	}
	m := mixOf(obs, st)
	want := min(p.OnDemandBase, obs.Capacity())
	if m.OnDemand >= want {
		return 0, ""
	}
	return want - m.OnDemand, fmt.Sprintf("%d on-demand workers below on_demand_base %d", m.OnDemand, p.OnDemandBase)
}

// planLaunch splits a scale-up of k workers into parts: each worker goes to the capacity
// type the policy's mix wants at the fleet size it makes, and, with zone spread, to the
// zone with the fewest workers (ties: the zones' order). Parts keep their first worker's
// order.
func planLaunch(p Policy, zones []string, m fleetMix, k int) []LaunchPart {
	m.Zones = clonedCounts(m.Zones)
	var parts []LaunchPart
	for range k {
		capType := CapacityOnDemand
		if m.Spot < spotTarget(p, m.total()+1) {
			capType = CapacitySpot
		}
		zone := ""
		if p.ZoneSpread && len(zones) > 0 {
			zone = zones[0]
			for _, z := range zones[1:] {
				if m.Zones[z] < m.Zones[zone] {
					zone = z
				}
			}
		}
		m.add(capType == CapacitySpot, zone)
		if i := slices.IndexFunc(parts, func(x LaunchPart) bool { return x.CapacityType == capType && x.Zone == zone }); i >= 0 {
			parts[i].Count++
			continue
		}
		parts = append(parts, LaunchPart{CapacityType: capType, Zone: zone, Count: 1})
	}
	return parts
}

func clonedCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// spareNodes narrows a scale-down's candidates to the capacity type the policy's mix can
// spare: spot while there are more spot workers than the mix wants one worker fewer, else
// on-demand ones above the base (at most as many as are above it, so a multi-node
// scale-down cannot take the base). Without spot in the policy it changes nothing.
func spareNodes(p Policy, obs Observation, cands []Node) []Node {
	if !p.UsesSpot() {
		return cands
	}
	spot := map[string]bool{}
	var m fleetMix
	m.Zones = map[string]int{}
	for _, in := range obs.Instances {
		if in.State == InstancePending || in.State == InstanceRunning {
			m.add(in.Offering.Spot(), "")
			spot[in.ID] = in.Offering.Spot()
		}
	}
	var spots, ods []Node
	for _, n := range cands {
		if spot[n.InstanceID] {
			spots = append(spots, n)
		} else {
			ods = append(ods, n)
		}
	}
	spareOD := m.OnDemand - min(p.OnDemandBase, m.total()-1)
	slices.SortStableFunc(ods, func(a, b Node) int { return a.Pods - b.Pods })
	ods = ods[:max(0, min(len(ods), spareOD))]
	if (m.Spot > spotTarget(p, m.total()-1) || len(ods) == 0) && len(spots) > 0 {
		return spots
	}
	return ods
}

// baseOfferings are the on-demand offerings the policy launches into: its instance types
// (in order) in every zone and subnet of the configured offerings, or the configured
// offerings themselves.
func baseOfferings(p Policy, configured []Offering) []Offering {
	if len(configured) == 0 {
		configured = []Offering{{}}
	}
	var out []Offering
	add := func(o Offering) {
		o.CapacityType = ""
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if len(p.InstanceTypes) == 0 {
		for _, o := range configured {
			add(o)
		}
		return out
	}
	for _, typ := range p.InstanceTypes {
		for _, o := range configured {
			o.InstanceType = typ
			add(o)
		}
	}
	return out
}

// zonesOf lists the zones of the offerings in order of first appearance.
func zonesOf(offs []Offering) []string {
	var out []string
	for _, o := range offs {
		if !slices.Contains(out, o.Zone) {
			out = append(out, o.Zone)
		}
	}
	return out
}

// candidates orders where one part of a plan may launch: for a spot part, the spot
// offerings of its zone by the allocation strategy, then the other zones' (least-used zone
// first), then the on-demand offerings the same way (the fallback); for an on-demand part,
// the on-demand offerings of its zone in preference order, then the other zones'. Offerings
// backing off, and instance types whose node cannot hold the app's largest pod, are left
// out.
func (t *tick) candidates(part LaunchPart) []Offering {
	p := t.s.Policy
	base := baseOfferings(p, t.s.Offerings)
	m := mixOf(t.obs, t.st)
	zones := zonesOf(base)
	slices.SortStableFunc(zones, func(a, b string) int {
		switch {
		case a == part.Zone && b != part.Zone:
			return -1
		case b == part.Zone && a != part.Zone:
			return 1
		}
		return cmp.Compare(m.Zones[a], m.Zones[b])
	})
	if !p.ZoneSpread || part.Zone == "" {
		zones = []string{""} // one group: every zone at once
	}
	usable := func(o Offering) bool {
		if until, ok := t.st.Backoff[o.Key()]; ok && t.now.Before(until) {
			return false
		}
		return t.fitsPods(o.InstanceType)
	}
	group := func(spot bool) []Offering {
		var out []Offering
		for _, z := range zones {
			var in []Offering
			for _, o := range base {
				if z != "" && o.Zone != z {
					continue
				}
				if spot {
					o.CapacityType = CapacitySpot
				}
				if usable(o) {
					in = append(in, o)
				}
			}
			if spot {
				in = t.orderSpot(in)
			}
			out = append(out, in...)
		}
		return out
	}
	if part.CapacityType == CapacitySpot {
		return append(group(true), group(false)...)
	}
	return group(false)
}

// orderSpot orders spot offerings by the policy's allocation strategy. EC2 Fleet's
// price-capacity-optimized picks the pools with the most spare capacity, then the cheapest
// of those; the engine has no view of EC2's spare capacity, so it ranks the offerings that
// had no interruption, rebalance recommendation or capacity failure in the last hour first
// (State.SpotTrouble), then by price, then in preference order. lowest-price goes by price
// alone; prioritized keeps the preference order. Offerings without a known price come after
// the priced ones.
func (t *tick) orderSpot(offs []Offering) []Offering {
	p := t.s.Policy
	if p.SpotAllocation == AllocPrioritized || len(offs) < 2 {
		return offs
	}
	prices := t.prices(offs)
	troubled := func(o Offering) bool {
		at, ok := t.st.SpotTrouble[o.Key()]
		return ok && t.now.Sub(at) < spotTroubleWindow
	}
	out := slices.Clone(offs)
	slices.SortStableFunc(out, func(a, b Offering) int {
		if p.SpotAllocation == AllocPriceCapacity {
			if ta, tb := troubled(a), troubled(b); ta != tb {
				if ta {
					return 1
				}
				return -1
			}
		}
		pa, oka := prices[a.Key()]
		pb, okb := prices[b.Key()]
		switch {
		case oka && okb:
			return cmp.Compare(pa, pb)
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
	return out
}

// prices asks the cloud for prices once per tick (nil when it cannot tell).
func (t *tick) prices(offs []Offering) map[string]float64 {
	pr, ok := t.s.Cloud.(Pricer)
	if !ok {
		return nil
	}
	if t.priceCache == nil {
		t.priceCache = map[string]float64{}
	}
	var ask []Offering
	for _, o := range offs {
		if _, ok := t.priceCache[o.Key()]; !ok && !t.priceAsked[o.Key()] {
			ask = append(ask, o)
		}
	}
	if len(ask) > 0 {
		if t.priceAsked == nil {
			t.priceAsked = map[string]bool{}
		}
		for _, o := range ask {
			t.priceAsked[o.Key()] = true
		}
		got, err := pr.Prices(t.ctx, ask)
		if err != nil {
			t.act(Act{Kind: "prices", Result: "failed", Error: "spot prices unknown, offerings in preference order: " + err.Error(), ErrorKind: string(KindOf(err))})
		}
		for k, v := range got {
			t.priceCache[k] = v
		}
	}
	return t.priceCache
}

// fitsPods reports whether a node of the instance type can hold the largest pod of the
// cluster (pending or placed), when the resource picture and the type's shape are known.
func (t *tick) fitsPods(instanceType string) bool {
	res := t.obs.Resources
	if res == nil || instanceType == "" {
		return true
	}
	var largest []Resources
	for _, pp := range res.Pending {
		largest = append(largest, pp.Requests)
	}
	for _, n := range res.Nodes {
		for _, ps := range n.Pods {
			largest = append(largest, ps.Requests)
		}
	}
	shape, err := learnShape(t.s.Policy, t.obs, instanceType)
	if err != nil || shape.Type != instanceType {
		return true // no figures for the type: let EC2 and the scheduler tell
	}
	for _, r := range largest {
		r.Pods = 1
		if !shape.Room.Fits(r) {
			return false
		}
	}
	return true
}

// plannedOffering is where the first worker of a scale-up would go now (pod sizing packs
// onto its instance type).
func (t *tick) plannedOffering() Offering {
	m := mixOf(t.obs, t.st)
	parts := planLaunch(t.s.Policy, zonesOf(baseOfferings(t.s.Policy, t.s.Offerings)), m, 1)
	if c := t.candidates(parts[0]); len(c) > 0 {
		return c[0]
	}
	return baseOfferings(t.s.Policy, t.s.Offerings)[0]
}

// noteTrouble remembers a spot offering's interruption or capacity failure (the
// price-capacity-optimized ranking reads it).
func (t *tick) noteTrouble(o Offering) {
	if !o.Spot() {
		return
	}
	if t.st.SpotTrouble == nil {
		t.st.SpotTrouble = map[string]time.Time{}
	}
	t.st.SpotTrouble[o.Key()] = t.now
	for k, at := range t.st.SpotTrouble { // forget what no longer counts
		if t.now.Sub(at) >= spotTroubleWindow {
			delete(t.st.SpotTrouble, k)
		}
	}
}
