package tune

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/smartscale/smartscale/reports"
)

// WriteOutputs summarizes the runs and writes every output of the sweep into dir:
// points.jsonl, points.csv, frontier.json, references.json, best-policy.json (when a point
// is within the SLO budget), report.html and plots/pareto.{png,svg}. The bytes depend on
// the plan and the runs only.
func WriteOutputs(dir string, pl *Plan, runs []Run) (*Summary, error) {
	sum, err := Summarize(pl, runs)
	if err != nil {
		return nil, err
	}
	files, err := render(sum)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		return nil, err
	}
	var errs []error
	for _, name := range sortedKeys(files) {
		errs = append(errs, os.WriteFile(filepath.Join(dir, name), files[name], 0o644))
	}
	if _, ok := files[FileBest]; !ok { // a resumed sweep may have had one
		if err := os.Remove(filepath.Join(dir, FileBest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return sum, errors.Join(errs...)
}

// render returns every output file by its path in the sweep directory.
func render(sum *Summary) (map[string][]byte, error) {
	files := map[string][]byte{}
	var pts bytes.Buffer
	for _, l := range sum.Points {
		b, err := marshal(l, false)
		if err != nil {
			return nil, err
		}
		pts.Write(b)
	}
	files[FilePoints] = pts.Bytes()
	front := make([]Line, 0, len(sum.Frontier))
	for _, i := range sum.Frontier {
		front = append(front, sum.Points[i])
	}
	var err error
	if files[FileFrontier], err = marshal(front, true); err != nil {
		return nil, err
	}
	if files[FileReferences], err = marshal(sum.References, true); err != nil {
		return nil, err
	}
	if files[FilePointsCSV], err = pointsCSV(sum); err != nil {
		return nil, err
	}
	if p, ok := sum.BestPolicy(); ok {
		b, err := p.MarshalJSON()
		if err != nil {
			return nil, err
		}
		files[FileBest] = append(b, '\n')
	}
	chart, err := reports.Render("pareto", ParetoPlot(sum))
	if err != nil {
		return nil, fmt.Errorf("plotting: %w", err)
	}
	files[filepath.Join("plots", "pareto.png")] = chart.PNG
	files[filepath.Join("plots", "pareto.svg")] = chart.SVG
	if files[FileReport], err = reportHTML(sum, chart); err != nil {
		return nil, err
	}
	return files, nil
}

// marshal writes v as JSON without HTML escaping (queries hold < and >), indented or as one
// line.
func marshal(v any, indent bool) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// pointsCSV: one row per point, its values per key, then the totals and each scenario's
// figures.
func pointsCSV(sum *Summary) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	head := []string{"point"}
	for _, d := range sum.Plan.Space.Dims {
		head = append(head, d.Key)
	}
	head = append(head, "frontier", "within_slo", "within_flaps", "total_cost_usd", "total_slo_minutes", "total_slo_minutes_max",
		"total_p95_ms", "total_flaps", "total_x_oracle")
	for _, sc := range sum.Plan.Spec.Scenarios {
		n := sc.Scenario.Name
		head = append(head, n+"_cost_usd", n+"_slo_minutes", n+"_slo_minutes_max", n+"_p95_ms", n+"_x_oracle")
	}
	if err := w.Write(head); err != nil {
		return nil, err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	ptr := func(v *float64) string {
		if v == nil {
			return ""
		}
		return f(*v)
	}
	for _, l := range sum.Points {
		row := []string{strconv.Itoa(*l.Point)}
		for _, v := range sum.Plan.Points[*l.Point].Values {
			row = append(row, cell(v))
		}
		t := l.Total
		row = append(row, strconv.FormatBool(l.Frontier), strconv.FormatBool(l.WithinSLO), strconv.FormatBool(l.WithinFlaps), f(t.CostUSD), f(t.SLOMinutes),
			strconv.Itoa(t.SLOMinutesMax), f(t.P95Ms), f(t.Flaps), ptr(t.XOracle))
		for _, s := range l.Scenarios {
			row = append(row, f(s.CostUSD), f(s.SLOMinutes), strconv.Itoa(s.SLOMinutesMax), f(s.P95Ms), ptr(s.XOracle))
		}
		if err := w.Write(row); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return b.Bytes(), w.Error()
}

// cell is a value for a table: strings without their quotes, the rest as JSON.
func cell(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
