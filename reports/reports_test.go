package reports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/reports"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/baseline"
	"github.com/smartscale/smartscale/sim/world"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const goldenDir = "../testdata/golden"

// runAll runs every policy on a scenario with seed 1 (only those named, if any).
func runAll(t testing.TB, sc scenarios.Scenario, only ...string) []*world.Result {
	t.Helper()
	var jobs []baseline.Job
	for _, b := range baseline.All() {
		if len(only) == 0 || slices.Contains(only, b.Name) {
			jobs = append(jobs, baseline.Job{Scenario: sc, Baseline: b})
		}
	}
	res, err := baseline.RunMany(context.Background(), jobs, 1, engine.DefaultPolicy(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func shortScenario(t testing.TB) scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Load(filepath.Join(goldenDir, "short.json"))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func report(sc scenarios.Scenario, res []*world.Result) reports.Report {
	return reports.Report{Scenario: sc, Seed: 1, Policy: engine.DefaultPolicy(),
		Command: "go run ./sim -scenario " + sc.Name + " -seed 1 -compare", Results: res}
}

// shortBuilt is the short scenario's report, built once for the tests that only read it.
var shortBuilt = sync.OnceValues(func() (*reports.Built, error) {
	sc, err := scenarios.Load(filepath.Join(goldenDir, "short.json"))
	if err != nil {
		return nil, err
	}
	var jobs []baseline.Job
	for _, b := range baseline.Compared(engine.DefaultPolicy()) {
		jobs = append(jobs, baseline.Job{Scenario: sc, Baseline: b})
	}
	res, err := baseline.RunMany(context.Background(), jobs, 1, engine.DefaultPolicy(), 0, nil)
	if err != nil {
		return nil, err
	}
	return reports.Build(report(sc, res))
})

func built(t *testing.T) *reports.Built {
	t.Helper()
	b, err := shortBuilt()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChartsAreValidPNGAndSVG(t *testing.T) {
	b := built(t)
	names := map[string]bool{}
	for _, c := range b.Charts {
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			img, err := png.Decode(bytes.NewReader(c.PNG))
			if err != nil {
				t.Fatalf("PNG does not decode: %v", err)
			}
			if r := img.Bounds(); r.Dx() < 100 || r.Dy() < 100 {
				t.Errorf("PNG is %dx%d", r.Dx(), r.Dy())
			}
			for _, svg := range [][]byte{c.SVG, c.Inline} {
				root, elems, err := parseXML(svg)
				if err != nil {
					t.Fatalf("SVG does not parse: %v", err)
				}
				if root != "svg" || elems < 20 {
					t.Errorf("SVG root %q with %d elements", root, elems)
				}
			}
			if !bytes.Contains(c.SVG, []byte("@font-face")) {
				t.Error("standalone SVG has no embedded font")
			}
		})
	}
	for _, want := range []string{"workers", "cpu-memory", "pending-pods", "p95-latency", "cumulative-cost", "pareto",
		"workers-" + baseline.Oracle, "workers-" + baseline.CALike} {
		if !names[want] {
			t.Errorf("no %s chart", want)
		}
	}
}

// parseXML parses a whole document and returns its root element and element count.
func parseXML(b []byte) (root string, elems int, err error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return root, elems, nil
		}
		if err != nil {
			return root, elems, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if elems == 0 {
				root = se.Name.Local
			}
			elems++
		}
	}
}

var externalRef = regexp.MustCompile(`(?i)(\b(src|href|action|poster|data)\s*=\s*["']?\s*(https?:|//|ftp:|file:))|(url\(\s*["']?\s*(https?:|//))|(@import)`)

