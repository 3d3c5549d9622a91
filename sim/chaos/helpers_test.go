package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// stage is one k6 stage: minutes and the target rate.
type stage struct {
	min    int
	target float64
}

// scenarioOf builds a ramping-arrival-rate scenario through the scenario loader, so it is
// validated like a file.
func scenarioOf(tb testing.TB, start float64, initial int, stages ...stage) scenarios.Scenario {
	tb.Helper()
	sc, err := parseScenario(start, initial, stages)
	if err != nil {
		tb.Fatal(err)
	}
	return sc
}

func parseScenario(start float64, initial int, stages []stage) (scenarios.Scenario, error) {
	type st struct {
		Duration string  `json:"duration"`
		Target   float64 `json:"target"`
	}
	var sts []st
	for _, s := range stages {
		sts = append(sts, st{fmt.Sprintf("%dm", s.min), s.target})
	}
	doc := map[string]any{
		"description": "chaos test scenario",
		"scenarios": map[string]any{"load": map[string]any{
			"executor": "ramping-arrival-rate", "startRate": start, "timeUnit": "1s", "stages": sts}},
		"smartscale": map[string]any{"initial_workers": initial},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return scenarios.Scenario{}, err
	}
	return scenarios.Parse("chaos-test", b)
}

// Scenarios the kind tests share.
func spike(tb testing.TB) scenarios.Scenario {
	// quiet, a spike that needs several more workers, quiet again
	return scenarioOf(tb, 80, 2, stage{6, 80}, stage{2, 600}, stage{16, 600}, stage{2, 80}, stage{14, 80})
}

func quiet(tb testing.TB, initial int) scenarios.Scenario {
	// low load on too many workers: the policy wants to scale down
	return scenarioOf(tb, 60, initial, stage{40, 60})
}

func mustSchedule(tb testing.TB, s string) Schedule {
	tb.Helper()
	sc, err := ParseSchedule(s)
	if err != nil {
		tb.Fatal(err)
	}
	return sc
}

// runChaos runs sc under sched with the default policy and fails the test on any
// invariant violation.
func runChaos(tb testing.TB, sc scenarios.Scenario, seed uint64, sched string, opts ...Options) *Outcome {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	cfg := world.Config{Scenario: sc, Seed: seed, Policy: engine.DefaultPolicy(), InitialWorkers: -1}
	out, err := Run(context.Background(), cfg, mustSchedule(tb, sched), o)
	if err != nil {
		tb.Fatal(err)
	}
	if len(out.Violations) > 0 {
		tb.Errorf("seed %d, schedule %s: invariants broken:\n  %s", seed, sched, strings.Join(out.Violations, "\n  "))
	}
	return out
}

func at(d time.Duration) time.Time { return world.Epoch.Add(d) }

// acts returns the records' acts of a kind, with the record's time.
type timedAct struct {
	t time.Time
	a engine.Act
}

func actsOf(recs []engine.Record, kind string) []timedAct {
	var out []timedAct
	for _, r := range recs {
		for _, a := range r.Acted {
			if a.Kind == kind {
				out = append(out, timedAct{r.Time, a})
			}
		}
	}
	return out
}

func within(t time.Time, from, to time.Duration) bool {
	return !t.Before(at(from)) && t.Before(at(to))
}
