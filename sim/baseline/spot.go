package baseline

import (
	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
)

// OnDemandOnly names the reference row of a run whose policy uses spot: the same policy
// with spot off, so the report shows what spot saves and what it costs in SLO.
const OnDemandOnly = "on-demand-only"

// SpotReference returns the on-demand-only row for a policy that uses spot, else nothing.
func SpotReference(run engine.Policy) []Baseline {
	if !run.UsesSpot() {
		return nil
	}
	return []Baseline{{Name: OnDemandOnly,
		Description: "SmartScale's engine with the run's policy and spot off (spot_percent 0): the reference of the spot saving",
		Initial:     func(scenarios.Scenario, engine.Policy) int { return -1 },
		Policy: func(p engine.Policy) engine.Policy {
			p.SpotPercent = 0
			return p
		}}}
}
