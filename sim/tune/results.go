package tune

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/baseline"
)

// Measures are a unit's figures on one scenario, as means over the seeds (per run), or in
// total: the sum over the scenarios of those means (one run of each scenario), with the
// worst p95 and the worst seed's SLO minutes.
type Measures struct {
	CostUSD       float64 `json:"cost_usd"`
	SLOMinutes    float64 `json:"slo_minutes"`
	SLOMinutesMax int     `json:"slo_minutes_max"`
	P95Ms         float64 `json:"p95_ms"`
	Flaps         float64 `json:"flaps"`
	// XOracle is the cost over the oracle's on the same scenarios and seeds (null: no oracle
	// cost to divide by).
	XOracle *float64 `json:"x_oracle"`
}

// ScenarioMeasures are Measures on one scenario.
type ScenarioMeasures struct {
	Scenario string `json:"scenario"`
	Measures
}

// Line is one unit's result: a line of points.jsonl, an element of frontier.json and
// references.json.
type Line struct {
	Point     *int   `json:"point,omitempty"`
	Reference string `json:"reference,omitempty"`
	// Policy is the point's overrides of the base policy (the base reference: {}).
	Policy json.RawMessage `json:"policy,omitempty"`
	// Frontier: no other point is cheaper in total without more SLO minutes, or has fewer
	// SLO minutes without costing more (equal points: the first).
	Frontier bool `json:"frontier"`
	// WithinSLO: at most the budget's SLO minutes per run on every scenario; WithinFlaps: at
	// most -max-flaps flaps per run on every scenario. The recommendation needs both.
	WithinSLO   bool               `json:"within_slo"`
	WithinFlaps bool               `json:"within_flaps"`
	Scenarios   []ScenarioMeasures `json:"scenarios"`
	Total       Measures           `json:"total"`
}

// Summary is a sweep's result.
type Summary struct {
	Plan       *Plan
	Points     []Line // the shard's points, by index
	References []Line // in References() order
	Frontier   []int  // indexes into Points, cheapest first
	Best       int    // index into Points of the recommendation, -1 when none is within the SLO budget
}

// BestLine returns the recommended point's line, if any.
func (s *Summary) BestLine() (Line, bool) {
	if s.Best < 0 {
		return Line{}, false
	}
	return s.Points[s.Best], true
}

// Reference returns a reference's line.
func (s *Summary) Reference(name string) (Line, bool) {
	for _, l := range s.References {
		if l.Reference == name {
			return l, true
		}
	}
	return Line{}, false
}

// Summarize computes every unit's measures from the runs, the frontier and the
// recommendation. Every run of the shard's units must be there.
func Summarize(pl *Plan, runs []Run) (*Summary, error) {
	byKey := map[runKey]Run{}
	for _, r := range runs {
		byKey[r.key()] = r
	}
	get := func(unit string) ([][]Run, error) {
		out := make([][]Run, len(pl.Spec.Scenarios))
		for s, sc := range pl.Spec.Scenarios {
			for _, seed := range pl.Spec.Seeds {
				r, ok := byKey[runKey{unit, sc.Scenario.Name, seed}]
				if !ok {
					return nil, fmt.Errorf("no run of %s on %s seed %d", unit, sc.Scenario.Name, seed)
				}
				out[s] = append(out[s], r)
			}
		}
		return out, nil
	}
	oracle, err := get(baseline.Oracle)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Plan: pl, Best: -1}
	line := func(unit string) (Line, error) {
		rs, err := get(unit)
		if err != nil {
			return Line{}, err
		}
		return measure(pl, rs, oracle), nil
	}
	for _, ref := range References() {
		l, err := line(ref)
		if err != nil {
			return nil, err
		}
		l.Reference = ref
		if ref == RefBase {
			l.Policy = json.RawMessage("{}")
		}
		sum.References = append(sum.References, l)
	}
	for _, i := range pl.MinePoints() {
		l, err := line(PointUnit(i))
		if err != nil {
			return nil, err
		}
		l.Point, l.Policy = &pl.Points[i].Index, pl.Points[i].Doc
		sum.Points = append(sum.Points, l)
	}
	sum.Frontier = frontier(sum.Points)
	for _, i := range sum.Frontier {
		sum.Points[i].Frontier = true
	}
	for i, l := range sum.Points {
		if !l.WithinSLO || !l.WithinFlaps {
			continue
		}
		if b := sum.Best; b < 0 || better(l, sum.Points[b]) {
			sum.Best = i
		}
	}
	return sum, nil
}

