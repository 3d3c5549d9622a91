package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
)

// column is one measure of the table, shared by HTML and Markdown.
type column struct {
	head string
	cell func(Row) string
}

func columns() []column {
	return []column{
		{"policy", func(r Row) string { return r.Policy }},
		{"cost", func(r Row) string { return fmtMoney(r.CostUSD) }},
		{"per month", func(r Row) string { return fmt.Sprintf("$%.2f", r.CostPerMonthUSD) }},
		{"node-hours", func(r Row) string { return fmt.Sprintf("%.2f", r.NodeHours) }},
		{"savings vs static-max", func(r Row) string { return fmtPtr(r.SavingsVsStaticMaxPct, "%.1f%%") }},
		{"savings vs static-5", func(r Row) string { return fmtPtr(r.SavingsVsStatic5Pct, "%.1f%%") }},
		{"cost / oracle", func(r Row) string { return fmtPtr(r.CostVsOracle, "%.3fx") }},
		{"SLO-violation min", func(r Row) string { return fmt.Sprintf("%d", r.SLOViolationMinutes) }},
		{"under-prov. node-s", func(r Row) string { return fmt.Sprintf("%.0f", r.UnderprovisionedNodeSeconds) }},
		{"pending pod-s", func(r Row) string { return fmt.Sprintf("%.0f", r.PendingPodSeconds) }},
		{"dropped", func(r Row) string { return fmt.Sprintf("%.2f%%", r.DroppedPercent) }},
		{"p50 / p95 / p99 ms", func(r Row) string {
			return fmt.Sprintf("%.0f / %.0f / %.0f", r.Latency.P50, r.Latency.P95, r.Latency.P99)
		}},
		{"time to capacity max / mean", func(r Row) string {
			if r.DemandSteps == 0 {
				return "0 s (no shortfall)"
			}
			return fmt.Sprintf("%.0f / %.0f s (%d %s)", r.TimeToCapacitySeconds, r.MeanTimeToCapacityS, r.DemandSteps, plural(r.DemandSteps, "step"))
		}},
		{"ups / downs / flaps", func(r Row) string { return fmt.Sprintf("%d / %d / %d", r.ScaleUps, r.ScaleDowns, r.Flaps) }},
		{"workers min–max", func(r Row) string { return fmt.Sprintf("%d–%d", r.MinWorkers, r.MaxWorkers) }},
	}
}

type htmlChart struct {
	Name, Title string
	SVG         template.HTML
}

type htmlData struct {
	Title, Scenario, Description, Duration, Command, Policy string
	Seed                                                    uint64
	Peak, SLOms, SLODrop                                    float64
	Fonts                                                   template.CSS
	Head                                                    []string
	Rows                                                    [][]string
	Self                                                    []SelfCostLine
	SelfTotal, SelfRun, PrimaryMonth                        float64
	Primary                                                 string
	Charts                                                  []htmlChart
	Single                                                  bool
	Notes                                                   []note
}

type note struct{ Policy, Text string }

