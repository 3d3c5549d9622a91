package chaos

import (
	"context"
	"strings"
	"testing"
)

// Cases the property runs found in the spot code, kept as regressions.
func TestSpotChaosRegressions(t *testing.T) {
	for _, c := range []struct {
		name string
		c    Case
	}{
		// A rebalance's at-risk node waited for its replacement's operation to end; the
		// tick ended that operation after it had looked at the at-risk one, so the duplicate
		// of the tick cordoned and drained it (inv 13). It now asks the observation whether
		// the replacement joined.
		{"at-risk drain independent of the order of operations", Case{Seed: 1826400554, Start: 20, Stages: []StageSpec{{10, 20}, {9, 156}, {6, 20}},
			Policy: PolicySpec{Min: 3, UpCPU: 50, DownCPUGap: 10, UpMem: 60, DownMemGap: 10, UpSustain: 1, DownSustain: 2,
				ReadyTimeout: 3, DrainTimeout: 1, Step: 1, DownStep: 1, Requested: 80, SpotPct: 5}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := c.c.Config()
			if err != nil {
				t.Fatal(err)
			}
			out, err := Run(context.Background(), cfg, Draw(c.c.Seed, Names(), cfg.Scenario.Duration()), Options{Twin: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Violations) > 0 {
				t.Errorf("%s", strings.Join(out.Violations, "\n"))
			}
			if out.Injected[RebalanceFlood] == 0 {
				t.Errorf("the case no longer exercises rebalance recommendations: %v", out.Injected)
			}
		})
	}
}
