package replay

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/chaos"
	"github.com/smartscale/smartscale/sim/world"
)

// TestFlightUnderChaos: with every fault the chaos harness injects (failed and retried
// launches, capacity backoff, lock contention, killed invocations, drains that time out,
// nodes that never become Ready, ...), every tick that reached Decide is re-decided byte for
// byte from its flight record.
func TestFlightUnderChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates several chaos runs")
	}
	sc, err := scenarios.Load("flash-sale")
	if err != nil {
		t.Fatal(err)
	}
	skippedAll := 0
	for seed := uint64(1); seed <= 6; seed++ {
		sched := chaos.Draw(seed, chaos.Names(), sc.Duration())
		out, err := chaos.Run(context.Background(), world.Config{Scenario: sc, Seed: seed, Policy: engine.DefaultPolicy(), InitialWorkers: -1}, sched, chaos.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := world.WriteDecisions(&buf, out.Result.Records); err != nil {
			t.Fatal(err)
		}
		all, _, err := ReadFlight(&buf)
		if err != nil {
			t.Fatal(err)
		}
		// The harness stands in a record for an invocation it holds paused; no Step wrote it.
		recs := slices.DeleteFunc(all, func(r FlightRecord) bool { return r.Record.Decision.Reason == "invocation paused (chaos)" })
		rep := VerifyFlight(recs, engine.DefaultPolicy(), nil)
		skippedAll += len(rep.Skipped)
		for _, m := range rep.Mismatches {
			t.Errorf("seed %d (schedule %s) tick %s:\nproduction %s\nreplayed   %s", seed, sched.String()[:min(80, len(sched.String()))]+"...", m.Time.Format("15:04:05"), m.Production, m.Replayed)
		}
		if rep.Checked < len(recs)/2 {
			t.Errorf("seed %d: only %d of %d ticks re-decided: %v", seed, rep.Checked, len(recs), rep.Skipped)
		}
	}
	t.Logf("%d ticks skipped (no Decide) over the runs", skippedAll)
}
