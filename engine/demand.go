package engine

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// The demand model of the pod rules: what the cluster can hold in app pods, and how many it
// must hold now and soon. Pods, not CPU, are what a node is added for: the scheduler places
// pods by their requests, and an HPA turns load into pods.

// hpaTolerance is the Kubernetes HPA's default tolerance: it ignores a change of the
// utilisation ratio within 10%, so a predicted growth below it makes no pods either.
const hpaTolerance = 0.1

// podView is what the pod rules see of one observation.
type podView struct {
	ok  bool   // the resource picture is there (else the pod rules stand aside)
	why string // why not, or how the shape was found

	shape   nodeShape
	app     Resources   // the app pod's requests
	pending []Resources // unschedulable pods
	// room of the workers that take pods: Ready (or joining) schedulable workers' free room,
	// and an empty node shape per instance still launching
	room      []Resources
	launching int
	// slots is how many app pods the Ready and launching workers hold: those on them plus
	// those that still fit
	slots int

	demandOK  bool
	demand    float64 // app pods wanted now: the HPAs' replicas grown by the share turned away
	predicted float64 // app pods wanted PredictHorizon ahead (demand if no prediction)
	demandWhy string
}

// need is the app pods to make room for: the larger of the demand and its prediction, plus
// the headroom.
func (v podView) need(p Policy) int {
	if !v.demandOK {
		return 0
	}
	return int(math.Ceil(max(v.demand, v.predicted)-1e-9)) + p.HeadroomPods
}

func newPodView(p Policy, obs Observation) podView {
	var v podView
	if obs.Resources == nil {
		v.why = "no resource picture of the cluster"
		if obs.ResourcesError != "" {
			v.why += ": " + obs.ResourcesError
		}
		return v
	}
	shape, err := learnShape(p, obs, obs.NextOffering.InstanceType)
	if err != nil {
		v.why = err.Error()
		return v
	}
	v.ok, v.shape = true, shape
	res := obs.Resources
	for _, pp := range res.Pending {
		v.pending = append(v.pending, pp.Requests)
	}
	v.app = appShape(*res)

	alive, registered := map[string]bool{}, map[string]bool{}
	for _, in := range obs.Instances {
		if in.State == InstancePending || in.State == InstanceRunning {
			alive[in.ID] = true
		}
	}
	byName := map[string]Node{}
	for _, n := range obs.Nodes {
		byName[n.Name] = n
		registered[n.InstanceID] = true
	}
	for _, nr := range res.Nodes {
		n, ok := byName[nr.Node]
		if !ok || n.ControlPlane || n.Unschedulable || (n.InstanceID != "" && !alive[n.InstanceID] && len(obs.Instances) > 0) {
			continue
		}
		free := nr.Free()
		if !n.Ready {
			free = nr.Allocatable.Sub(nr.Requested) // joining: its room comes soon
		}
		v.room = append(v.room, free)
		v.slots += slotsIn(free, v.app)
		for _, ps := range nr.Pods {
			if ps.Requests == v.app {
				v.slots += ps.Count
			}
		}
	}
	v.launching = obs.Launching
	for range v.launching {
		v.room = append(v.room, shape.Room)
		v.slots += slotsIn(shape.Room, v.app)
	}
	v.demandOK, v.demand, v.predicted, v.demandWhy = demandOf(p, obs.Readings)
	return v
}

// appShape is the app pod's requests: the most common among the unschedulable pods, else
// among the movable pods on the nodes (ties: the larger).
func appShape(res ClusterResources) Resources {
	count := map[Resources]int{}
	for _, pp := range res.Pending {
		count[pp.Requests]++
	}
	if len(count) == 0 {
		for _, n := range res.Nodes {
			for _, ps := range n.Pods {
				count[ps.Requests] += ps.Count
			}
		}
	}
	var best Resources
	bestN := 0
	for r, n := range count {
		if n > bestN || (n == bestN && r.compare(best) > 0) {
			best, bestN = r, n
		}
	}
	return best
}