func TestHTMLIsSelfContained(t *testing.T) {
	b := built(t)
	html := string(b.HTML)
	for _, bad := range []string{"http://", "https://", "<script", "<link", "<iframe", "<img"} {
		if strings.Contains(html, bad) {
			t.Errorf("report.html contains %q", bad)
		}
	}
	if m := externalRef.FindString(html); m != "" {
		t.Errorf("report.html has an external reference: %q", m)
	}
	if n, want := strings.Count(html, "<svg"), len(b.Charts); n != want {
		t.Errorf("report.html inlines %d SVGs, want %d", n, want)
	}
	for _, r := range b.Rows {
		if !strings.Contains(html, "<td>"+r.Policy+"</td>") {
			t.Errorf("report.html has no row for %s", r.Policy)
		}
		if !strings.Contains(string(b.Markdown), "| "+r.Policy+" |") {
			t.Errorf("report.md has no row for %s", r.Policy)
		}
	}
	if !strings.Contains(html, "go run ./sim -scenario short -seed 1 -compare") {
		t.Error("report.html does not say how to reproduce it")
	}
	// the inline SVGs are well-formed XML once in the page
	for _, c := range b.Charts {
		if !strings.Contains(html, string(c.Inline)) {
			t.Errorf("chart %s is not inlined verbatim", c.Name)
		}
	}
}

func TestComparisonJSON(t *testing.T) {
	b := built(t)
	var rows []map[string]any
	if err := json.Unmarshal(b.JSON, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(baseline.Compared(engine.DefaultPolicy())) {
		t.Fatalf("%d rows, want %d", len(rows), len(baseline.Compared(engine.DefaultPolicy())))
	}
	for _, r := range rows {
		for _, k := range []string{"policy", "cost_usd", "node_hours", "slo_violation_minutes", "underprovisioned_node_seconds",
			"latency_ms", "scale_ups", "scale_downs", "savings_vs_static_max_pct", "cost_vs_oracle", "time_to_capacity_seconds"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%v: no %s", r["policy"], k)
			}
		}
		switch r["policy"] {
		case baseline.StaticMax:
			if r["savings_vs_static_max_pct"].(float64) != 0 {
				t.Errorf("static-max saves %v on itself", r["savings_vs_static_max_pct"])
			}
		case baseline.Oracle:
			if r["cost_vs_oracle"].(float64) != 1 {
				t.Errorf("oracle is %vx itself", r["cost_vs_oracle"])
			}
		}
	}
}

// goldenPolicies are the rows testdata/golden pins: the brief and the yardsticks it has had
// from the start. Rows added since (ca-native, the other presets) have tests of their own, so
// the golden files stay what they were.
var goldenPolicies = []string{baseline.SmartScale, baseline.StaticMax, baseline.Static5, baseline.CALike, baseline.Oracle, baseline.OracleTick}

// TestGolden pins the short scenario's comparison (the golden policies) and SmartScale's
// summary. Run with -update after an intended change of the simulator or a policy.
func TestGolden(t *testing.T) {
	sc := shortScenario(t)
	res := runAll(t, sc, goldenPolicies...)
	var sum bytes.Buffer
	if err := world.WriteSummary(&sum, res[0].Summary); err != nil {
		t.Fatal(err)
	}
	cmp, err := json.MarshalIndent(reports.Compare(res), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"short-summary.json": sum.Bytes(), "short-comparison.json": append(cmp, '\n')} {
		path := filepath.Join(goldenDir, name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./reports -run Golden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file (go test ./reports -run Golden -update to accept):\n%s", name, firstDiff(got, want))
		}
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, g[i], w[i])
		}
	}
	return "lengths differ"
}

