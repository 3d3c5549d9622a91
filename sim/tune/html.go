package tune

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"

	"github.com/smartscale/smartscale/reports"
)

type htmlRow struct {
	Name   string
	Policy string
	Cells  []string
}

type htmlData struct {
	Title, Intro, Command, Budget string
	Scenarios                     []htmlScenario
	Space                         []htmlDim
	Best                          *htmlRow
	BestText                      string
	NoBest                        string
	ChartSVG                      template.URL
	Head                          []string
	Frontier, References          []htmlRow
}

type htmlScenario struct{ Name, Duration, Source string }
type htmlDim struct{ Key, Values string }

// reportHTML is report.html: the sweep, the recommendation, the Pareto plot (standalone SVG
// inline as a data URI, so the page is self-contained) and the frontier and reference tables.
func reportHTML(sum *Summary, chart reports.Chart) ([]byte, error) {
	pl := sum.Plan
	d := htmlData{
		Title:    fmt.Sprintf("SmartScale sweep: %d points", len(sum.Points)),
		Command:  pl.Spec.Command,
		Budget:   BudgetText(pl.Spec),
		ChartSVG: template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(chart.SVG)),
	}
	mode := fmt.Sprintf("the full grid of the space (%d points)", len(pl.Points))
	if pl.Mode == ModeLHS {
		n, _ := pl.Space.GridSize()
		grid := fmt.Sprint(n)
		if n == 0 {
			grid = "too many"
		}
		mode = fmt.Sprintf("a Latin-hypercube sample of %d points (sample seed %d; the grid has %s)", len(pl.Points), pl.Spec.SampleSeed, grid)
	}
	shard := ""
	if pl.Spec.Shard.Count > 1 {
		shard = fmt.Sprintf(" This is shard %s: the points whose index is %d modulo %d; `sim tune merge` joins the shards.",
			pl.Spec.Shard, pl.Spec.Shard.Index, pl.Spec.Shard.Count)
	}
	d.Intro = fmt.Sprintf("Every point of %s ran on every scenario with seeds %s, beside the base policy, the baselines and the oracle on the same scenarios and seeds. Figures per scenario are means per run over the seeds; totals add the scenarios up (one run of each).%s",
		mode, seedList(pl.Spec.Seeds), shard)
	for _, sc := range pl.Spec.Scenarios {
		d.Scenarios = append(d.Scenarios, htmlScenario{sc.Scenario.Name, sc.Scenario.Duration().String(), sc.Source})
	}
	for _, dm := range pl.Space.Dims {
		d.Space = append(d.Space, htmlDim{dm.Key, dm.Describe()})
	}
	d.Head = []string{"", "policy (over the base)", "total cost USD", "SLO min", "worst seed SLO min", "worst p95 ms", "flaps", "x oracle"}
	for _, sc := range pl.Spec.Scenarios {
		d.Head = append(d.Head, sc.Scenario.Name+" SLO min", sc.Scenario.Name+" USD")
	}
	for _, i := range sum.Frontier {
		d.Frontier = append(d.Frontier, row(fmt.Sprintf("point %d", *sum.Points[i].Point), sum.Points[i]))
	}
	for _, r := range sum.References {
		d.References = append(d.References, row(r.Reference, r))
	}
	if l, ok := sum.BestLine(); ok {
		r := row(fmt.Sprintf("point %d", *l.Point), l)
		d.Best = &r
		if b, ok := sum.Reference(RefBase); ok {
			d.BestText = versus(l, b)
		}
	} else {
		d.NoBest = fmt.Sprintf("No point has %s, so there is no best-policy.json: the frontier below shows what each extra SLO minute saves. Raise -slo-minutes (or -max-flaps) or widen the space.", BudgetText(pl.Spec))
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// versus compares the recommendation with the base policy.
func versus(l, base Line) string {
	s := fmt.Sprintf("Against the base policy: $%.4f instead of $%.4f in total", l.Total.CostUSD, base.Total.CostUSD)
	if base.Total.CostUSD > 0 {
		s += fmt.Sprintf(" (%+.1f%%)", 100*(l.Total.CostUSD/base.Total.CostUSD-1))
	}
	return s + fmt.Sprintf(", %g SLO-violation minutes instead of %g.", l.Total.SLOMinutes, base.Total.SLOMinutes)
}

// BudgetText says what the recommendation must meet.
func BudgetText(s Spec) string {
	t := fmt.Sprintf("at most %g SLO-violation minutes", s.SLOMinutes)
	if s.MaxFlaps >= 0 {
		t += fmt.Sprintf(" and %g flaps", s.MaxFlaps)
	}
	return t + " per run on every scenario"
}

func row(name string, l Line) htmlRow {
	t := l.Total
	r := htmlRow{Name: name, Policy: string(l.Policy), Cells: []string{fmt.Sprintf("%.4f", t.CostUSD), fmt.Sprintf("%g", t.SLOMinutes),
		fmt.Sprint(t.SLOMinutesMax), fmt.Sprintf("%.0f", t.P95Ms), fmt.Sprintf("%g", t.Flaps), ptrText(t.XOracle)}}
	for _, s := range l.Scenarios {
		r.Cells = append(r.Cells, fmt.Sprintf("%g", s.SLOMinutes), fmt.Sprintf("%.4f", s.CostUSD))
	}
	return r
}

func ptrText(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *v)
}

