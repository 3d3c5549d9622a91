package replay

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/smartscale/smartscale/scenarios"
)

// DemandPoint is the demand of one recorded minute, derived for the closed loop.
type DemandPoint struct {
	Time          time.Time // end of the minute
	BusyCores     float64   // busy cores of every node, control plane included
	AppCores      float64   // busy cores of the workers minus their system share (kubelet, agent, exporters)
	Pending       float64   // pods pending at the end of the minute
	MemoryPercent float64   // memory used, every node
	Workers       int       // worker nodes recorded
	Saturated     bool      // the workers' CPUs were at least SaturatedPercent busy
	RPS           float64   // requests/s the app cores (and, when saturated, the pending pods) stand for
}

// SaturatedPercent is the worker CPU share above which served load understates demand.
const SaturatedPercent = 90

// Demand derives the demand of every whole minute of the recording:
//
//	busy cores   = per CPU, 1 - idle seconds / elapsed seconds over the minute, summed over
//	               the workers' CPUs (node-exporter's node_cpu_seconds_total{mode="idle"});
//	app cores    = worker busy cores - each worker's system share (sim.Node.SystemCPUUsePct);
//	unmet cores  = when the workers are saturated (CPU >= SaturatedPercent), pending pods x
//	               the HPA target x the pod CPU request: the pods the HPA asked for and the
//	               fleet had no room for would have run at the target. Below saturation the
//	               served load is the demand, and pending pods are only the HPA's headroom;
//	requests/s   = (app cores + unmet cores) / (sim.App.CPUMsPerRequest / 1000).
//
// Memory is reported, not driven: the simulated app's memory follows from its requests/s.
func Demand(r *Recording, v *View, sim scenarios.Sim) ([]DemandPoint, error) {
	first, last, ok := r.Bounds()
	if !ok {
		return nil, fmt.Errorf("the recording is empty")
	}
	if sim.App.CPUMsPerRequest <= 0 {
		return nil, fmt.Errorf("the scenario's cpu_ms_per_request must be > 0")
	}
	type cpuSeries struct {
		node    string
		control bool
		s       *Series
	}
	var cpus []cpuSeries
	coresOf := map[string]int{}
	var pending, memAvail, memTotal []*Series
	for i := range r.Series {
		s := &r.Series[i]
		switch s.Labels.Get(labels.MetricName) {
		case MetricCPU:
			if s.Labels.Get("mode") != "idle" {
				continue
			}
			node := s.Labels.Get("node")
			if node == "" {
				host := s.Labels.Get("instance")
				if h, _, ok := strings.Cut(host, ":"); ok {
					host = h
				}
				if n, ok := v.NodeOf(host); ok {
					node = n
				} else {
					node = host
				}
			}
			cpus = append(cpus, cpuSeries{node: node, control: v.ControlPlane(node), s: s})
			coresOf[node]++
		case MetricPodPhase:
			if s.Labels.Get("phase") == "Pending" {
				pending = append(pending, s)
			}
		case MetricMemAvailable:
			memAvail = append(memAvail, s)
		case MetricMemTotal:
			memTotal = append(memTotal, s)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("the recording has no %s{mode=\"idle\"} series: no CPU demand to derive", MetricCPU)
	}
	app := sim.App
	perReq := app.CPUMsPerRequest / 1000
	unmetPerPod := sim.HPA.TargetCPUPercent / 100 * float64(app.CPURequestm) / 1000
	var out []DemandPoint
	// The first minute is a warm-up: its counters may start mid-minute.
	for te := first.Truncate(time.Minute).Add(2 * time.Minute); !te.After(last); te = te.Add(time.Minute) {
		p := DemandPoint{Time: te.UTC(), Workers: v.Workers(te)}
		busyOf := map[string]float64{}
		for _, c := range cpus {
			t0, v0, ok0 := valueAt(c.s, te.Add(-time.Minute))
			t1, v1, ok1 := valueAt(c.s, te)
			if !ok0 || !ok1 || t1 <= t0 || v1 < v0 {
				continue
			}
			idle := (v1 - v0) / (float64(t1-t0) / 1000)
			busyOf[c.node] += min(1, max(0, 1-idle))
		}
		nodes := make([]string, 0, len(busyOf))
		for n := range busyOf {
			nodes = append(nodes, n)
		}
		slices.Sort(nodes) // fixed summation order: deterministic
		workerCores, workerBusy := 0, 0.0
		for _, n := range nodes {
			b := busyOf[n]
			p.BusyCores += b
			if !v.ControlPlane(n) {
				p.AppCores += max(0, b-float64(coresOf[n])*sim.Node.SystemCPUUsePct/100)
				workerCores += coresOf[n]
				workerBusy += b
			}
		}
		p.Saturated = workerCores > 0 && 100*workerBusy/float64(workerCores) >= SaturatedPercent
		for _, s := range pending {
			if _, val, ok := valueAt(s, te); ok && !math.IsNaN(val) {
				p.Pending += val
			}
		}
		var avail, total float64
		for _, s := range memAvail {
			if _, val, ok := valueAt(s, te); ok {
				avail += val
			}
		}
		for _, s := range memTotal {
			if _, val, ok := valueAt(s, te); ok {
				total += val
			}
		}
		if total > 0 {
			p.MemoryPercent = 100 * (1 - avail/total)
		}
		cores := p.AppCores
		if p.Saturated {
			cores += p.Pending * unmetPerPod
		}
		p.RPS = round2(cores / perReq)
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the recording is shorter than two minutes: no demand to derive")
	}
	return out, nil
}

// valueAt returns the newest sample at or before t within the lookback.
func valueAt(s *Series, t time.Time) (int64, float64, bool) {
	ms := t.UnixMilli()
	i, _ := slices.BinarySearchFunc(s.Samples, ms+1, func(x Sample, target int64) int {
		switch {
		case x.T < target:
			return -1
		case x.T > target:
			return 1
		}
		return 0
	})
	if i == 0 || s.Samples[i-1].T <= ms-Lookback.Milliseconds() {
		return 0, 0, false
	}
	return s.Samples[i-1].T, s.Samples[i-1].V, true
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// Scenario turns the demand into a k6-style scenario whose arrival rate follows it minute
// by minute (one 1-minute stage per recorded minute), with base's simulator settings, the
// recorded worker count to start with and no added noise (the recording has its own). It
// returns the scenario file's bytes (`go run ./sim -scenario FILE` runs it again) and the
// parsed, validated scenario.
func Scenario(name, description string, demand []DemandPoint, base scenarios.Sim) ([]byte, scenarios.Scenario, error) {
	if len(demand) == 0 {
		return nil, scenarios.Scenario{}, fmt.Errorf("no demand")
	}
	sim := base
	sim.InitialWorkers = demand[0].Workers
	sim.NoiseFraction = 0
	type stage struct {
		Duration string  `json:"duration"`
		Target   float64 `json:"target"`
	}
	stages := make([]stage, len(demand))
	for i, d := range demand {
		stages[i] = stage{Duration: "1m", Target: d.RPS}
	}
	file := map[string]any{
		"description": description,
		"scenarios": map[string]any{name: map[string]any{
			"executor": "ramping-arrival-rate", "startRate": demand[0].RPS, "timeUnit": "1s",
			"preAllocatedVUs": 200, "maxVUs": 3000, "stages": stages,
		}},
		"smartscale": sim,
	}
	data, err := json.MarshalIndent(file, "", " ")
	if err != nil {
		return nil, scenarios.Scenario{}, err
	}
	data = append(data, '\n')
	sc, err := scenarios.Parse(name, data)
	if err != nil {
		return nil, scenarios.Scenario{}, fmt.Errorf("derived scenario: %w", err)
	}
	return data, sc, nil
}

// WriteDemand writes the derived demand as CSV, one row per minute.
func WriteDemand(w io.Writer, demand []DemandPoint) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"time", "busy_cores", "app_cores", "pending_pods", "memory_percent", "workers", "saturated", "rps"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, d := range demand {
		if err := cw.Write([]string{d.Time.Format(time.RFC3339), f(d.BusyCores), f(d.AppCores), f(d.Pending),
			f(d.MemoryPercent), strconv.Itoa(d.Workers), strconv.FormatBool(d.Saturated), f(d.RPS)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
