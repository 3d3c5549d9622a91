// Package baseline holds the policies SmartScale is compared against, each a world.Factory
// run on the same scenario and seed as the engine: static fleets (at the policy's max and
// the brief's fixed 5 workers), a cluster-autoscaler-style policy, and a clairvoyant oracle
// that knows the scenario's demand ahead (the cost floor), with its variant that acts only
// on the 2-minute tick grid.
//
// Baselines act on the world's cloud and cluster directly, record every tick as an
// engine.Record whose Decision has the engine's shape, and send their scaling events through
// the world's Notify, so the world's measures (scale-ups, scale-downs, flaps) count them the
// same way as the engine's.
package baseline

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// Names of the compared policies.
const (
	SmartScale = "smartscale"
	StaticMax  = "static-max"
	Static5    = "static-5"
	CALike     = "ca-like"
	CANative   = "ca-native"
	Oracle     = "oracle"
	OracleTick = "oracle-tick"
)

// Baseline is one compared policy.
type Baseline struct {
	Name        string
	Description string
	// Initial returns the run's initial workers, or -1 for the scenario's own.
	Initial func(sc scenarios.Scenario, p engine.Policy) int
	// Factory builds the autoscaler; nil is SmartScale's engine.
	Factory world.Factory
	// Policy, when set, turns the run's policy into the one this row runs (a preset row).
	Policy func(engine.Policy) engine.Policy
}

// PresetPrefix names the rows of the shipped presets other than the run's own.
const PresetPrefix = "preset-"

// Presets returns a row per shipped preset other than the run policy's own
// ("preset-responsive" beside a brief run, "preset-brief" beside a responsive one): SmartScale's
// engine on that preset as shipped, within the run's worker bounds, so every report shows
// what each preset gives on the same scenario and seed.
func Presets(run engine.Policy) []Baseline {
	own := cmp.Or(run.Preset, engine.PresetBrief)
	var out []Baseline
	for _, name := range engine.PresetNames() {
		if name == own {
			continue
		}
		out = append(out, Baseline{Name: PresetPrefix + name,
			Description: "SmartScale's engine on the " + name + " preset as shipped, within the run's worker bounds (docs/algorithm.md)",
			Initial:     func(scenarios.Scenario, engine.Policy) int { return -1 },
			Policy: func(p engine.Policy) engine.Policy {
				q, _ := engine.PresetPolicy(name)
				q.MinWorkers, q.MaxWorkers, q.ControlPlaneNodes = p.MinWorkers, p.MaxWorkers, p.ControlPlaneNodes
				if name == engine.PresetResponsive {
					q.ScaleUpMaxStep, q.ScaleDownMaxStep = q.MaxWorkers, max(1, q.MaxWorkers/2)
				}
				return q
			}})
	}
	return out
}

// Compared returns every row a comparison shows for a run on p: SmartScale, the other
// presets, then the baselines.
func Compared(p engine.Policy) []Baseline {
	all := All()
	return append(append(all[:1:1], Presets(p)...), all[1:]...)
}

// All returns every compared policy, SmartScale first, in the order reports show them.
func All() []Baseline {
	scenarioInitial := func(scenarios.Scenario, engine.Policy) int { return -1 }
	return []Baseline{
		{Name: SmartScale, Description: "SmartScale's engine with the run's policy", Initial: scenarioInitial},
		{Name: StaticMax, Description: "a fixed fleet at the policy's max workers; never acts",
			Initial: func(_ scenarios.Scenario, p engine.Policy) int { return p.MaxWorkers }, Factory: Static},
		{Name: Static5, Description: "the brief's fixed fleet of 5 workers; never acts",
			Initial: func(scenarios.Scenario, engine.Policy) int { return 5 }, Factory: Static},
		{Name: CALike, Description: "cluster-autoscaler style: up on pending pods only; down a node under 50% requested for 10 min, 10 min after a scale-up",
			Initial: scenarioInitial, Factory: NewCALike(DefaultCAConfig())},
		{Name: CANative, Description: "cluster-autoscaler as it runs in a cluster: the ca-like rules scanning every 10 s, no delay for new pods",
			Initial: scenarioInitial, Factory: NewCALike(NativeCAConfig())},
		{Name: Oracle, Description: "clairvoyant floor: each node launched the p90 boot+join+ready time before it is needed, released when idling costs more than relaunching",
			Initial: func(sc scenarios.Scenario, p engine.Policy) int { return NewPlan(sc, p, false).Initial },
			Factory: OracleFactory(false)},
		{Name: OracleTick, Description: "the oracle's plan snapped to the 2-minute tick grid (launch at the tick before, release at the tick after)",
			Initial: func(sc scenarios.Scenario, p engine.Policy) int { return NewPlan(sc, p, true).Initial },
			Factory: OracleFactory(true)},
	}
}