// better: cheaper in total, then fewer SLO minutes (then the lower index, by the caller's order).
func better(a, b Line) bool {
	if a.Total.CostUSD != b.Total.CostUSD {
		return a.Total.CostUSD < b.Total.CostUSD
	}
	return a.Total.SLOMinutes < b.Total.SLOMinutes
}

func measure(pl *Plan, rs, oracle [][]Run) Line {
	l := Line{WithinSLO: true, WithinFlaps: true}
	var tot Measures
	var totOracle float64
	for s, sc := range pl.Spec.Scenarios {
		var m Measures
		var orc float64
		n := float64(len(rs[s]))
		for k, r := range rs[s] {
			m.CostUSD += r.CostUSD
			m.SLOMinutes += float64(r.SLOMinutes)
			m.SLOMinutesMax = max(m.SLOMinutesMax, r.SLOMinutes)
			m.P95Ms += r.P95Ms
			m.Flaps += float64(r.Flaps)
			orc += oracle[s][k].CostUSD
		}
		m.CostUSD, m.SLOMinutes, m.P95Ms, m.Flaps = round(m.CostUSD/n, 6), round(m.SLOMinutes/n, 6), round(m.P95Ms/n, 6), round(m.Flaps/n, 6)
		orc = round(orc/n, 6)
		m.XOracle = ratio(m.CostUSD, orc)
		if m.SLOMinutes > pl.Spec.SLOMinutes {
			l.WithinSLO = false
		}
		if pl.Spec.MaxFlaps >= 0 && m.Flaps > pl.Spec.MaxFlaps {
			l.WithinFlaps = false
		}
		l.Scenarios = append(l.Scenarios, ScenarioMeasures{Scenario: sc.Scenario.Name, Measures: m})
		tot.CostUSD += m.CostUSD
		tot.SLOMinutes += m.SLOMinutes
		tot.SLOMinutesMax = max(tot.SLOMinutesMax, m.SLOMinutesMax)
		tot.P95Ms = max(tot.P95Ms, m.P95Ms)
		tot.Flaps += m.Flaps
		totOracle += orc
	}
	tot.CostUSD, tot.SLOMinutes, tot.Flaps = round(tot.CostUSD, 6), round(tot.SLOMinutes, 6), round(tot.Flaps, 6)
	tot.XOracle = ratio(tot.CostUSD, round(totOracle, 6))
	l.Total = tot
	return l
}

func ratio(a, b float64) *float64 {
	if b <= 0 {
		return nil
	}
	v := round(a/b, 4)
	return &v
}

// frontier returns the non-dominated points on total cost and total SLO minutes, cheapest
// first.
func frontier(pts []Line) []int {
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(pts[a].Total.CostUSD, pts[b].Total.CostUSD), cmp.Compare(pts[a].Total.SLOMinutes, pts[b].Total.SLOMinutes))
	})
	var out []int
	best := math.Inf(1)
	for _, i := range idx {
		if pts[i].Total.SLOMinutes < best {
			best = pts[i].Total.SLOMinutes
			out = append(out, i)
		}
	}
	return out
}

// BestPolicy is the recommended point's policy.
func (s *Summary) BestPolicy() (engine.Policy, bool) {
	l, ok := s.BestLine()
	if !ok {
		return engine.Policy{}, false
	}
	return s.Plan.Policies[*l.Point], true
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
