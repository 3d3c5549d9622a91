package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareWritesComparisonAndReport(t *testing.T) {
	dir := t.TempDir()
	scenario := filepath.Join("..", "testdata", "golden", "short.json")
	code, out, stderr := runCLI(t, "-scenario", scenario, "-seed", "1", "-out", dir, "-compare")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rows []struct {
		Policy       string   `json:"policy"`
		CostUSD      float64  `json:"cost_usd"`
		CostVsOracle *float64 `json:"cost_vs_oracle"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "comparison.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Policy)
		if r.CostUSD <= 0 || r.CostVsOracle == nil {
			t.Errorf("%s: cost %v, x oracle %v", r.Policy, r.CostUSD, r.CostVsOracle)
		}
	}
	if got := strings.Join(names, ","); got != "smartscale,preset-responsive,static-max,static-5,ca-like,ca-native,oracle,oracle-tick" {
		t.Errorf("policies %s", got)
	}
	for _, f := range []string{"report.html", "report.md", "summary.json", "plots/workers.svg", "plots/workers.png", "plots/pareto.svg", "plots/workers-oracle.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	if !strings.Contains(out, "oracle-tick") || !strings.Contains(stderr, "baseline oracle done") {
		t.Errorf("no comparison table or progress:\n%s\n%s", out, stderr)
	}
	html := readFile(t, filepath.Join(dir, "report.html"))
	if !strings.Contains(html, "go run ./sim -scenario "+scenario+" -seed 1 -compare") {
		t.Error("report.html does not give the command that reproduces it")
	}
}

func TestPlainRunWritesReportWithoutComparison(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, "-scenario", filepath.Join("..", "testdata", "golden", "short.json"), "-out", dir, "-quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"report.html", "report.md", "plots/workers.png", "plots/cpu-memory.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "comparison.json")); err == nil {
		t.Error("comparison.json written without -compare")
	}
}

func TestReportAllBuiltins(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every built-in scenario with every policy")
	}
	dir := t.TempDir()
	code, out, stderr := runCLI(t, "-report", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	index := readFile(t, filepath.Join(dir, "index.html"))
	for _, sc := range []string{"diurnal", "flash-sale", "ramp", "sustained"} {
		if !strings.Contains(index, `href="`+sc+`/report.html"`) {
			t.Errorf("index.html does not link %s", sc)
		}
		for _, f := range []string{"report.html", "report.md", "comparison.json", "plots/pareto.svg"} {
			if _, err := os.Stat(filepath.Join(dir, sc, f)); err != nil {
				t.Error(err)
			}
		}
	}
	if !strings.Contains(out, "4 scenarios x 8 policies") || !strings.Contains(stderr, "[32/32]") {
		t.Errorf("no progress or summary:\n%s\n%s", out, stderr)
	}
}