// ByName returns the named policy.
func ByName(name string) (Baseline, bool) {
	for _, b := range All() {
		if b.Name == name {
			return b, true
		}
	}
	return Baseline{}, false
}

// Config is the world configuration of b's run.
func (b Baseline) Config(sc scenarios.Scenario, seed uint64, p engine.Policy) world.Config {
	if b.Policy != nil {
		p = b.Policy(p)
	}
	return world.Config{Scenario: sc, Seed: seed, Policy: p, Name: b.Name, Autoscaler: b.Factory,
		InitialWorkers: b.Initial(sc, p)}
}

// Run simulates b on the scenario.
func (b Baseline) Run(ctx context.Context, sc scenarios.Scenario, seed uint64, p engine.Policy) (*world.Result, error) {
	w, err := world.New(b.Config(sc, seed, p))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name, err)
	}
	res, err := w.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name, err)
	}
	return res, nil
}

// Job is one run of RunMany.
type Job struct {
	Scenario scenarios.Scenario
	Baseline Baseline
}

// RunMany runs the jobs with up to parallel worlds at once (0: GOMAXPROCS) on the same seed
// and policy; results come back in the jobs' order. Each world is single-threaded and owns
// its random streams, so the results do not depend on parallel. done, when set, is called
// (from one goroutine at a time) after each job.
func RunMany(ctx context.Context, jobs []Job, seed uint64, p engine.Policy, parallel int, done func(j Job, i int, wall time.Duration)) ([]*world.Result, error) {
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	results := make([]*world.Result, len(jobs))
	errs := make([]error, len(jobs))
	var mu sync.Mutex
	finished := 0
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			start := time.Now()
			results[i], errs[i] = j.Baseline.Run(ctx, j.Scenario, seed, p)
			if done != nil {
				mu.Lock()
				finished++
				done(j, finished, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", jobs[i].Baseline.Name, jobs[i].Scenario.Name, err)
		}
	}
	return results, nil
}

// fleet is what a baseline sees of the world's workers.
type fleet struct {
	active    int // managed instances pending or running (the bound's count)
	ready     int // Ready, schedulable worker nodes
	draining  int // cordoned worker nodes
	launching int // active instances without a Ready node
}

func look(w *world.World) fleet {
	f := fleet{active: w.Workers()}
	f.ready, f.draining = w.ReadyWorkers()
	readyInst := 0
	for _, n := range w.Cluster.AllNodes() {
		if !n.ControlPlane && !n.Gone && n.Ready {
			readyInst++
		}
	}
	f.launching = max(0, f.active-readyInst)
	return f
}

// record starts a tick's record: the baselines hold no lock and query no metrics, so the
// observation carries the worker counts only.
func record(now time.Time, f fleet) engine.Record {
	return engine.Record{Time: now.UTC(), Lock: "none", Acted: []engine.Act{},
		Observation: engine.Observation{Time: now.UTC(), RegisteredWorkers: f.active - f.launching,
			Launching: f.launching, WorkersKnown: true},
		Decision: engine.Decision{Action: engine.ActionNone, Workers: f.active, Target: f.active}}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
