package chaos

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/gen"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// Generators of random chaos cases for gopter: a scenario (k6 stages within bounds), a
// valid policy, a fault schedule and a seed. Every field shrinks towards a small, quiet
// case, so a failure is reported as a short schedule on a short scenario.

// StageSpec is one k6 stage.
type StageSpec struct {
	Minutes int // 2-10
	Target  int // requests/s, 20-900
}

// PolicySpec holds the policy's knobs as offsets that are valid by construction.
type PolicySpec struct {
	Min, Extra         int // MinWorkers 1-3, MaxWorkers = Min + 1 + Extra (0-7)
	UpCPU, DownCPUGap  int // ScaleUpCPUPercent 50-90, ScaleDownCPUPercent = UpCPU - gap (10-40)
	UpMem, DownMemGap  int // ScaleUpMemoryPercent 60-90, ScaleDownMemoryPercent = UpMem - gap (10-40)
	UpSustain          int // minutes, 1-5
	DownSustain        int // minutes, 2-12
	UpCooldown         int // minutes, 0-8
	DownCooldown       int // minutes, 0-12
	ReadyTimeout       int // minutes, 3-12
	DrainTimeout       int // minutes, 1-8
	Step, MaxStepExtra int // ScaleUpStep 1-2, ScaleUpMaxStep = Step + 0-2
	// The responsive preset (0: brief, 1: responsive) and its rules' knobs.
	Responsive  int // 0-1
	DownStep    int // ScaleDownMaxStep 1-3
	Requested   int // ScaleDownRequestedPercent 80-100
	PredictMins int // PredictHorizon 0-3 minutes (0: off)
	Headroom    int // HeadroomPods 0-3
	// Capacity: spot share, on-demand base, zone spread, spot allocation, instance types.
	SpotPct    int // SpotPercent 0-100, in steps of 10 (0: on-demand only)
	Base       int // OnDemandBase 0-3, capped at MaxWorkers
	ZoneSpread int // 0-1
	Alloc      int // index in spotAllocs
	Types      int // index in typeLists (0: the configured offerings)
	Alerts     int // 0: no alert ticks; 1: alert ticks; 2: alert ticks with alert_tick_min_interval 0
}

var (
	spotAllocs = []string{engine.AllocPriceCapacity, engine.AllocLowestPrice, engine.AllocPrioritized}
	typeLists  = [][]string{nil, {"t3.medium", "t3a.medium"}, {"t3a.medium", "t3.large", "t3.medium"}}
)

// FaultSpec is one scheduled fault.
type FaultSpec struct {
	Kind   int // index in the catalogue
	AtSec  int // start, seconds from the beginning (0-2400)
	ForSec int // length, seconds (60-900)
	Param  uint32
}

// Case is one generated chaos run.
type Case struct {
	Seed    uint64
	Start   int // start rate, requests/s (20-300)
	Initial int // initial workers: MinWorkers + Initial, capped at MaxWorkers (0-6)
	Stages  []StageSpec
	Policy  PolicySpec
	Faults  []FaultSpec
}

const (
	maxStages = 4
	maxFaults = 6
)

func genStage() gopter.Gen {
	return gen.Struct(reflect.TypeOf(StageSpec{}), map[string]gopter.Gen{
		"Minutes": gen.IntRange(2, 10),
		"Target":  gen.IntRange(20, 900),
	})
}

func genPolicySpec() gopter.Gen {
	return gen.Struct(reflect.TypeOf(PolicySpec{}), map[string]gopter.Gen{
		"Min": gen.IntRange(1, 3), "Extra": gen.IntRange(0, 7),
		"UpCPU": gen.IntRange(50, 90), "DownCPUGap": gen.IntRange(10, 40),
		"UpMem": gen.IntRange(60, 90), "DownMemGap": gen.IntRange(10, 40),
		"UpSustain": gen.IntRange(1, 5), "DownSustain": gen.IntRange(2, 12),
		"UpCooldown": gen.IntRange(0, 8), "DownCooldown": gen.IntRange(0, 12),
		"ReadyTimeout": gen.IntRange(3, 12), "DrainTimeout": gen.IntRange(1, 8),
		"Step": gen.IntRange(1, 2), "MaxStepExtra": gen.IntRange(0, 2),
		"Responsive": gen.IntRange(0, 1), "DownStep": gen.IntRange(1, 3), "Requested": gen.IntRange(80, 100),
		"PredictMins": gen.IntRange(0, 3), "Headroom": gen.IntRange(0, 3),
		"SpotPct": gen.IntRange(0, 10), "Base": gen.IntRange(0, 3), "ZoneSpread": gen.IntRange(0, 1),
		"Alloc": gen.IntRange(0, len(spotAllocs)-1), "Types": gen.IntRange(0, len(typeLists)-1),
		"Alerts": gen.IntRange(0, 2),
	})
}

