package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/prop"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// checkCase runs one generated case and returns "" when every invariant holds, else the
// violations and the case. bend, when set, breaks the engine (tests of the harness).
func checkCase(c Case, bend func(*engine.Policy)) string {
	cfg, err := c.Config()
	if err != nil {
		return err.Error()
	}
	if bend != nil {
		cfg.Autoscaler = func(w *world.World) (world.Autoscaler, error) {
			a, err := world.SmartScale(w)
			if err == nil {
				bend(&world.Step(a).Policy)
			}
			return a, err
		}
	}
	// every tenth case also checks determinism (a second run of the same case)
	out, err := Run(context.Background(), cfg, c.Schedule(), Options{Twin: true, Determinism: c.Seed%10 == 0})
	if err != nil {
		return fmt.Sprintf("run failed: %v; case %s", err, c)
	}
	if len(out.Violations) > 0 {
		return fmt.Sprintf("%s\n  case: %s", strings.Join(out.Violations, "\n  "), c)
	}
	return ""
}

// TestPropertyChaosInvariants: every invariant holds for random scenarios, policies, fault
// schedules and seeds. CHAOS_CASES sets the number of cases (CI: 10,000; make chaos: 20,000
// per seed over 5 seeds), CHAOS_SEED the generator's seed.
func TestPropertyChaosInvariants(t *testing.T) {
	n := chaosCases(t, 10000)
	if testing.Short() {
		n = min(n, 30)
	}
	shardedProperty(t, "invariants hold under random scenarios, policies and faults", n, nil,
		prop.ForAll(func(c Case) string { return checkCase(c, nil) }, genCase()))
}

// TestPropertyChaosShrinks: with an engine that ignores its scale-up cooldown, the property
// fails and gopter shrinks the failing case to a small one.
func TestPropertyChaosShrinks(t *testing.T) {
	params := chaosParams(t, 200)
	params.MaxShrinkCount = 60
	p := prop.ForAll(func(c Case) string {
		return checkCase(c, func(p *engine.Policy) { p.ScaleUpCooldown = 0 })
	}, genCase())
	res := p.Check(params)
	if res.Passed() {
		t.Fatal("the broken engine passed: the harness cannot fail")
	}
	if len(res.Args) != 1 {
		t.Fatalf("result: %+v", res)
	}
	c := res.Args[0].Arg.(Case)
	orig := res.Args[0].OrigArg.(Case)
	t.Logf("shrunk after %d steps from %d stages, %d faults to: %s", res.Args[0].Shrinks, len(orig.Stages), len(orig.Faults), c)
	if len(c.Faults) > 1 || len(c.Stages) > 2 {
		t.Errorf("shrunk case is not small: %d stages, %d faults", len(c.Stages), len(c.Faults))
	}
	if !strings.Contains(checkCase(c, func(p *engine.Policy) { p.ScaleUpCooldown = 0 }), "inv 10") {
		t.Error("the shrunk case does not fail with the cooldown violation")
	}
}

// TestPropertyChaosStorm: random scenarios and policies under every fault kind at once,
// the schedule drawn from the case's seed as `-chaos all` does. CHAOS_CASES/5 cases (CI:
// 2,000).
func TestPropertyChaosStorm(t *testing.T) {
	n := max(1, chaosCases(t, 10000)/5)
	if testing.Short() {
		n = min(n, 10)
	}
	full := func(params *gopter.TestParameters) {
		params.MinSize = 7 // full-size scenarios
		params.MaxSize = 8
	}
	shardedProperty(t, "invariants hold with every fault kind scheduled", n, full, prop.ForAll(func(c Case) string {
		cfg, err := c.Config()
		if err != nil {
			return err.Error()
		}
		sched := Draw(c.Seed, Names(), cfg.Scenario.Duration())
		out, err := Run(context.Background(), cfg, sched, Options{Twin: true})
		if err != nil {
			return fmt.Sprintf("run failed: %v; case %s", err, c)
		}
		if len(out.Violations) > 0 {
			return fmt.Sprintf("%s\n  case: %s\n  schedule: %s", strings.Join(out.Violations, "\n  "), c, sched)
		}
		return ""
	}, genCase()))
}
