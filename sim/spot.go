package main

import (
	"fmt"
	"io"

	"github.com/smartscale/smartscale/reports"
	"github.com/smartscale/smartscale/sim/world"
)

// spotText is the summary's spot line, "" for a run without spot.
func spotText(s world.Summary) string {
	if s.SpotSharePct == nil {
		return ""
	}
	return fmt.Sprintf("%.1f%% of node-hours (%.2f spot, %.2f on-demand; spot cost $%.4f), %d interruptions, %d notices",
		*s.SpotSharePct, deref(s.SpotNodeHours), deref(s.OnDemandNodeHours), deref(s.SpotCostUSD), derefInt(s.Interruptions), derefInt(s.Notices))
}

// printSpotComparison prints what spot saved against the on-demand-only row, when there is
// one.
func printSpotComparison(w io.Writer, rows []reports.Row) {
	var ref *reports.Row
	for i := range rows {
		if rows[i].Policy == reports.RefOnDemand {
			ref = &rows[i]
		}
	}
	for _, r := range rows {
		if r.SpotSavingsPct == nil || ref == nil {
			continue
		}
		fmt.Fprintf(w, "spot: %s's workers cost $%.4f against $%.4f on-demand only (%.1f%% saved, %.1f%% spot), SLO minutes %d vs %d, %d interruptions\n",
			r.Policy, r.WorkerCostUSD, ref.WorkerCostUSD, *r.SpotSavingsPct, deref(r.SpotSharePct), r.SLOViolationMinutes,
			ref.SLOViolationMinutes, derefInt(r.Interruptions))
	}
}

func deref(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

func derefInt(v *int) int {
	if v == nil {
		return 0
	}
	return *v
}
