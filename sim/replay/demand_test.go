package replay

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// TestDemandRecoversTheLoad: the recordings were made from known load profiles, so the
// demand derived from their CPU series must give those profiles back wherever the static
// fleet was not saturated.
func TestDemandRecoversTheLoad(t *testing.T) {
	for _, spec := range recordingSpecs {
		t.Run(spec.Name, func(t *testing.T) {
			rec := shipped(t, spec.Name)
			sc, err := scenarios.Load(filepath.Join(recordingsDir, spec.Name+".scenario.json"))
			if err != nil {
				t.Fatal(err)
			}
			demand, err := Demand(rec, NewView(rec, 1), sc.Sim)
			if err != nil {
				t.Fatal(err)
			}
			if len(demand) < 24*60-3 {
				t.Fatalf("%d minutes of demand, want a day", len(demand))
			}
			start := world.Epoch.Add(spec.Shift)
			var sumErr float64
			n, saturated := 0, 0
			for _, d := range demand {
				if d.Saturated {
					saturated++
					continue
				}
				// The minute ending at d.Time: its mean offered rate.
				off := d.Time.Sub(start) - 30*time.Second
				want := sc.RateAt(off)
				rel := (d.RPS - want) / want
				sumErr += rel
				n++
				if math.Abs(rel) > 0.3 {
					t.Errorf("%s: derived %.0f req/s, the recording's load was %.0f", d.Time.Format("15:04"), d.RPS, want)
				}
			}
			if bias := sumErr / float64(n); math.Abs(bias) > 0.05 {
				t.Errorf("derived demand is biased by %.1f%% over %d unsaturated minutes", 100*bias, n)
			}
			t.Logf("bias %.2f%% over %d unsaturated minutes, %d saturated", 100*sumErr/float64(n), n, saturated)
			if saturated == 0 {
				t.Error("no saturated minute: the recordings' peaks saturate the static fleet")
			}
		})
	}
}

// TestClosedLoop: the derived scenario drives a simulated cluster; SmartScale's decisions
// change the fleet, and the run is deterministic.
func TestClosedLoop(t *testing.T) {
	rec := shipped(t, "weekly-peak")
	sc0, err := scenarios.Load(filepath.Join(recordingsDir, "weekly-peak.scenario.json"))
	if err != nil {
		t.Fatal(err)
	}
	demand, err := Demand(rec, NewView(rec, 1), sc0.Sim)
	if err != nil {
		t.Fatal(err)
	}
	data, sc, err := Scenario("replay-weekly-peak", "test", demand, sc0.Sim)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Sim.InitialWorkers != 4 || sc.Sim.NoiseFraction != 0 || len(sc.Stages) != len(demand) {
		t.Errorf("scenario: %d initial workers, noise %v, %d stages", sc.Sim.InitialWorkers, sc.Sim.NoiseFraction, len(sc.Stages))
	}
	// The scenario file loads like any other.
	again, err := scenarios.Parse("replay-weekly-peak", data)
	if err != nil {
		t.Fatal(err)
	}
	if again.Duration() != sc.Duration() || again.PeakRate() != sc.PeakRate() {
		t.Error("the written scenario does not parse back to the same scenario")
	}
	run := func() ([]byte, world.Summary) {
		w, err := world.New(world.Config{Scenario: sc, Seed: 1, Policy: engine.DefaultPolicy(), InitialWorkers: -1})
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := world.WriteDecisions(&b, res.Records); err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), res.Summary
	}
	d1, s := run()
	if s.ScaleUps == 0 || s.ScaleDowns == 0 {
		t.Errorf("closed loop on the weekly peak: %d scale-ups, %d scale-downs", s.ScaleUps, s.ScaleDowns)
	}
	if s.MaxWorkers <= 4 || s.MinWorkers >= 4 {
		t.Errorf("workers %d..%d: SmartScale should shrink the static 4 at night and grow them at the peak", s.MinWorkers, s.MaxWorkers)
	}
	if d2, _ := run(); !bytes.Equal(d1, d2) {
		t.Error("two closed-loop runs differ")
	}
}
