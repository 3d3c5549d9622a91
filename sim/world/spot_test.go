package world

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
)

// TestSpotAcceptance is issue 12's acceptance: on diurnal and ramp, seeds 1-5, the responsive
// policy with on_demand_base 0 and spot_percent 70, at the default interruption rates, costs
// at most 0.60x the same policy on-demand only in workers and adds at most 2 SLO minutes.
// go test -v -run SpotAcceptance ./sim/world prints the table.
func TestSpotAcceptance(t *testing.T) {
	spot, err := engine.ParsePolicy(strings.NewReader(`{"preset":"responsive","spot_percent":70,"on_demand_base":0}`), engine.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	onDemand := spot
	onDemand.SpotPercent = 0
	type row struct {
		scenario string
		seed     uint64
		spot, od Summary
	}
	var jobs []row
	for _, name := range []string{"diurnal", "ramp"} {
		for seed := uint64(1); seed <= 5; seed++ {
			jobs = append(jobs, row{scenario: name, seed: seed})
		}
	}
	run := func(sc scenarios.Scenario, seed uint64, p engine.Policy) (Summary, error) {
		w, err := New(Config{Scenario: sc, Seed: seed, Policy: p, InitialWorkers: -1})
		if err != nil {
			return Summary{}, err
		}
		res, err := w.Run(context.Background())
		if err != nil {
			return Summary{}, err
		}
		return res.Summary, nil
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	errs := make([]error, len(jobs))
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			sc, err := scenarios.Load(jobs[i].scenario)
			if err != nil {
				errs[i] = err
				return
			}
			if jobs[i].spot, err = run(sc, jobs[i].seed, spot); err != nil {
				errs[i] = err
				return
			}
			jobs[i].od, errs[i] = run(sc, jobs[i].seed, onDemand)
		}()
	}
	wg.Wait()
	var b strings.Builder
	fmt.Fprintf(&b, "\n| scenario | seed | on-demand workers $ | spot workers $ | ratio | spot share | SLO min on-demand | SLO min spot | interruptions |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, j := range jobs {
		if errs[i] != nil {
			t.Fatalf("%s seed %d: %v", j.scenario, j.seed, errs[i])
		}
		ratio := j.spot.WorkerCostUSD / j.od.WorkerCostUSD
		fmt.Fprintf(&b, "| %s | %d | %.4f | %.4f | %.3f | %.1f%% | %d | %d | %d |\n", j.scenario, j.seed, j.od.WorkerCostUSD,
			j.spot.WorkerCostUSD, ratio, *j.spot.SpotSharePct, j.od.SLOViolationMinutes, j.spot.SLOViolationMinutes, *j.spot.Interruptions)
		if ratio > 0.60 {
			t.Errorf("%s seed %d: spot workers cost %.3fx on-demand only, want <= 0.60", j.scenario, j.seed, ratio)
		}
		if j.spot.SLOViolationMinutes > j.od.SLOViolationMinutes+2 {
			t.Errorf("%s seed %d: %d SLO minutes with spot, %d on-demand only: want at most 2 more", j.scenario, j.seed,
				j.spot.SLOViolationMinutes, j.od.SLOViolationMinutes)
		}
		if j.od.SpotSharePct != nil || j.od.Interruptions != nil {
			t.Errorf("%s seed %d: the on-demand run's summary has spot fields", j.scenario, j.seed)
		}
	}
	t.Log(b.String())
}