func seedList(seeds []uint64) string {
	var s []string
	for _, v := range seeds {
		s = append(s, fmt.Sprint(v))
	}
	return strings.Join(s, ", ")
}

var tmpl = template.Must(template.New("tune").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: "Liberation Serif", serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child, td.policy { text-align: left; }
td.policy code { white-space: pre-wrap; word-break: break-all; }
code { background: #f3f3f3; padding: 0.1em 0.3em; }
img.chart { width: 100%; height: auto; }
figure { margin: 1.5em 0; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Intro}}</p>
<p>Reproduce with <code>{{.Command}}</code> (space.json and sweep.json are beside this report; the same inputs give the same bytes).</p>
<table>
<tr><th>scenario</th><th>simulated</th><th>from</th></tr>
{{range .Scenarios}}<tr><td>{{.Name}}</td><td>{{.Duration}}</td><td>{{.Source}}</td></tr>
{{end}}</table>
<table>
<tr><th>key</th><th>values</th></tr>
{{range .Space}}<tr><td>{{.Key}}</td><td class="policy">{{.Values}}</td></tr>
{{end}}</table>

<h2>Recommendation</h2>
{{if .Best}}<p>The cheapest point with {{.Budget}} is
<b>{{.Best.Name}}</b>: <code>{{.Best.Policy}}</code>. {{.BestText}} Its full policy is <code>best-policy.json</code>:
<code>go run ./sim -scenario flash-sale -policy best-policy.json -compare</code> shows it on one scenario, and the same
file is the Lambda's <code>POLICY_JSON</code> (the Pulumi stack's policy setting).</p>
<table>
<tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
<tr><td>{{.Best.Name}}</td><td class="policy"><code>{{.Best.Policy}}</code></td>{{range .Best.Cells}}<td>{{.}}</td>{{end}}</tr>
</table>
{{else}}<p>{{.NoBest}}</p>
{{end}}
<h2>Cost against SLO minutes</h2>
<figure id="pareto">
<img class="chart" alt="Pareto plot of the sweep" src="{{.ChartSVG}}">
<figcaption>Every point (grey), the frontier (blue), the references (labelled) and the recommendation (circled)
(<a href="plots/pareto.png">PNG</a>, <a href="plots/pareto.svg">SVG</a>).</figcaption>
</figure>

<h2>Frontier</h2>
<p>The points no other point beats on both total cost and total SLO minutes, cheapest first.</p>
<table>
<tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Frontier}}<tr><td>{{.Name}}</td><td class="policy"><code>{{.Policy}}</code></td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>

<h2>References</h2>
<p>The base policy through the engine, the static fleets, the cluster-autoscaler-style policy and the clairvoyant
oracle (docs/measures.md), on the same scenarios and seeds.</p>
<table>
<tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .References}}<tr><td>{{.Name}}</td><td class="policy"><code>{{.Policy}}</code></td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<p>Every point's figures: points.jsonl and points.csv; the runs themselves: runs.jsonl.</p>
</body>
</html>
`))
