package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/replay"
)

// TestReplayCLI: -replay writes the open-loop outputs, byte-identical on a second run.
func TestReplayCLI(t *testing.T) {
	rec := filepath.Join("..", "testdata", "recordings", "diurnal-day.json")
	outs := []string{t.TempDir(), t.TempDir()}
	for _, out := range outs {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"-replay", rec, "-out", out}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "scale-ups") {
			t.Errorf("stdout:\n%s", stdout.String())
		}
	}
	for _, f := range []string{"decisions.jsonl", "timeline.csv", "summary.json", "policy.json", "plots/usage.png", "plots/usage.svg"} {
		a, err := os.ReadFile(filepath.Join(outs[0], f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(outs[1], f))
		if err != nil {
			t.Fatal(err)
		}
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs (or is empty)", f)
		}
	}
}

// TestClosedLoopScenario: -replay -closed-loop makes a scenario the rest of the CLI runs
// like any other, and writes it beside the outputs.
func TestClosedLoopScenario(t *testing.T) {
	out := t.TempDir()
	o, err := parseFlags([]string{"-replay", filepath.Join("..", "testdata", "recordings", "weekly-peak.json"), "-closed-loop",
		"-replay-sim", filepath.Join("..", "testdata", "recordings", "weekly-peak.scenario.json"), "-out", out}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := loadScenario(o)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "replay-weekly-peak" || sc.Sim.InitialWorkers != 4 || sc.Duration() < 23*60*60*1e9 {
		t.Errorf("scenario %s, %d workers, %v", sc.Name, sc.Sim.InitialWorkers, sc.Duration())
	}
	again, err := scenarios.Load(filepath.Join(out, "scenario.json"))
	if err != nil {
		t.Fatal(err)
	}
	if again.PeakRate() != sc.PeakRate() || len(again.Stages) != len(sc.Stages) {
		t.Error("scenario.json does not load back to the derived scenario")
	}
	if _, err := os.Stat(filepath.Join(out, "demand.csv")); err != nil {
		t.Error(err)
	}
}

// TestFlightCLI: exit 0 when every decision is reproduced, 1 with the tick when one is not.
func TestFlightCLI(t *testing.T) {
	file := filepath.Join("..", "testdata", "flight", "flash-sale-export.jsonl")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-flight", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "byte for byte") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	lines[1] = strings.Replace(lines[1], `\"action\":\"none\",\"delta\":0`, `\"action\":\"scale_up\",\"delta\":1`, 1)
	tampered := filepath.Join(t.TempDir(), "tampered.jsonl")
	if err := os.WriteFile(tampered, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"-flight", tampered}, &stdout, &stderr); code != 1 {
		t.Fatalf("tampered export: exit %d, want 1\n%s", code, stdout.String())
	}
	if !strings.Contains(stdout.String(), "tick 2026-01-05T00:02:05Z (line 2)") {
		t.Errorf("the mismatch does not name the tick:\n%s", stdout.String())
	}
}

func TestRecordFlags(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"record", "-from", "now-1h"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, w := range []string{"-prometheus URL is required", "-out FILE is required"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q: %s", w, stderr.String())
		}
	}
}

// TestRecordCLI: `sim record` against a real Prometheus, in both file formats; the two files
// hold the same series, and -replay reads them.
func TestRecordCLI(t *testing.T) {
	day, err := replay.ReadFile(filepath.Join("..", "testdata", "recordings", "weekly-peak.json"))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 6, 9, 30, 0, 0, time.UTC)
	win := day.Window(from, from.Add(90*time.Minute))
	var om bytes.Buffer
	if err := win.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	url := realtest.Prometheus(t, om.String())
	dir := t.TempDir()
	var files []string
	for _, format := range []string{"json", "openmetrics"} {
		file := filepath.Join(dir, "rec."+format)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"record", "-prometheus", url, "-from", from.Format(time.RFC3339),
			"-to", strconv.FormatInt(from.Add(90*time.Minute).Unix(), 10), "-step", "30s", "-chunk", "30m",
			"-format", format, "-out", file}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("record -format %s: exit %d: %s", format, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), fmt.Sprintf("recorded %d series", len(win.Series))) {
			t.Errorf("stdout: %s", stdout.String())
		}
		if !strings.Contains(stderr.String(), "100%") {
			t.Errorf("no progress bar for a 4-chunk range on stderr: %q", stderr.String())
		}
		files = append(files, file)
	}
	a, err := replay.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := replay.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Diff(b); d != "" {
		t.Errorf("the JSON and OpenMetrics recordings differ: %s", d)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-replay", files[1], "-out", filepath.Join(dir, "out"), "-quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-replay of the recording: exit %d: %s", code, stderr.String())
	}
}
