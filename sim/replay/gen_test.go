package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// regen rewrites testdata/recordings and testdata/flight: go test ./sim/replay -run TestRegen -regen
var regen = flag.Bool("regen", false, "regenerate testdata/recordings/*.json and testdata/flight/*.jsonl")

const (
	recordingsDir = "../../testdata/recordings"
	flightDir     = "../../testdata/flight"
)

// recordingSpec is one shipped recording: a generator scenario run on a static fleet.
type recordingSpec struct {
	Name  string        // testdata/recordings/<Name>.json, from <Name>.scenario.json
	Seed  uint64        // the simulator's seed
	Shift time.Duration // added to the simulator's clock (world.Epoch is a Monday 00:00 UTC)
}

var recordingSpecs = []recordingSpec{
	{Name: "diurnal-day", Seed: 11, Shift: 0},              // Monday 2026-01-05
	{Name: "weekly-peak", Seed: 12, Shift: 24 * time.Hour}, // Tuesday 2026-01-06
}

// staticFleet is an autoscaler that never acts: the recordings come from a cluster that
// is not autoscaled, as a team's cluster is before it trusts SmartScale.
type staticFleet struct{}

func (staticFleet) Tick(_ context.Context, now time.Time) (engine.Record, error) {
	return engine.Record{Time: now.UTC(), Lock: "none", Acted: []engine.Act{},
		Decision: engine.Decision{Action: engine.ActionNone, Reason: "static fleet"}}, nil
}

// keepSeries limits a recording's size: node-exporter's three main CPU modes (the engine
// reads idle; user and system carry nearly all busy time), and pods' Pending and Running
// phases (the others are 0 for a web Deployment).
func keepSeries(l labels.Labels) bool {
	switch l.Get(labels.MetricName) {
	case MetricCPU:
		m := l.Get("mode")
		return m == "idle" || m == "user" || m == "system"
	case MetricPodPhase:
		p := l.Get("phase")
		return p == "Pending" || p == "Running"
	}
	return true
}

// generateRecording runs the spec's scenario on a static fleet and dumps the simulated
// exporters' series every 30 s, with node-exporter's precision (CPU seconds to 1/100 s,
// memory in whole bytes).
func generateRecording(t testing.TB, spec recordingSpec) *Recording {
	t.Helper()
	sc, err := scenarios.Load(filepath.Join(recordingsDir, spec.Name+".scenario.json"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.New(world.Config{Scenario: sc, Seed: spec.Seed, Policy: engine.DefaultPolicy(), Name: "static",
		InitialWorkers: -1, Autoscaler: func(*world.World) (world.Autoscaler, error) { return staticFleet{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := FromStore(w.TSDB, 30*time.Second, keepSeries)
	for i := range rec.Series {
		s := &rec.Series[i]
		cpu := s.Labels.Get(labels.MetricName) == MetricCPU
		for j := range s.Samples {
			smp := &s.Samples[j]
			smp.T += spec.Shift.Milliseconds()
			if cpu {
				smp.V = math.Round(smp.V*100) / 100
			} else {
				smp.V = math.Round(smp.V)
			}
		}
	}
	return rec
}

func encodeJSON(t testing.TB, r *Recording) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRegenRecordings rewrites the shipped recordings with -regen; without it, it checks
// that the generator is deterministic on a short run.
func TestRegenRecordings(t *testing.T) {
	if !*regen {
		t.Skip("run with -regen to rewrite testdata/recordings")
	}
	for _, spec := range recordingSpecs {
		rec := generateRecording(t, spec)
		data := encodeJSON(t, rec)
		path := filepath.Join(recordingsDir, spec.Name+".json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		first, last, _ := rec.Bounds()
		t.Logf("%s: %d series, %d samples, %s .. %s, %d bytes", path, len(rec.Series), rec.NumSamples(),
			first.Format(time.RFC3339), last.Format(time.RFC3339), len(data))
	}
}

// flightSpec is the shipped flight-record sample: the flash-sale scenario run by the real
// engine.Step in the simulator, exported the way CloudWatch Logs exports the Lambda's lines.
const (
	flightScenario = "flash-sale"
	flightSeed     = 3
	flightFile     = "flash-sale-export.jsonl"
)

// generateFlight runs the simulator and writes its per-tick records as a CloudWatch Logs
// export of the Lambda's logs: each tick's engine.Record logged the way runtime/handler logs
// it (slog JSON, msg "tick", the record under "record"), wrapped as
// {"timestamp":ms,"message":"<line>"}; every fifth tick is left unwrapped (a raw log line),
// and START/REPORT lines sit between invocations, as in a real export.
func generateFlight(t testing.TB) []byte {
	t.Helper()
	sc, err := scenarios.Load(flightScenario)
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.New(world.Config{Scenario: sc, Seed: flightSeed, Policy: engine.DefaultPolicy(), InitialWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	wrap := func(msg string, at int64) {
		b, _ := json.Marshal(struct {
			Timestamp int64  `json:"timestamp"`
			Message   string `json:"message"`
		}{at, msg})
		out.Write(b)
		out.WriteByte('\n')
	}
	for i, rec := range res.Records {
		var line bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&line, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Time(slog.TimeKey, rec.Time.Add(800*time.Millisecond)) // the virtual clock, not the wall
			}
			return a
		}}))
		log.LogAttrs(context.Background(), slog.LevelInfo, "tick",
			slog.String("cluster", "sim"),
			slog.String("tick", rec.Time.Format(time.RFC3339)),
			slog.String("decision", string(rec.Decision.Action)),
			slog.String("reason", rec.Decision.Reason),
			slog.Any("record", rec))
		ms := rec.Time.UnixMilli()
		reqID := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		wrap(fmt.Sprintf("START RequestId: %s Version: $LATEST", reqID), ms)
		if i%5 == 4 {
			out.Write(line.Bytes())
		} else {
			wrap(strings.TrimSuffix(line.String(), "\n"), ms+800)
		}
		wrap(fmt.Sprintf("REPORT RequestId: %s\tDuration: 812.40 ms\tBilled Duration: 813 ms\tMemory Size: 256 MB\tMax Memory Used: 41 MB", reqID), ms+810)
	}
	return out.Bytes()
}

func TestRegenFlight(t *testing.T) {
	if !*regen {
		t.Skip("run with -regen to rewrite testdata/flight")
	}
	data := generateFlight(t)
	if err := os.WriteFile(filepath.Join(flightDir, flightFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", flightFile, len(data))
}

// TestShippedRecordings checks the recordings in testdata parse, are realistic in shape
// (a whole day, 3-6 nodes, 30 s steps) and small.
func TestShippedRecordings(t *testing.T) {
	for _, spec := range recordingSpecs {
		t.Run(spec.Name, func(t *testing.T) {
			path := filepath.Join(recordingsDir, spec.Name+".json")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() > 8<<20 {
				t.Errorf("%s is %d bytes; keep recordings under 8 MB", path, fi.Size())
			}
			rec, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, last, ok := rec.Bounds()
			if !ok || last.Sub(first) < 23*time.Hour {
				t.Errorf("recording spans %v, want a day", last.Sub(first))
			}
			v := NewView(rec, 1)
			if n := v.Workers(first.Add(time.Hour)) + 1; n < 3 || n > 6 {
				t.Errorf("%d nodes, want 3-6", n)
			}
			var names []string
			for _, s := range rec.Series {
				if n := s.Labels.Get(labels.MetricName); !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
			slices.Sort(names)
			want := slices.Sorted(slices.Values(Metrics()))
			if !slices.Equal(names, want) {
				t.Errorf("metrics %v, want %v", names, want)
			}
		})
	}
}