// TestWriteIsDeterministic writes the report twice from two independent runs of the same
// seed and compares every file byte for byte.
func TestWriteIsDeterministic(t *testing.T) {
	sc := shortScenario(t)
	var dirs []string
	charts := 0
	for range 2 {
		dir := t.TempDir()
		b, err := reports.Write(dir, report(sc, runAll(t, sc)))
		if err != nil {
			t.Fatal(err)
		}
		dirs, charts = append(dirs, dir), len(b.Charts)
	}
	files := 0
	err := filepath.WalkDir(dirs[0], func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dirs[0], path)
		a, _ := os.ReadFile(path)
		b, err := os.ReadFile(filepath.Join(dirs[1], rel))
		if err != nil {
			return err
		}
		if len(a) == 0 {
			t.Errorf("%s is empty", rel)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs of the same seed", rel)
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// html, md, json and two files per chart
	if want := 3 + 2*charts; files != want {
		t.Errorf("%d files written, want %d", files, want)
	}
}

func TestTimeToCapacity(t *testing.T) {
	row := func(min, demand, ready int) world.Row {
		return world.Row{Time: world.Epoch.Add(time.Duration(min) * time.Minute), DemandNodes: demand, ReadyWorkers: ready}
	}
	for _, tc := range []struct {
		name      string
		rows      []world.Row
		steps     int
		max, mean time.Duration
	}{
		{"covered ahead", []world.Row{row(1, 2, 4), row(2, 4, 4), row(3, 4, 4)}, 0, 0, 0},
		{"covered after 3 min", []world.Row{row(1, 2, 2), row(2, 4, 2), row(3, 4, 3), row(4, 4, 3), row(5, 4, 4)}, 1, 3 * time.Minute, 3 * time.Minute},
		{"two steps", []world.Row{row(1, 2, 2), row(2, 3, 2), row(3, 3, 3), row(4, 5, 3), row(5, 5, 3), row(6, 5, 3), row(7, 5, 5)},
			2, 3 * time.Minute, 2 * time.Minute},
		{"never covered: until the demand falls", []world.Row{row(1, 2, 2), row(2, 7, 5), row(3, 7, 5), row(4, 2, 5)}, 1, 2 * time.Minute, 2 * time.Minute},
		{"the start is a step", []world.Row{row(1, 5, 2), row(2, 5, 2), row(3, 5, 4), row(4, 5, 5)}, 1, 3 * time.Minute, 3 * time.Minute},
		{"never covered: until the end", []world.Row{row(1, 2, 2), row(2, 7, 5), row(3, 7, 5)}, 1, 2 * time.Minute, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := reports.TimeToCapacity(tc.rows)
			if c.Steps != tc.steps || c.Max != tc.max || c.Mean != tc.mean {
				t.Errorf("got %+v, want steps %d max %v mean %v", c, tc.steps, tc.max, tc.mean)
			}
		})
	}
}

func TestSelfCost(t *testing.T) {
	u := reports.DefaultSelfUsage()
	lines, total := reports.SelfCost(u)
	sum := 0.0
	for _, l := range lines {
		if l.USD < 0 {
			t.Errorf("%s: negative cost %v", l.Service, l.USD)
		}
		sum += l.USD
	}
	if d := sum - total; d > 1e-9 || d < -1e-9 {
		t.Errorf("total %v, lines add up to %v", total, sum)
	}
	if !strings.Contains(lines[0].Basis, "21600 invocations") {
		t.Errorf("a 2-minute schedule is 21600 invocations in 30 days, got %q", lines[0].Basis)
	}
	// twice as frequent: the per-invocation lines double, the fixed ones do not
	u.Every = time.Minute
	_, total2 := reports.SelfCost(u)
	if !(total2 > total && total2 < 2*total) {
		t.Errorf("every minute: %v, every 2 minutes: %v", total2, total)
	}
}

// BenchmarkReportFlashSale measures building flash-sale's full comparison report (charts,
// HTML, Markdown, JSON) from its runs; the runs themselves are outside the timing.
func BenchmarkReportFlashSale(b *testing.B) {
	sc, err := scenarios.Load("flash-sale")
	if err != nil {
		b.Fatal(err)
	}
	r := report(sc, runAll(b, sc))
	b.ResetTimer()
	for b.Loop() {
		if _, err := reports.Build(r); err != nil {
			b.Fatal(err)
		}
	}
}
