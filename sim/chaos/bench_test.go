package chaos

import (
	"context"
	"testing"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/commands"
	"github.com/leanovate/gopter/prop"
)

// benchCases draws n cases of the largest size the property generates (up to 4 stages and
// 6 faults), from a fixed seed.
func benchCases(b *testing.B, n int) []Case {
	params := gopter.DefaultGenParameters().WithSize(7)
	params.Rng.Seed(1)
	g := genCase()
	out := make([]Case, 0, n)
	for len(out) < n {
		if v, ok := g(params).Retrieve(); ok {
			out = append(out, v.(Case))
		}
	}
	return out
}

// BenchmarkChaosRun measures one chaos run of a generated case at the largest size: the
// invariant checks included, the determinism re-run not (runs/s is the figure to read).
func BenchmarkChaosRun(b *testing.B) {
	cases := benchCases(b, 64)
	b.ResetTimer()
	for i := range b.N {
		c := cases[i%len(cases)]
		c.Seed = c.Seed/10*10 + 1 // no determinism re-run
		if msg := checkCase(c, nil); msg != "" {
			b.Fatal(msg)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// BenchmarkChaosPropertyCI runs the CI property as CI does (1000 cases, the size growing
// over the run, determinism re-run on every tenth): run it with -benchtime=1x.
func BenchmarkChaosPropertyCI(b *testing.B) {
	for range b.N {
		params := chaosParams(b, 1000)
		res := prop.ForAll(func(c Case) string { return checkCase(c, nil) }, genCase()).Check(params)
		if !res.Passed() {
			b.Fatalf("property failed: %+v", res.Labels)
		}
	}
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "cases/s")
}

// BenchmarkChaosLockProtocol runs the commands state-machine test's 1000 sequences.
func BenchmarkChaosLockProtocol(b *testing.B) {
	for range b.N {
		params := gopter.DefaultTestParametersWithSeed(1)
		params.MinSuccessfulTests = 1000
		params.MaxSize = 40
		if res := commands.Prop(protocolCommands()).Check(params); !res.Passed() {
			b.Fatalf("protocol failed: %+v", res.Labels)
		}
	}
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "sequences/s")
}

// BenchmarkChaosStormCases measures generated cases per second under every fault kind at
// once, as TestPropertyChaosStorm runs them (the budget CI's 2,000 storm cases spend).
func BenchmarkChaosStormCases(b *testing.B) {
	cases := benchCases(b, 64)
	b.ResetTimer()
	for i := range b.N {
		c := cases[i%len(cases)]
		cfg, err := c.Config()
		if err != nil {
			b.Fatal(err)
		}
		out, err := Run(context.Background(), cfg, Draw(c.Seed, Names(), cfg.Scenario.Duration()), Options{Twin: true})
		if err != nil || len(out.Violations) > 0 {
			b.Fatalf("%v %v", err, out.Violations)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cases/s")
}
