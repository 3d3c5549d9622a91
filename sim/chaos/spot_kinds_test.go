package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// One test per spot fault kind, on a policy with spot (the kinds do nothing without spot
// workers), and tests that the spot invariants can fail.

func spotPolicy(pct, base int) engine.Policy {
	p := engine.DefaultPolicy()
	p.SpotPercent, p.OnDemandBase = pct, base
	return p
}

func runSpotChaos(t *testing.T, p engine.Policy, initial int, sched string) *Outcome {
	t.Helper()
	sc := scenarioOf(t, 300, initial, stage{40, 300})
	cfg := world.Config{Scenario: sc, Seed: 3, Policy: p, InitialWorkers: -1}
	out, err := Run(context.Background(), cfg, mustSchedule(t, sched), Options{Twin: true, Determinism: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Violations) > 0 {
		t.Errorf("schedule %s: invariants broken:\n  %s", sched, strings.Join(out.Violations, "\n  "))
	}
	return out
}

func noticesOf(out *Outcome, kind engine.NoticeKind) []engine.Record {
	var recs []engine.Record
	for _, r := range out.Result.Records {
		if r.Notice != nil && r.Notice.Kind == kind {
			recs = append(recs, r)
		}
	}
	return recs
}

func TestChaosKindSpotStorm(t *testing.T) {
	out := runSpotChaos(t, spotPolicy(100, 1), 5, "spot-storm@10m+4m#50")
	needInjected(t, out, SpotStorm)
	recs := noticesOf(out, engine.NoticeInterruption)
	if len(recs) < 2 {
		t.Fatalf("%d interruption records for a storm over 4 spot workers", len(recs))
	}
	for _, r := range recs {
		if r.Decision.Action != engine.ActionInterruption || !strings.Contains(kindsOfActs(r.Acted), "cordon") {
			t.Errorf("%s: %s %q acts %s", r.Time.Format(time.TimeOnly), r.Decision.Action, r.Decision.Reason, kindsOfActs(r.Acted))
		}
	}
	if out.World.Cloud.Interruptions == 0 {
		t.Error("no instance reclaimed")
	}
}

func TestChaosKindSpotZoneOutage(t *testing.T) {
	out := runSpotChaos(t, spotPolicy(100, 0), 4, "spot-zone-outage@8m+20m#0")
	needInjected(t, out, SpotZoneOutage)
	zone := world.Offerings[0].Zone
	for _, r := range out.Result.Records {
		if !within(r.Time, 8*time.Minute+time.Second, 28*time.Minute) {
			continue
		}
		for _, a := range r.Acted {
			if a.Kind == "launch" && a.Result == "ok" && strings.Contains(a.Offering, zone+"/") && strings.HasSuffix(a.Offering, "/spot") {
				t.Errorf("spot launched in %s during its outage: %+v", zone, a)
			}
		}
	}
}

func TestChaosKindRebalanceFlood(t *testing.T) {
	out := runSpotChaos(t, spotPolicy(100, 0), 3, "rebalance-flood@6m+6m#0")
	needInjected(t, out, RebalanceFlood)
	replaced := map[string]int{}
	for _, r := range noticesOf(out, engine.NoticeRebalance) {
		if r.Decision.Action == engine.ActionRebalance {
			replaced[r.Notice.Instance]++
		}
	}
	if len(replaced) == 0 {
		t.Fatal("no replacement for a flood of recommendations")
	}
	for id, n := range replaced {
		if n > 1 {
			t.Errorf("%s replaced %d times", id, n)
		}
	}
}

func TestChaosKindInterruptDuringDrain(t *testing.T) {
	// too many workers for a quiet load: a scale-down drains, and a spot worker is warned
	sc := scenarioOf(t, 60, 5, stage{40, 60})
	p := spotPolicy(100, 0)
	cfg := world.Config{Scenario: sc, Seed: 2, Policy: p, InitialWorkers: -1}
	out, err := Run(context.Background(), cfg, mustSchedule(t, "interrupt-during-drain@10m+25m#0"), Options{Twin: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Violations) > 0 {
		t.Errorf("invariants broken:\n  %s", strings.Join(out.Violations, "\n  "))
	}
	needInjected(t, out, InterruptDuringDrain)
	recs := noticesOf(out, engine.NoticeInterruption)
	if len(recs) != 1 {
		t.Fatalf("%d interruption records", len(recs))
	}
	r := recs[0]
	if r.Decision.Delta != 0 || (r.Decision.Action == engine.ActionInterruption && !strings.Contains(r.Decision.Reason, "keeping") && !strings.Contains(r.Decision.Reason, "its operation")) {
		t.Errorf("an interruption during a drain launched a replacement: %+v", r.Decision)
	}
}

// Without spot in the policy the spot kinds inject nothing.
func TestSpotKindsNeedSpot(t *testing.T) {
	out := runChaos(t, spike(t), 1, "spot-storm@8m+10m,rebalance-flood@8m+10m,spot-zone-outage@8m+10m,interrupt-during-drain@0s+40m")
	for _, k := range []string{SpotStorm, RebalanceFlood, InterruptDuringDrain} {
		if out.Injected[k] != 0 {
			t.Errorf("%s fired %d times on an on-demand fleet", k, out.Injected[k])
		}
	}
}

// The spot invariants can fail: an engine that ignores the on-demand base (16), a cloud
// that leaves a spot request open (17), a node whose Ready workers are taken away beyond a
// tick plus a boot (19).
func TestSpotInvariantsCanFail(t *testing.T) {
	t.Run("on-demand base ignored", func(t *testing.T) {
		p := spotPolicy(100, 2)
		cfg := world.Config{Scenario: scenarioOf(t, 300, 3, stage{30, 300}), Seed: 1, Policy: p, InitialWorkers: -1}
		cfg.Autoscaler = func(w *world.World) (world.Autoscaler, error) {
			a, err := world.SmartScale(w)
			if err == nil {
				world.Step(a).Policy.OnDemandBase = 0
			}
			return a, err
		}
		cfg.Setup = func(w *world.World) error { // an on-demand worker dies; the bent engine replaces it with spot
			w.Loop.At(at(5*time.Minute), func() {
				for _, in := range w.Cloud.All() {
					if !in.Offering.Spot() {
						w.Cloud.Interrupt(in.ID)
						return
					}
				}
			})
			return nil
		}
		wantViolation(t, cfg, "inv 16")
	})
	t.Run("min not Ready again", func(t *testing.T) {
		cfg := world.Config{Scenario: quiet(t, 2), Seed: 1, Policy: engine.DefaultPolicy(), InitialWorkers: -1}
		cfg.Setup = func(w *world.World) error {
			w.Loop.At(at(5*time.Minute), func() {
				for _, n := range w.Cluster.AllNodes() {
					if !n.ControlPlane {
						w.Cluster.SetNodeReady(n.Name, false) // NotReady for good, its instance live
						return
					}
				}
			})
			return nil
		}
		wantViolation(t, cfg, "inv 19")
	})
}

func wantViolation(t *testing.T, cfg world.Config, inv string) {
	t.Helper()
	out, err := Run(context.Background(), cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out.Violations {
		if strings.HasPrefix(v, inv+" ") {
			return
		}
	}
	t.Errorf("want a %s violation, got %v", inv, out.Violations)
}

func kindsOfActs(acts []engine.Act) string {
	var out []string
	for _, a := range acts {
		out = append(out, a.Kind)
	}
	return strings.Join(out, ",")
}
