// Package reports turns simulation results into cost and latency reports: one row of
// measures per policy (comparison.json), plots (PNG and SVG, gonum.org/v1/plot), a
// self-contained report.html with the SVGs inline, and report.md. The measures follow
// docs/measures.md; the autoscaler's own AWS cost follows docs/costs.md.
//
// Everything here is a function of the results: the same seed and inputs give the same
// bytes.
package reports

import (
	"fmt"
	"math"
	"time"

	"github.com/smartscale/smartscale/sim/world"
)

// Reference policy names the comparison is relative to (see sim/baseline).
const (
	RefStaticMax = "static-max"
	RefStatic5   = "static-5"
	RefOracle    = "oracle"
)

// Row is one policy's measures: an object of comparison.json.
type Row struct {
	Policy                      string        `json:"policy"`
	CostUSD                     float64       `json:"cost_usd"`
	NodeHours                   float64       `json:"node_hours"`
	SLOViolationMinutes         int           `json:"slo_violation_minutes"`
	UnderprovisionedNodeSeconds float64       `json:"underprovisioned_node_seconds"`
	Latency                     world.Latency `json:"latency_ms"`
	ScaleUps                    int           `json:"scale_ups"`
	ScaleDowns                  int           `json:"scale_downs"`
	// SavingsVsStaticMaxPct is 100 * (1 - cost / static-max's cost); null without static-max.
	SavingsVsStaticMaxPct *float64 `json:"savings_vs_static_max_pct"`
	// CostVsOracle is cost / the oracle's cost; null without the oracle.
	CostVsOracle *float64 `json:"cost_vs_oracle"`
	// TimeToCapacitySeconds is the longest time to capacity over the run's demand steps.
	TimeToCapacitySeconds float64 `json:"time_to_capacity_seconds"`

	SavingsVsStatic5Pct *float64 `json:"savings_vs_static_5_pct"`
	CostPerMonthUSD     float64  `json:"cost_per_month_usd"`
	WorkerCostUSD       float64  `json:"worker_cost_usd"`
	PendingPodSeconds   float64  `json:"pending_pod_seconds"`
	DroppedPercent      float64  `json:"dropped_percent"`
	Flaps               int      `json:"flaps"`
	DemandSteps         int      `json:"demand_steps"`
	MeanTimeToCapacityS float64  `json:"mean_time_to_capacity_seconds"`
	MinWorkers          int      `json:"min_workers"`
	MaxWorkers          int      `json:"max_workers"`
	// Spot measures (spot.go): written only for runs with spot.
	SpotSharePct         *float64 `json:"spot_share_pct,omitempty"`
	SpotSavingsPct       *float64 `json:"spot_savings_pct,omitempty"`
	Interruptions        *int     `json:"interruptions,omitempty"`
	SLOMinutesVsOnDemand *int     `json:"slo_minutes_vs_on_demand,omitempty"`
}

// Compare returns one row per result, in the results' order, with the savings and the
// oracle multiple filled in when the reference policies are among the results.
func Compare(results []*world.Result) []Row {
	cost := map[string]float64{}
	for _, r := range results {
		cost[r.Summary.Policy] = r.Summary.CostUSD
	}
	rel := func(policy string, c float64, savings bool) *float64 {
		ref, ok := cost[policy]
		if !ok || ref <= 0 {
			return nil
		}
		v := c / ref
		if savings {
			v = 100 * (1 - v)
		}
		v = round(v, 4)
		return &v
	}
	rows := make([]Row, 0, len(results))
	for _, r := range results {
		s := r.Summary
		ttc := TimeToCapacity(r.Timeline)
		row := Row{Policy: s.Policy, CostUSD: s.CostUSD, NodeHours: s.NodeHours,
			SLOViolationMinutes: s.SLOViolationMinutes, UnderprovisionedNodeSeconds: s.UnderprovisionedNodeSeconds,
			Latency: s.Latency, ScaleUps: s.ScaleUps, ScaleDowns: s.ScaleDowns,
			SavingsVsStaticMaxPct: rel(RefStaticMax, s.CostUSD, true), CostVsOracle: rel(RefOracle, s.CostUSD, false),
			SavingsVsStatic5Pct:   rel(RefStatic5, s.CostUSD, true),
			TimeToCapacitySeconds: ttc.Max.Seconds(), MeanTimeToCapacityS: round(ttc.Mean.Seconds(), 1), DemandSteps: ttc.Steps,
			CostPerMonthUSD: s.CostPerMonthUSD, WorkerCostUSD: s.WorkerCostUSD, PendingPodSeconds: s.PendingPodSeconds,
			Flaps: s.Flaps, MinWorkers: s.MinWorkers, MaxWorkers: s.MaxWorkers}
		if s.TotalRequests > 0 {
			row.DroppedPercent = round(100*s.DroppedRequests/s.TotalRequests, 4)
		}
		rows = append(rows, row)
	}
	spotRows(rows, results)
	return rows
}

// Capacity is the time-to-capacity measure of a run.
type Capacity struct {
	Steps int           // demand steps that found the ready workers short
	Max   time.Duration // longest time from such a step to ready capacity covering it
	Mean  time.Duration
}

// TimeToCapacity measures, on the per-minute timeline, each demand step: a minute whose
// demand (in nodes) is above the previous minute's (the first minute: above zero) and above
// the Ready workers. Its time to
// capacity runs from that minute to the first minute whose Ready workers cover the step's
// demand; a step that is never covered ends when the demand falls back under the step's
// level or the run ends (the shortfall lasted that long). Steps already covered count 0 and
// are not counted in Steps. Resolution: one minute.
func TimeToCapacity(rows []world.Row) Capacity {
	var c Capacity
	var total time.Duration
	for i := range rows {
		d, prev := rows[i].DemandNodes, 0 // the run's start is a step from no load
		if i > 0 {
			prev = rows[i-1].DemandNodes
		}
		if d <= prev || rows[i].ReadyWorkers >= d {
			continue
		}
		j := i
		for j < len(rows) && rows[j].ReadyWorkers < d && rows[j].DemandNodes >= d {
			j++
		}
		end := rows[len(rows)-1].Time.Add(time.Minute)
		if j < len(rows) {
			end = rows[j].Time
		}
		t := end.Sub(rows[i].Time)
		c.Steps++
		total += t
		c.Max = max(c.Max, t)
	}
	if c.Steps > 0 {
		c.Mean = total / time.Duration(c.Steps)
	}
	return c
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func fmtf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
