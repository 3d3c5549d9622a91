package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// Report is one scenario's report: the runs of one or more policies on the same seed.
type Report struct {
	Scenario scenarios.Scenario
	Seed     uint64
	Policy   engine.Policy // SmartScale's policy (its thresholds are drawn)
	// Command reproduces the report, e.g. "go run ./sim -scenario flash-sale -seed 1 -compare".
	Command string
	// Results are the runs, the primary policy first: its timeline gets the workers and usage
	// charts; every policy gets a workers chart when there are several.
	Results []*world.Result
	// Self is the autoscaler's own AWS usage (zero value: DefaultSelfUsage).
	Self SelfUsage
	// Notes describe the policies by name (shown under the table).
	Notes map[string]string
}

// Files written by Write, besides the plots (plots/<name>.png and .svg).
const (
	FileHTML       = "report.html"
	FileMarkdown   = "report.md"
	FileComparison = "comparison.json"
)

// Built is a rendered report.
type Built struct {
	Rows      []Row
	Charts    []Chart
	HTML      []byte
	Markdown  []byte
	JSON      []byte
	SelfLines []SelfCostLine
	SelfTotal float64
}

// Build renders the report in memory.
func Build(r Report) (*Built, error) {
	if len(r.Results) == 0 {
		return nil, errors.New("report: no results")
	}
	if r.Self.Every == 0 {
		r.Self = DefaultSelfUsage()
	}
	b := &Built{Rows: Compare(r.Results)}
	b.SelfLines, b.SelfTotal = SelfCost(r.Self)
	dur := r.Scenario.Duration()
	primary := r.Results[0]
	type spec struct {
		name string
		make func() (*plot.Plot, error)
	}
	specs := []spec{
		{"workers", func() (*plot.Plot, error) { return WorkersChart(primary, dur) }},
		{"cpu-memory", func() (*plot.Plot, error) { return UsageChart(primary, dur, r.Policy) }},
		{"pending-pods", func() (*plot.Plot, error) { return PendingChart(r.Results, dur) }},
		{"p95-latency", func() (*plot.Plot, error) { return LatencyChart(r.Results, dur, r.Scenario.Sim.SLO.P95Ms) }},
		{"cumulative-cost", func() (*plot.Plot, error) { return CostChart(r.Results, dur) }},
		{"pareto", func() (*plot.Plot, error) { return ParetoChart(b.Rows, r.Scenario.Name) }},
	}
	for _, res := range r.Results[1:] {
		specs = append(specs, spec{"workers-" + res.Summary.Policy, func() (*plot.Plot, error) { return WorkersChart(res, dur) }})
	}
	var fonts string
	for i, s := range specs {
		p, err := s.make()
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", s.name, err)
		}
		ch, err := Render(s.name, p)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if fonts, err = fontFaces(p); err != nil {
				return nil, err
			}
		}
		b.Charts = append(b.Charts, ch)
	}
	var err error
	if b.JSON, err = json.MarshalIndent(b.Rows, "", "  "); err != nil {
		return nil, err
	}
	b.JSON = append(b.JSON, '\n')
	if b.HTML, err = renderHTML(r, b, fonts); err != nil {
		return nil, err
	}
	b.Markdown = renderMarkdown(r, b)
	return b, nil
}

// Write renders the report into dir: report.html, report.md, plots/*.png and *.svg, and
// comparison.json when there are several policies.
func Write(dir string, r Report) (*Built, error) {
	b, err := Build(r)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		return nil, err
	}
	files := map[string][]byte{FileHTML: b.HTML, FileMarkdown: b.Markdown}
	if len(r.Results) > 1 {
		files[FileComparison] = b.JSON
	}
	for _, c := range b.Charts {
		files[filepath.Join("plots", c.Name+".png")] = c.PNG
		files[filepath.Join("plots", c.Name+".svg")] = c.SVG
	}
	var errs []error
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return b, errors.Join(errs...)
}

// durationText words a duration for people: "1h40m", "24h".
func durationText(d time.Duration) string {
	s := d.Round(time.Second).String()
	if len(s) > 4 && s[len(s)-4:] == "m0s" {
		s = s[:len(s)-2]
	}
	if len(s) > 4 && s[len(s)-4:] == "h0m" {
		s = s[:len(s)-2]
	}
	return s
}

func fmtMoney(v float64) string {
	if v < 10 {
		return fmt.Sprintf("$%.4f", v)
	}
	return fmt.Sprintf("$%.2f", v)
}

func fmtPtr(v *float64, format string) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf(format, *v)
}