// demandOf reads the app pods wanted now and PredictHorizon ahead. The HPAs' desired
// replicas are what they want for the load the pods serve; a saturated app turns requests
// away (5xx), and its HPA cannot see that load, so the replicas grow by offered/served. The
// prediction grows them by the busy cores predicted over the busy cores now, when that is
// more than the HPA's tolerance (a smaller change makes no pods).
func demandOf(p Policy, r Readings) (ok bool, demand, predicted float64, why string) {
	if !p.ScaleUpOnDemand && p.PredictHorizon <= 0 {
		return false, 0, 0, ""
	}
	if !r.HPADesired.OK() {
		return false, 0, 0, "hpa_desired " + problemText(r.HPADesired)
	}
	demand = r.HPADesired.Value
	var parts []string
	parts = append(parts, fmt.Sprintf("HPAs want %.0f", demand))
	rate := r.RequestRate
	if !rate.OK() || !r.ServedRate.OK() {
		parts = append(parts, "request rates "+problemText(cmpReading(rate, r.ServedRate)))
	} else if f := offeredPerServed(r); f > 1 {
		demand *= f
		parts = append(parts, fmt.Sprintf("x %.2f offered/served (%.0f of %.0f req/s answered)", f, r.ServedRate.Value, rate.Value))
	}
	predicted = demand
	if p.PredictHorizon > 0 {
		now, pr := r.BusyCores, r.BusyCoresPredicted
		switch {
		case !now.OK() || !pr.OK():
			parts = append(parts, "prediction "+problemText(cmpReading(now, pr)))
		case now.Value > 0 && pr.Value > now.Value*(1+hpaTolerance):
			g := pr.Value / now.Value
			predicted = demand * g
			parts = append(parts, fmt.Sprintf("x %.2f predicted in %v (%.2f of %.2f busy cores)", g, p.PredictHorizon, pr.Value, now.Value))
		}
	}
	return true, demand, predicted, strings.Join(parts, " ")
}

// offeredPerServed is the requests offered per request answered, when more are offered than
// answered (else 1, and 1 when either rate is missing).
func offeredPerServed(r Readings) float64 {
	rate, served := r.RequestRate, r.ServedRate
	if !rate.OK() || !served.OK() || served.Value <= 0 || rate.Value <= served.Value*(1+1e-6) {
		return 1
	}
	return rate.Value / served.Value
}

// cmpReading returns the first of two readings that is not OK.
func cmpReading(a, b Reading) Reading {
	if !a.OK() {
		return a
	}
	return b
}

// nodesFor is how many new nodes of the shape n more app pods need.
func (v podView) nodesFor(n int) int {
	per := slotsIn(v.shape.Room, v.app)
	if n <= 0 || per <= 0 {
		return 0
	}
	return (n + per - 1) / per
}

// upNeed is the pod rules' scale-up: the triggers that fire and the new nodes they need,
// each with its reason.
func (v podView) upNeed(p Policy, limit int) (triggers []string, nodes int, why []string) {
	if !v.ok {
		return nil, 0, nil
	}
	typ := cmp.Or(v.shape.Type, "the offering")
	if p.ScaleUpOnUnschedulable && len(v.pending) > 0 {
		res := pack(v.pending, slices.Clone(v.room), v.shape.Room, limit)
		triggers = append(triggers, TriggerUnschedulable)
		w := fmt.Sprintf("%d pods unschedulable need %d nodes of %s", len(v.pending), res.NewNodes, typ)
		if res.Placed > 0 {
			w += fmt.Sprintf(" (%d fit on the workers launching or joining)", res.Placed)
		}
		if res.Unplaceble > 0 {
			w += fmt.Sprintf(" (%d larger than an empty node)", res.Unplaceble)
		}
		why = append(why, w)
		nodes = max(nodes, res.NewNodes)
	}
	if v.demandOK {
		// A demand that does not fit is sized on itself, measured; only when it fits does
		// the prediction size a scale-up (a linear extrapolation overshoots where a ramp
		// ends, and the measured shortage is the better figure then).
		now := int(math.Ceil(v.demand-1e-9)) + p.HeadroomPods
		name, need := TriggerDemand, now
		if now <= v.slots {
			name, need = TriggerPredicted, v.need(p)
		}
		// The shortfall is what the nodes for the unschedulable pods leave. One within the
		// HPA's tolerance of the demand is within the estimate's own error (rate windows lag,
		// the HPA rounds): the pods it would make, if any, are sized exactly by the
		// unschedulable rule when they appear.
		fit := v.slots + nodes*slotsIn(v.shape.Room, v.app)
		short := need - fit
		if short > 0 && float64(short) > hpaTolerance*float64(need) && (name == TriggerPredicted || p.ScaleUpOnDemand) {
			k := v.nodesFor(short)
			triggers = append(triggers, name)
			w := fmt.Sprintf("%d app pods wanted (%s", need, v.demandWhy)
			if p.HeadroomPods > 0 {
				w += fmt.Sprintf(", + %d headroom", p.HeadroomPods)
			}
			if nodes > 0 {
				w += fmt.Sprintf("), %d fit with those nodes: %d more pods need %d more nodes of %s", fit, short, k, typ)
			} else {
				w += fmt.Sprintf("), %d fit: %d pods need %d nodes of %s", fit, short, k, typ)
			}
			why = append(why, w)
			nodes += k
		}
	}
	return triggers, min(nodes, limit), why
}
