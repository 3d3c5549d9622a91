package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"path/filepath"

	"github.com/smartscale/smartscale/scenarios"
)

// FileIndex is the index page of a multi-scenario report.
const FileIndex = "index.html"

// IndexEntry is one scenario of the index: its report directory (relative to the index)
// and its comparison rows.
type IndexEntry struct {
	Scenario scenarios.Scenario
	Dir      string
	Rows     []Row
}

type indexRow struct {
	Scenario, Dir, Description, Duration string
	Cells                                [][]string
}

var indexTmpl = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>SmartScale reports, seed {{.Seed}}</title>
<style>
body { font-family: serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
code { background: #f3f3f3; padding: 0.1em 0.3em; }
</style>
</head>
<body>
<h1>SmartScale reports, seed {{.Seed}}</h1>
<p>Every built-in scenario, each policy on the same seed. Reproduce with <code>{{.Command}}</code> (<code>make report</code>).</p>
{{range .Rows}}<h2><a href="{{.Dir}}/report.html">{{.Scenario}}</a></h2>
<p>{{.Description}} ({{.Duration}})</p>
<table>
<tr><th>policy</th><th>cost</th><th>per month</th><th>savings vs static-max</th><th>cost / oracle</th><th>SLO-violation min</th><th>under-prov. node-s</th><th>p95 ms</th><th>time to capacity s</th><th>ups / downs</th></tr>
{{range .Cells}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}
</body>
</html>
`))

// WriteIndex writes dir/index.html: one table per scenario, linking its report.
func WriteIndex(dir string, entries []IndexEntry, seed uint64, command string) error {
	var rows []indexRow
	for _, e := range entries {
		ir := indexRow{Scenario: e.Scenario.Name, Dir: e.Dir, Description: e.Scenario.Description, Duration: durationText(e.Scenario.Duration())}
		for _, r := range e.Rows {
			ir.Cells = append(ir.Cells, []string{r.Policy, fmtMoney(r.CostUSD), fmt.Sprintf("$%.2f", r.CostPerMonthUSD),
				fmtPtr(r.SavingsVsStaticMaxPct, "%.1f%%"), fmtPtr(r.CostVsOracle, "%.3fx"), fmt.Sprint(r.SLOViolationMinutes),
				fmt.Sprintf("%.0f", r.UnderprovisionedNodeSeconds), fmt.Sprintf("%.0f", r.Latency.P95),
				fmt.Sprintf("%.0f", r.TimeToCapacitySeconds), fmt.Sprintf("%d / %d", r.ScaleUps, r.ScaleDowns)})
		}
		rows = append(rows, ir)
	}
	var buf bytes.Buffer
	if err := indexTmpl.Execute(&buf, map[string]any{"Seed": seed, "Command": command, "Rows": rows}); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, FileIndex), buf.Bytes(), 0o644)
}
