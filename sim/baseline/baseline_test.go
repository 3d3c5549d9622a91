package baseline

import (
	"context"
	"sync"
	"testing"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// builtins runs every policy on every built-in scenario once per test binary (seed 1).
var builtins = sync.OnceValues(func() (map[string][]*world.Result, error) {
	var jobs []Job
	for _, name := range scenarios.Names() {
		sc, err := scenarios.Load(name)
		if err != nil {
			return nil, err
		}
		for _, b := range All() {
			jobs = append(jobs, Job{Scenario: sc, Baseline: b})
		}
	}
	res, err := RunMany(context.Background(), jobs, 1, engine.DefaultPolicy(), 0, nil)
	if err != nil {
		return nil, err
	}
	out := map[string][]*world.Result{}
	for i, j := range jobs {
		out[j.Scenario.Name] = append(out[j.Scenario.Name], res[i])
	}
	return out, nil
})

func TestPrintBuiltins(t *testing.T) {
	all, err := builtins()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range scenarios.Names() {
		for _, r := range all[name] {
			s := r.Summary
			t.Logf("%-10s %-11s cost %.4f nodeh %.2f slo %3d under %6.0f pend %6.0f p95 %6.0f ups %2d downs %2d maxW %d",
				name, s.Policy, s.CostUSD, s.NodeHours, s.SLOViolationMinutes, s.UnderprovisionedNodeSeconds, s.PendingPodSeconds, s.Latency.P95, s.ScaleUps, s.ScaleDowns, s.MaxWorkers)
		}
	}
}
