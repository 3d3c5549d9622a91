package reports

import (
	"fmt"

	"github.com/smartscale/smartscale/sim/world"
)

// RefOnDemand is the reference row of a spot run: the same policy with spot off
// (sim/baseline.OnDemandOnly).
const RefOnDemand = "on-demand-only"

// spotRows fills the spot measures of the rows whose run used spot: the spot share of the
// node-hours, the interruptions, and, beside the on-demand-only row, the saving on the
// workers' cost and the SLO minutes more or fewer.
func spotRows(rows []Row, results []*world.Result) {
	var ref *world.Summary
	for _, r := range results {
		if r.Summary.Policy == RefOnDemand {
			ref = &r.Summary
		}
	}
	for i, r := range results {
		s := r.Summary
		if s.SpotSharePct == nil {
			continue
		}
		rows[i].SpotSharePct, rows[i].Interruptions = s.SpotSharePct, s.Interruptions
		if ref != nil && ref.WorkerCostUSD > 0 {
			v := round(100*(1-s.WorkerCostUSD/ref.WorkerCostUSD), 4)
			d := s.SLOViolationMinutes - ref.SLOViolationMinutes
			rows[i].SpotSavingsPct, rows[i].SLOMinutesVsOnDemand = &v, &d
		}
	}
}

// spotColumns are the report's spot columns, shown only when a row used spot.
func spotColumns(rows []Row) []column {
	any := false
	for _, r := range rows {
		any = any || r.SpotSharePct != nil
	}
	if !any {
		return nil
	}
	opt := func(v *int, format string) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf(format, *v)
	}
	return []column{
		{"workers' cost", func(r Row) string { return fmtMoney(r.WorkerCostUSD) }},
		{"spot share", func(r Row) string { return fmtPtr(r.SpotSharePct, "%.1f%%") }},
		{"workers' saving vs on-demand-only", func(r Row) string { return fmtPtr(r.SpotSavingsPct, "%.1f%%") }},
		{"SLO min vs on-demand-only", func(r Row) string { return opt(r.SLOMinutesVsOnDemand, "%+d") }},
		{"interruptions", func(r Row) string { return opt(r.Interruptions, "%d") }},
	}
}
