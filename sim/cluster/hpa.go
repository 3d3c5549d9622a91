package cluster

import (
	"math"
	"time"
)

// HPA is a HorizontalPodAutoscaler on CPU utilisation with the Kubernetes algorithm:
// desired = ceil(ready * utilisation / target), no change inside the tolerance, not-yet-
// ready pods counted at zero usage when scaling up, scale-up limited per sync period to
// max(2x, +4) pods (the default policies), and scale-down held to the highest
// recommendation of the stabilization window.
type HPA struct {
	TargetPercent float64
	Tolerance     float64
	Min, Max      int
	Window        time.Duration
	recs          []recommendation
}

type recommendation struct {
	at      time.Time
	desired int
}

// Desired returns the replica count for current replicas, the CPU utilisation (usage /
// request, as a fraction) of each ready pod, and the number of pods not ready yet.
func (h *HPA) Desired(now time.Time, current int, readyUtil []float64, unready int) int {
	rec := h.recommend(current, readyUtil, unready)
	rec = min(max(rec, h.Min), h.Max)

	// stabilization: remember, then scale down no lower than the window's highest
	h.recs = append(h.recs, recommendation{now, rec})
	cut := 0
	for cut < len(h.recs) && now.Sub(h.recs[cut].at) > h.Window {
		cut++
	}
	h.recs = h.recs[cut:]
	desired := rec
	if rec < current {
		highest := rec
		for _, r := range h.recs {
			highest = max(highest, r.desired)
		}
		desired = min(highest, current)
	}
	if desired > current {
		desired = min(desired, max(2*current, current+4))
	}
	return min(max(desired, h.Min), h.Max)
}

func (h *HPA) recommend(current int, readyUtil []float64, unready int) int {
	if len(readyUtil) == 0 {
		return current
	}
	sum := 0.0
	for _, u := range readyUtil {
		sum += u
	}
	target := h.TargetPercent / 100
	ratio := sum / float64(len(readyUtil)) / target
	if math.Abs(ratio-1) <= h.Tolerance {
		return current
	}
	if ratio > 1 && unready > 0 {
		// pods still starting count at zero usage: do not scale up for load they will absorb
		n := float64(len(readyUtil) + unready)
		newRatio := sum / n / target
		if newRatio <= 1 || math.Abs(newRatio-1) <= h.Tolerance {
			return current
		}
		return int(math.Ceil(newRatio*n - 1e-9))
	}
	return int(math.Ceil(ratio*float64(len(readyUtil)) - 1e-9))
}