func genFault() gopter.Gen {
	return gen.Struct(reflect.TypeOf(FaultSpec{}), map[string]gopter.Gen{
		"Kind":   gen.IntRange(0, len(catalogue)-1),
		"AtSec":  gen.IntRange(0, 2400),
		"ForSec": gen.IntRange(60, 900),
		"Param":  gen.UInt32(),
	})
}

// genCase generates whole chaos cases.
func genCase() gopter.Gen {
	return gen.Struct(reflect.TypeOf(Case{}), map[string]gopter.Gen{
		"Seed":    gen.UInt64Range(1, 1<<32),
		"Start":   gen.IntRange(20, 300),
		"Initial": gen.IntRange(0, 6),
		"Stages":  gen.SliceOf(genStage()),
		"Policy":  genPolicySpec(),
		"Faults":  gen.SliceOf(genFault()),
	})
}

// Policy builds the policy; it is valid for every spec.
func (p PolicySpec) Build() engine.Policy {
	pol := engine.DefaultPolicy()
	if p.Responsive == 1 {
		pol = engine.ResponsivePolicy()
		pol.ScaleDownMaxStep = p.DownStep
		pol.ScaleDownRequestedPercent = float64(p.Requested)
		pol.PredictHorizon = time.Duration(p.PredictMins) * time.Minute
		pol.HeadroomPods = p.Headroom
		pol.AlertTicks = p.Alerts >= 1
		if p.Alerts == 2 {
			pol.AlertTickMinInterval = 0
		}
	}
	pol.MinWorkers = p.Min
	pol.MaxWorkers = p.Min + 1 + p.Extra
	pol.ScaleUpCPUPercent = float64(p.UpCPU)
	pol.ScaleDownCPUPercent = float64(p.UpCPU - p.DownCPUGap)
	pol.ScaleUpMemoryPercent = float64(p.UpMem)
	pol.ScaleDownMemoryPercent = float64(p.UpMem - p.DownMemGap)
	pol.ScaleUpSustain = time.Duration(p.UpSustain) * time.Minute
	pol.ScaleDownSustain = time.Duration(p.DownSustain) * time.Minute
	pol.ScaleUpCooldown = time.Duration(p.UpCooldown) * time.Minute
	pol.ScaleDownCooldown = time.Duration(p.DownCooldown) * time.Minute
	pol.NodeReadyTimeout = time.Duration(p.ReadyTimeout) * time.Minute
	pol.DrainTimeout = time.Duration(p.DrainTimeout) * time.Minute
	pol.ScaleUpStep = p.Step
	pol.ScaleUpMaxStep = p.Step + p.MaxStepExtra
	if p.Responsive == 1 {
		pol.ScaleUpMaxStep = pol.MaxWorkers // the preset's: the packing sizes the step
	}
	pol.SpotPercent = 10 * p.SpotPct
	pol.OnDemandBase = min(p.Base, pol.MaxWorkers)
	pol.ZoneSpread = p.ZoneSpread == 1
	pol.SpotAllocation = spotAllocs[p.Alloc%len(spotAllocs)]
	pol.InstanceTypes = typeLists[p.Types%len(typeLists)]
	return pol
}

func (c Case) stages() []stage {
	var out []stage
	for _, s := range c.Stages[:min(len(c.Stages), maxStages)] {
		out = append(out, stage{s.Minutes, float64(s.Target)})
	}
	if len(out) == 0 {
		out = []stage{{10, float64(c.Start)}}
	}
	return out
}

