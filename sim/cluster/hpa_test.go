package cluster

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func hpa() *HPA {
	return &HPA{TargetPercent: 60, Tolerance: 0.1, Min: 2, Max: 20, Window: 5 * time.Minute}
}

func utils(n int, u float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = u
	}
	return out
}

// Hand-worked cases of the Kubernetes HPA algorithm (target 60%, tolerance 0.1).
func TestHPADesired(t *testing.T) {
	cases := []struct {
		name    string
		current int
		util    []float64
		unready int
		want    int
	}{
		// 4 pods at 90%: ratio 1.5 -> ceil(4*1.5) = 6
		{"scale up", 4, utils(4, 0.9), 0, 6},
		// 4 pods at 64%: ratio 1.067, inside tolerance
		{"inside tolerance", 4, utils(4, 0.64), 0, 4},
		// 4 pods at 67%: ratio 1.117 -> ceil(4.47) = 5
		{"just outside tolerance", 4, utils(4, 0.67), 0, 5},
		// 2 ready at 90% + 2 starting (0%): ratio over 4 = 0.75 -> would reverse: hold
		{"starting pods absorb the load", 4, utils(2, 0.9), 2, 4},
		// 2 ready at 150% + 1 starting: 3 pods at 100% -> ratio 1.667 -> ceil(5) = 5
		{"starting pods counted at zero", 3, utils(2, 1.5), 1, 5},
		// rate limit: 2 pods at 600% want 20; max(2*2, 2+4) = 6
		{"scale-up rate limit", 2, utils(2, 6), 0, 6},
		// clamp to max
		{"max replicas", 18, utils(18, 1.2), 0, 20},
		// no ready pods: no change
		{"no metrics", 3, nil, 3, 3},
		// 6 pods at 20%: ratio 0.333 -> ceil(2) = 2 (first recommendation: stabilization has only this one)
		{"scale down", 6, utils(6, 0.2), 0, 2},
		// clamp to min
		{"min replicas", 3, utils(3, 0.01), 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := hpa().Desired(t0, c.current, c.util, c.unready); got != c.want {
				t.Errorf("Desired(%d, %v, %d) = %d, want %d", c.current, c.util, c.unready, got, c.want)
			}
		})
	}
}

func TestHPAScaleDownStabilization(t *testing.T) {
	h := hpa()
	// load peaks: recommendation 10 at t0
	if got := h.Desired(t0, 10, utils(10, 0.6), 0); got != 10 {
		t.Fatalf("steady: %d", got)
	}
	// load drops a minute later: recommendation 2, but the window's highest is 10
	if got := h.Desired(t0.Add(time.Minute), 10, utils(10, 0.1), 0); got != 10 {
		t.Fatalf("inside the window: %d, want 10", got)
	}
	// 4 minutes later: still inside the 5-minute window of the t0 recommendation
	if got := h.Desired(t0.Add(4*time.Minute), 10, utils(10, 0.1), 0); got != 10 {
		t.Fatalf("still inside the window: %d, want 10", got)
	}
	// after the window, the recommendations are all 2
	if got := h.Desired(t0.Add(5*time.Minute+time.Second), 10, utils(10, 0.1), 0); got != 2 {
		t.Fatalf("after the window: %d, want 2", got)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	// exponential with mean 100 ms on a 10 ms base: p50 = 10 + 100 ln 2, p95 = 10 + 100 ln 20
	h.Add(1000, 10, 0.01)
	for _, c := range []struct{ q, want float64 }{{0.5, 79.3}, {0.95, 309.6}, {0.99, 470.5}} {
		got := h.Quantile(c.q)
		if got < c.want*0.97 || got > c.want*1.03 {
			t.Errorf("q%.2f = %.1f ms, want about %.1f", c.q, got, c.want)
		}
	}
	if h.Total() != 1000 {
		t.Errorf("total %v", h.Total())
	}
}

func TestDemandNodes(t *testing.T) {
	cfg := testSim()
	// per pod at target: 0.25 cores * 60% / 10 ms = 15 req/s; 7 pods per node
	if got := PodsPerNode(cfg); got != 7 {
		t.Fatalf("pods per node %d, want 7", got)
	}
	for _, c := range []struct {
		rps  float64
		want int
	}{{0, 1}, {30, 1}, {105, 1}, {106, 2}, {700, 7}} {
		if got := DemandNodes(cfg, c.rps); got != c.want {
			t.Errorf("DemandNodes(%v) = %d, want %d", c.rps, got, c.want)
		}
	}
}
