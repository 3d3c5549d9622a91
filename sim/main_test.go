package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	code, _, stderr := runCLI(t, "-h")
	if code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, f := range []string{"-scenario", "-seed", "-out", "-policy", "-list"} {
		if !strings.Contains(stderr, f) {
			t.Errorf("-h does not document %s", f)
		}
	}
}

func TestList(t *testing.T) {
	code, out, _ := runCLI(t, "-list")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, n := range []string{"flash-sale", "ramp", "sustained", "diurnal"} {
		if !strings.Contains(out, n) {
			t.Errorf("-list lacks %s:\n%s", n, out)
		}
	}
}

func TestRunWritesOutputs(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runCLI(t, "-scenario", "flash-sale", "-seed", "3", "-out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "cost") || !strings.Contains(stderr, "real time") {
		t.Errorf("summary table missing:\n%s\n%s", out, stderr)
	}
	var s map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "seed", "simulated_seconds", "cost_usd", "node_hours", "pending_pod_seconds",
		"underprovisioned_node_seconds", "latency_ms", "slo_violation_minutes", "dropped_requests", "scale_ups",
		"scale_downs", "max_workers", "min_workers"} {
		if _, ok := s[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
	lat, _ := s["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p95", "p99"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms lacks %q", k)
		}
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, "decisions.jsonl"))), "\n")
	var first struct {
		Time        string                     `json:"time"`
		Observation map[string]json.RawMessage `json:"observation"`
		Decision    map[string]json.RawMessage `json:"decision"`
		Acted       []json.RawMessage          `json:"acted"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Time == "" || first.Observation["readings"] == nil || first.Decision["action"] == nil || first.Decision["reason"] == nil || first.Acted == nil {
		t.Errorf("decision line shape: %s", lines[0])
	}
	tl := strings.Split(readFile(t, filepath.Join(dir, "timeline.csv")), "\n")
	if !strings.HasPrefix(tl[0], "time,offered_rps,served_rps") || len(tl) < 100 {
		t.Errorf("timeline: %d lines, header %q", len(tl), tl[0])
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBadInputsGetClearErrors(t *testing.T) {
	dir := t.TempDir()
	badScenario := filepath.Join(dir, "bad.json")
	os.WriteFile(badScenario, []byte(`{"scenarios": {"x": {"executor": "ramping-arrival-rate", "startRate": 5, "stages": [{"duration": "soon", "target": 3}]}}}`), 0o644)
	badPolicy := filepath.Join(dir, "policy.json")
	os.WriteFile(badPolicy, []byte(`{"min_workers": 4, "max_workers": 3}`), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-scenario", "nope"}, 1, "unknown scenario \"nope\""},
		{[]string{"-scenario", badScenario, "-out", dir}, 1, "stages[0].duration"},
		{[]string{"-scenario", "ramp", "-policy", badPolicy, "-out", dir}, 1, "min_workers (4) must not exceed max_workers (3)"},
		{[]string{"-scenario", "ramp", "-policy", filepath.Join(dir, "missing.json")}, 1, "reading policy"},
		{[]string{"-seed", "abc"}, 2, "invalid value"},
		{[]string{"ramp"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// TestPresetsOnTheCommandLine: -policy takes a preset name; a run says what the other preset
// gives on the same seed and how to run it; -compare shows it as a row.
func TestPresetsOnTheCommandLine(t *testing.T) {
	sc := filepath.Join("..", "testdata", "golden", "short.json")
	code, out, stderr := runCLI(t, "-scenario", sc, "-out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "responsive preset on this seed: $") || !strings.Contains(out, "-seed 1 -policy responsive") {
		t.Errorf("the first-run summary does not point at the responsive preset:\n%s", out)
	}
	dir := t.TempDir()
	code, out, stderr = runCLI(t, "-scenario", sc, "-policy", "responsive", "-out", dir)
	if code != 0 {
		t.Fatalf("-policy responsive: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "brief preset on this seed") {
		t.Errorf("a responsive run does not point back at the brief:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "policy.json"))
	if err != nil || !strings.Contains(string(b), `"preset":"responsive"`) || !strings.Contains(string(b), `"scale_down_sustain":"3m0s"`) {
		t.Errorf("policy.json of a responsive run: %s %v", b, err)
	}
	if code, _, stderr := runCLI(t, "-scenario", sc, "-policy", "snappy", "-out", t.TempDir()); code == 0 || !strings.Contains(stderr, "snappy") {
		t.Errorf("an unknown preset or file: exit %d, %s", code, stderr)
	}
}