// Schedule builds the fault schedule.
func (c Case) Schedule() Schedule {
	var s Schedule
	for _, f := range c.Faults[:min(len(c.Faults), maxFaults)] {
		s = append(s, Fault{Kind: catalogue[f.Kind].Name, At: time.Duration(f.AtSec) * time.Second,
			For: time.Duration(f.ForSec) * time.Second, Param: f.Param})
	}
	return s
}

// Config builds the world's config: the initial workers lie within the policy's bounds.
func (c Case) Config() (world.Config, error) {
	pol := c.Policy.Build()
	if err := pol.Validate(); err != nil {
		return world.Config{}, fmt.Errorf("generator made an invalid policy: %w", err)
	}
	initial := min(pol.MinWorkers+c.Initial, pol.MaxWorkers)
	sc, err := parseScenario(float64(c.Start), initial, c.stages())
	if err != nil {
		return world.Config{}, fmt.Errorf("generator made an invalid scenario: %w", err)
	}
	return world.Config{Scenario: sc, Seed: c.Seed, Policy: pol, InitialWorkers: -1}, nil
}

// String is what a failing case prints: enough to rebuild it in a regression test.
func (c Case) String() string {
	var st []string
	for _, s := range c.stages() {
		st = append(st, fmt.Sprintf("%dm->%.0f", s.min, s.target))
	}
	pol, _ := c.Policy.Build().MarshalJSON()
	return fmt.Sprintf("seed %d, start %d req/s, %d initial workers, stages [%s], schedule %q, policy %+v (%s)",
		c.Seed, c.Start, min(c.Policy.Min+c.Initial, c.Policy.Min+1+c.Policy.Extra), strings.Join(st, " "), c.Schedule().String(), c.Policy, pol)
}

// Scenario returns the case's scenario (for tests that need it).
func (c Case) Scenario() (scenarios.Scenario, error) {
	cfg, err := c.Config()
	return cfg.Scenario, err
}

// chaosCases is the number of generated cases: CHAOS_CASES, else def.
func chaosCases(tb testing.TB, def int) int {
	if s := os.Getenv("CHAOS_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			tb.Fatalf("CHAOS_CASES=%q: want a positive number", s)
		}
		return n
	}
	return def
}

// chaosShards is how many parallel shards a property run is split into: CHAOS_SHARDS,
// else 2 (a fixed number, so the cases do not depend on the machine). Shard i runs on the
// gopter seed CHAOS_SEED+1000*i (so make chaos's seeds 1-5 never share a shard); a failure names its shard's seed, which reproduces it with
// CHAOS_SHARDS=1.
func chaosShards(tb testing.TB) int {
	if s := os.Getenv("CHAOS_SHARDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			tb.Fatalf("CHAOS_SHARDS=%q: want a positive number", s)
		}
		return n
	}
	return 2
}

// shardedProperty checks a property over cases cases split into parallel shards, each a
// subtest with its own gopter seed.
func shardedProperty(t *testing.T, name string, cases int, tune func(*gopter.TestParameters), p gopter.Prop) {
	shards := min(chaosShards(t), cases)
	base := chaosSeed(t)
	t.Logf("%d cases in %d shards, gopter seeds %d + 1000*shard (CHAOS_SEED, CHAOS_CASES and CHAOS_SHARDS change them)",
		cases, shards, base)
	for i := range shards {
		n := cases / shards
		if i < cases%shards {
			n++
		}
		seed := base + 1000*int64(i)
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			t.Parallel()
			params := chaosParamsSeed(seed, n)
			if tune != nil {
				tune(params)
			}
			props := gopter.NewProperties(params)
			props.Property(name, p)
			props.TestingRun(t)
		})
	}
}

// chaosSeed is the gopter seed: CHAOS_SEED, else a fixed one so CI is reproducible.
func chaosSeed(tb testing.TB) int64 {
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatalf("CHAOS_SEED=%q: want a number", s)
		}
		return n
	}
	return 20260105
}

func chaosParams(tb testing.TB, cases int) *gopter.TestParameters {
	return chaosParamsSeed(chaosSeed(tb), cases)
}

func chaosParamsSeed(seed int64, cases int) *gopter.TestParameters {
	p := gopter.DefaultTestParametersWithSeed(seed)
	p.MinSuccessfulTests = cases
	p.MaxSize = 7 // slices: 0-6 elements, growing over the run
	p.MaxShrinkCount = 200
	return p
}