func notes(r Report, rows []Row) []note {
	var out []note
	for _, row := range rows {
		if t, ok := r.Notes[row.Policy]; ok {
			out = append(out, note{row.Policy, t})
		}
	}
	return out
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
{{.Fonts}}
body { font-family: "Liberation Serif", serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
code { background: #f3f3f3; padding: 0.1em 0.3em; }
svg.chart { width: 100%; height: auto; }
figure { margin: 1.5em 0; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Description}}</p>
<p>Scenario <b>{{.Scenario}}</b>, {{.Duration}} simulated, peak {{printf "%.0f" .Peak}} requests/s, seed {{.Seed}}.
SLO: p95 &le; {{.SLOms}} ms and at most {{.SLODrop}}% of requests dropped per minute. Policy: {{.Policy}}.</p>
<p>Reproduce with <code>{{.Command}}</code> (the same seed and inputs give the same bytes).</p>

<h2>Measures per policy</h2>
<table>
<tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{if .Notes}}<ul>
{{range .Notes}}<li><b>{{.Policy}}</b>: {{.Text}}</li>
{{end}}</ul>
{{end}}{{if .Single}}<p>Run with <code>-compare</code> for the baselines, the savings and the oracle multiple.</p>{{end}}
<p>Cost is workers (per-second billing, 60 s minimum, running to terminated) plus the always-on master;
"per month" extrapolates the run's average rate to 30 days. Definitions: docs/measures.md in the repository.</p>

<h2>The autoscaler's own AWS cost</h2>
<p>{{.Primary}} runs as a Lambda every 2 minutes with DynamoDB state and CloudWatch logs and metrics. Estimated
monthly cost from the unit prices and usage estimates in docs/costs.md:</p>
<table>
<tr><th>service</th><th>basis (30 days)</th><th>USD / month</th></tr>
{{range .Self}}<tr><td>{{.Service}}</td><td>{{.Basis}}</td><td>{{printf "%.4f" .USD}}</td></tr>
{{end}}<tr><th>total</th><th></th><th>{{printf "%.4f" .SelfTotal}}</th></tr>
</table>
<p>Over this run: ${{printf "%.4f" .SelfRun}}. {{.Primary}}'s cluster at this run's rate plus its own cost:
${{printf "%.2f" .PrimaryMonth}} per month.</p>

<h2>Charts</h2>
{{range .Charts}}<figure id="{{.Name}}">
{{.SVG}}
<figcaption>{{.Title}} (<a href="plots/{{.Name}}.png">PNG</a>, <a href="plots/{{.Name}}.svg">SVG</a>)</figcaption>
</figure>
{{end}}
</body>
</html>
`))

func tableRows(rows []Row) (head []string, cells [][]string) {
	cols := append(columns(), spotColumns(rows)...)
	for _, c := range cols {
		head = append(head, c.head)
	}
	for _, r := range rows {
		var line []string
		for _, c := range cols {
			line = append(line, c.cell(r))
		}
		cells = append(cells, line)
	}
	return head, cells
}

func renderHTML(r Report, b *Built, fonts string) ([]byte, error) {
	d := htmlData{
		Title:    fmt.Sprintf("SmartScale report: %s, seed %d", r.Scenario.Name, r.Seed),
		Scenario: r.Scenario.Name, Description: r.Scenario.Description, Duration: durationText(r.Scenario.Duration()),
		Command: r.Command, Seed: r.Seed, Peak: r.Scenario.PeakRate(),
		SLOms: r.Scenario.Sim.SLO.P95Ms, SLODrop: r.Scenario.Sim.SLO.MaxDropPercent,
		Policy: policyText(r), Fonts: template.CSS(fonts),
		Self: b.SelfLines, SelfTotal: b.SelfTotal, Primary: b.Rows[0].Policy, Single: len(b.Rows) == 1,
	}
	d.Head, d.Rows = tableRows(b.Rows)
	d.Notes = notes(r, b.Rows)
	d.SelfRun = b.SelfTotal * r.Scenario.Duration().Seconds() / monthSeconds
	d.PrimaryMonth = b.Rows[0].CostPerMonthUSD + b.SelfTotal
	for _, c := range b.Charts {
		d.Charts = append(d.Charts, htmlChart{Name: c.Name, Title: c.Title, SVG: template.HTML(c.Inline)})
	}
	var buf bytes.Buffer
	if err := htmlTmpl.Execute(&buf, d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func policyText(r Report) string {
	p := r.Policy
	return fmt.Sprintf("%d–%d workers; up on CPU > %g%% for %v, pods pending for %v or memory > %g%%; down on CPU < %g%% for %v and memory < %g%%; cooldowns %v up, %v down",
		p.MinWorkers, p.MaxWorkers, p.ScaleUpCPUPercent, p.ScaleUpSustain, p.ScaleUpSustain, p.ScaleUpMemoryPercent,
		p.ScaleDownCPUPercent, p.ScaleDownSustain, p.ScaleDownMemoryPercent, p.ScaleUpCooldown, p.ScaleDownCooldown)
}

func renderMarkdown(r Report, b *Built) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, "# SmartScale report: %s, seed %d\n\n", r.Scenario.Name, r.Seed)
	fmt.Fprintf(&s, "%s\n\n%s simulated, peak %.0f requests/s. SLO: p95 <= %g ms, <= %g%% dropped per minute.\n\n",
		r.Scenario.Description, durationText(r.Scenario.Duration()), r.Scenario.PeakRate(), r.Scenario.Sim.SLO.P95Ms, r.Scenario.Sim.SLO.MaxDropPercent)
	fmt.Fprintf(&s, "Reproduce: `%s`\n\n", r.Command)
	head, rows := tableRows(b.Rows)
	s.WriteString("| " + strings.Join(head, " | ") + " |\n|")
	for i := range head {
		if i == 0 {
			s.WriteString(" --- |")
		} else {
			s.WriteString(" ---: |")
		}
	}
	s.WriteString("\n")
	for _, row := range rows {
		s.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	if ns := notes(r, b.Rows); len(ns) > 0 {
		s.WriteString("\n")
		for _, n := range ns {
			fmt.Fprintf(&s, "- **%s**: %s\n", n.Policy, n.Text)
		}
	}
	fmt.Fprintf(&s, "\nThe autoscaler's own AWS cost (docs/costs.md): $%.4f per month", b.SelfTotal)
	fmt.Fprintf(&s, " (")
	for i, l := range b.SelfLines {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "%s $%.4f", l.Service, l.USD)
	}
	s.WriteString(").\n\nPlots: ")
	for i, c := range b.Charts {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "plots/%s.{png,svg}", c.Name)
	}
	s.WriteString("\n")
	return []byte(s.String())
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
