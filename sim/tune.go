package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/progress"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/tune"
)

const tuneUsage = `Usage: go run ./sim tune -space SPACE.json (-scenario a,b,... | -replay REC.json -closed-loop) [flags]
       go run ./sim tune merge -out DIR SHARD_DIR...

Sweeps policies: every point of SPACE (the full grid when it has at most -budget points, else a
seeded Latin-hypercube sample of -budget points) runs on every scenario and seed, beside the base
policy, the baselines (static-max, static-5, ca-like) and the oracle on the same scenarios and
seeds. Writes the cost/SLO Pareto frontier and the cheapest policy within the SLO budget. One
simulated world per goroutine: the outputs are the same bytes whatever -parallel and however the
sweep is sharded (docs/tune.md).

SPACE is a JSON object of policy keys, each with a list of values, a range or one value:
  {"scale_up_sustain": ["1m", "2m", "3m"],
   "scale_up_max_step": {"min": 2, "max": 8},
   "scale_down_sustain": {"min": "5m", "max": "15m", "step": "5m"},
   "scale_up_cpu_percent": {"min": 55, "max": 75, "step": 2.5},
   "preset": ["brief", "responsive"]}
Each point is a policy file (the keys over the base policy) read by the engine's own parser:
any key a policy file takes can be swept. Integer ranges step by 1, duration ranges by 1s,
decimal ranges need a step.

Examples:
  go run ./sim tune -space space.json -scenario flash-sale,ramp,sustained,diurnal -seeds 1-3 -out out/tune
  go run ./sim tune -space space.json -replay day.json -closed-loop -seeds 1-5
  go run ./sim tune -resume out/tune         # after Ctrl-C (or the same command again): skip the finished runs
  go run ./sim tune -space space.json -scenario ramp -shard 0/3 -out out/shard-0   # one of 3 shards
  go run ./sim tune merge -out out/tune out/shard-0 out/shard-1 out/shard-2

Outputs (in -out):
  points.jsonl       one line per point: its policy, per scenario and in total: cost, SLO minutes, p95, flaps, x oracle
  points.csv         the same as a table, one column per key
  frontier.json      the points no other point beats on both total cost and total SLO minutes
  best-policy.json   the cheapest point with at most -slo-minutes per run on every scenario: a policy file
                     for -policy and for the Lambda's POLICY_JSON (absent when no point qualifies)
  references.json    the base policy, the baselines and the oracle
  report.html        the recommendation, the Pareto plot (plots/pareto.png and .svg) and the frontier
  sweep.json, space.json, runs.jsonl   the sweep and every finished run (for -resume and merge)

The garbage collector runs at GOGC=400 unless GOGC is set; GOMEMLIMIT bounds the heap.

Flags:
`

// tuneOptions are the parsed flags of tune.
type tuneOptions struct {
	space, scenarios, replays, replaySim, policy, seeds, shard, resume, out string
	closedLoop, quiet                                                       bool
	budget, parallel                                                        int
	sampleSeed                                                              uint64
	sloMinutes, maxFlaps                                                    float64
	set                                                                     map[string]bool // flags given
}

func parseTuneFlags(args []string, stderr io.Writer) (tuneOptions, error) {
	var o tuneOptions
	fs := flag.NewFlagSet("sim tune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, tuneUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.space, "space", "", "the space `FILE`: policy keys with their values or ranges (above)")
	fs.StringVar(&o.scenarios, "scenario", "", "comma-separated built-in scenario `NAMES` (see sim -list) or scenario files")
	fs.StringVar(&o.replays, "replay", "", "comma-separated recording `FILES` to tune on, with -closed-loop (each becomes a scenario)")
	fs.BoolVar(&o.closedLoop, "closed-loop", false, "with -replay: drive simulated clusters with each recording's demand (required: an open-loop replay has no cost or SLO to tune on)")
	fs.StringVar(&o.replaySim, "replay-sim", "", "with -closed-loop: built-in scenario `NAME` or FILE whose simulator settings (node, app, HPA, EC2) to use")
	fs.StringVar(&o.policy, "policy", "", "the base policy the points override and the base reference: a preset (brief, the default, or responsive) or a JSON `FILE` of overrides; a point's \"preset\" starts from that preset instead")
	fs.StringVar(&o.seeds, "seeds", "1-3", "the `SEEDS` every point runs on: a range 1-5, a list 1,3,7 or both")
	fs.IntVar(&o.budget, "budget", 100, "at most `N` points: the full grid when it has at most N points, else a Latin-hypercube sample of N")
	fs.Uint64Var(&o.sampleSeed, "sample-seed", 1, "seed of the Latin-hypercube sample")
	fs.Float64Var(&o.sloMinutes, "slo-minutes", 1, "the recommendation's budget: at most `M` SLO-violation minutes per run (mean over the seeds) on every scenario")
	fs.Float64Var(&o.maxFlaps, "max-flaps", -1, "and at most `F` flaps (a scale-up and a scale-down within 10 minutes) per run on every scenario (-1: no limit)")
	fs.IntVar(&o.parallel, "parallel", 0, "simulated worlds at once (`P`; 0: GOMAXPROCS, one per core); the outputs do not depend on it")
	fs.StringVar(&o.shard, "shard", "", "run only the `i/n`-th slice of the points (0 <= i < n: the points whose index is i mod n; merge the shards with tune merge)")
	fs.StringVar(&o.resume, "resume", "", "continue the sweep in `DIR` (its sweep.json gives every setting), skipping its finished runs; a sweep whose -out already holds it continues the same way")
	fs.StringVar(&o.out, "out", "", "output `DIR` (default out/tune, or the -resume DIR)")
	fs.BoolVar(&o.quiet, "quiet", false, "print nothing but errors (no progress: a bar with ETA on a terminal, a line every 10% otherwise)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags come before; merge is `sim tune merge -out DIR SHARD_DIR...`)", fs.Arg(0))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

func runTune(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "merge" {
		return runTuneMerge(args[1:], stdout, stderr)
	}
	o, err := parseTuneFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sim tune:", err)
		return 2
	}
	pl, err := tunePlan(o)
	if err != nil {
		fmt.Fprintln(stderr, "sim tune:", err)
		return 2
	}
	if os.Getenv("GOGC") == "" {
		// worlds allocate fast and keep little: collecting at 5x the live heap instead of 2x
		// saves about a tenth of the work (GOMEMLIMIT still bounds the heap)
		debug.SetGCPercent(400)
	}
	out := o.out
	switch {
	case out == "" && o.resume != "":
		out = o.resume
	case out == "":
		out = filepath.Join("out", "tune")
	case o.resume != "" && filepath.Clean(out) != filepath.Clean(o.resume):
		fmt.Fprintf(stderr, "sim tune: -resume %s continues in that directory; -out %s differs\n", o.resume, out)
		return 2
	}
	logf := func(format string, a ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, format, a...)
		}
	}
	s := pl.Spec
	mine := len(pl.MinePoints())
	per := len(s.Scenarios) * len(s.Seeds)
	shard := ""
	if s.Shard.Count > 1 {
		shard = fmt.Sprintf(", shard %s: %d of them", s.Shard, mine)
	}
	par := o.parallel
	if par == 0 {
		par = runtime.GOMAXPROCS(0)
	}
	logf("sweep: %d points (%s%s) x %d scenarios x %d seeds = %d runs, + %d reference runs; %d at once -> %s\n",
		len(pl.Points), pl.Mode, shard, len(s.Scenarios), len(s.Seeds), mine*per, len(tune.References())*per, par, out)
	opt := tune.Options{Parallel: par, Resume: o.resume != ""}
	if !o.quiet {
		// a bar with rate and ETA on a terminal, a line every 10% otherwise
		opt.Progress = func(total int) tune.Progress { return progress.New(stderr, "tune: runs", int64(total)) }
	}
	res, err := tune.RunSweep(ctx, pl, out, opt)
	if errors.Is(err, tune.ErrInterrupted) {
		fmt.Fprintf(stderr, "sim tune: %v; continue with: go run ./sim tune -resume %s\n", err, out)
		return 130
	}
	if err != nil {
		fmt.Fprintln(stderr, "sim tune:", err)
		return 1
	}
	if res.Resumed > 0 {
		logf("resumed: %d runs were done, %d ran now\n", res.Resumed, res.Ran)
	}
	if !o.quiet {
		printTune(stdout, res.Summary, out)
	}
	return 0
}

// tunePlan builds the sweep from the flags, or from the -resume directory's sweep.json
// (flags that define the sweep must then agree with it).
func tunePlan(o tuneOptions) (*tune.Plan, error) {
	if o.resume != "" {
		spec, err := tune.LoadSpec(o.resume)
		if err != nil {
			return nil, err
		}
		given, err := overlay(spec, o)
		if err != nil {
			return nil, err
		}
		if d := tune.Differences(spec, given); len(d) > 0 {
			return nil, fmt.Errorf("-resume %s: the sweep there differs from the flags given: %s (give -resume alone to continue it)", o.resume, strings.Join(d, ", "))
		}
		return tune.NewPlan(spec)
	}
	spec, err := tuneSpec(o)
	if err != nil {
		return nil, err
	}
	return tune.NewPlan(spec)
}

func tuneSpec(o tuneOptions) (tune.Spec, error) {
	var spec tune.Spec
	var errs []error
	if o.space == "" {
		errs = append(errs, errors.New("-space FILE is required (see -h for its form)"))
	} else if data, err := os.ReadFile(o.space); err != nil {
		errs = append(errs, fmt.Errorf("reading the space: %w", err))
	} else {
		spec.Space = data
	}
	switch {
	case o.scenarios == "" && o.replays == "":
		errs = append(errs, errors.New("give the scenarios to tune on: -scenario a,b,... or -replay REC.json -closed-loop"))
	case o.scenarios != "" && o.replays != "":
		errs = append(errs, errors.New("-scenario and -replay are separate modes: give one"))
	case o.replays != "" && !o.closedLoop:
		errs = append(errs, errors.New("-replay needs -closed-loop in tune: an open-loop replay only re-decides the recorded ticks, with no cost or SLO minutes to tune on"))
	case o.closedLoop && o.replays == "":
		errs = append(errs, errors.New("-closed-loop needs -replay FILE"))
	}
	base, err := loadPolicy(o.policy)
	if err != nil {
		errs = append(errs, err)
	}
	spec.Base = base
	if spec.Seeds, err = tune.ParseSeeds(o.seeds); err != nil {
		errs = append(errs, err)
	}
	spec.Shard = tune.Whole
	if o.shard != "" {
		if spec.Shard, err = tune.ParseShard(o.shard); err != nil {
			errs = append(errs, err)
		}
	}
	if o.parallel < 0 {
		errs = append(errs, fmt.Errorf("-parallel must be >= 0, got %d", o.parallel))
	}
	spec.Budget, spec.SampleSeed, spec.SLOMinutes, spec.MaxFlaps = o.budget, o.sampleSeed, o.sloMinutes, o.maxFlaps
	if err := errors.Join(errs...); err != nil {
		return spec, err
	}
	if spec.Scenarios, err = tuneScenarios(o, base); err != nil {
		return spec, err
	}
	spec.Command = tuneCommand(o)
	return spec, errors.Join(errs...)
}

// tuneCommand is the sweep's command line, without the flags that only split or place it.
func tuneCommand(o tuneOptions) string {
	parts := []string{"go run ./sim tune -space", o.space}
	add := func(flag, v string) {
		if v != "" {
			parts = append(parts, flag, v)
		}
	}
	add("-scenario", o.scenarios)
	add("-replay", o.replays)
	if o.closedLoop {
		parts = append(parts, "-closed-loop")
	}
	add("-replay-sim", o.replaySim)
	add("-policy", o.policy)
	parts = append(parts, "-seeds", o.seeds, "-budget", fmt.Sprint(o.budget))
	if o.set["sample-seed"] {
		parts = append(parts, "-sample-seed", fmt.Sprint(o.sampleSeed))
	}
	parts = append(parts, "-slo-minutes", fmt.Sprint(o.sloMinutes))
	if o.maxFlaps >= 0 {
		parts = append(parts, "-max-flaps", fmt.Sprint(o.maxFlaps))
	}
	return strings.Join(parts, " ")
}

// tuneScenarios resolves -scenario and -replay into the sweep's scenarios.
func tuneScenarios(o tuneOptions, base engine.Policy) ([]tune.Scenario, error) {
	var out []tune.Scenario
	var errs []error
	for _, name := range splitList(o.scenarios) {
		sc, err := scenarios.Load(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("-scenario %s: %w", name, err))
			continue
		}
		out = append(out, tune.Scenario{Source: name, Scenario: sc})
	}
	for _, file := range splitList(o.replays) {
		sc, _, _, err := closedLoopScenario(file, o.replaySim, base)
		if err != nil {
			errs = append(errs, fmt.Errorf("-replay %s: %w", file, err))
			continue
		}
		src := "closed-loop replay of " + file
		if o.replaySim != "" {
			src += " on " + o.replaySim
		}
		out = append(out, tune.Scenario{Source: src, Scenario: sc})
	}
	return out, errors.Join(errs...)
}

// overlay is the -resume directory's spec with the sweep-defining flags given on top, to
// compare: -resume DIR -seeds 1-5 must be the sweep in DIR.
func overlay(spec tune.Spec, o tuneOptions) (tune.Spec, error) {
	var err error
	var errs []error
	if o.set["space"] {
		if spec.Space, err = os.ReadFile(o.space); err != nil {
			errs = append(errs, fmt.Errorf("reading the space: %w", err))
		}
	}
	if o.set["policy"] {
		if spec.Base, err = loadPolicy(o.policy); err != nil {
			errs = append(errs, err)
		}
	}
	if o.set["seeds"] {
		if spec.Seeds, err = tune.ParseSeeds(o.seeds); err != nil {
			errs = append(errs, err)
		}
	}
	if o.set["shard"] {
		if spec.Shard, err = tune.ParseShard(o.shard); err != nil {
			errs = append(errs, err)
		}
	}
	if o.set["budget"] {
		spec.Budget = o.budget
	}
	if o.set["sample-seed"] {
		spec.SampleSeed = o.sampleSeed
	}
	if o.set["slo-minutes"] {
		spec.SLOMinutes = o.sloMinutes
	}
	if o.set["max-flaps"] {
		spec.MaxFlaps = o.maxFlaps
	}
	if o.set["scenario"] || o.set["replay"] {
		if spec.Scenarios, err = tuneScenarios(o, spec.Base); err != nil {
			errs = append(errs, err)
		}
	}
	return spec, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runTuneMerge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim tune merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the merged sweep's `DIR` (required)")
	quiet := fs.Bool("quiet", false, "print nothing but errors")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: go run ./sim tune merge -out DIR SHARD_DIR...\n\nMerges the shard directories of one sweep (tune -shard i/n, all n of them, finished) into DIR,\nas if the sweep had run whole: the same bytes. Nothing is written when a check fails.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "sim tune merge:", err)
		return 2
	}
	if *out == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "sim tune merge: want -out DIR and the shard directories: sim tune merge -out DIR SHARD_DIR...")
		return 2
	}
	sum, err := tune.Merge(*out, fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "sim tune", err)
		return 1
	}
	if !*quiet {
		printTune(stdout, sum, *out)
	}
	return 0
}

// printTune prints the recommendation, the frontier and the output files.
func printTune(w io.Writer, sum *tune.Summary, out string) {
	base, _ := sum.Reference(tune.RefBase)
	orc, _ := sum.Reference("oracle")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\tcost USD\tSLO min\tworst p95 ms\tx oracle\tpolicy\n")
	line := func(name string, l tune.Line) {
		x := "-"
		if l.Total.XOracle != nil {
			x = fmt.Sprintf("%.3f", *l.Total.XOracle)
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%g\t%.0f\t%s\t%s\n", name, l.Total.CostUSD, l.Total.SLOMinutes, l.Total.P95Ms, x, l.Policy)
	}
	line("base", base)
	line("oracle", orc)
	for _, i := range sum.Frontier {
		l := sum.Points[i]
		name := fmt.Sprintf("frontier p%d", *l.Point)
		if i == sum.Best {
			name = fmt.Sprintf("best p%d", *l.Point)
		}
		line(name, l)
	}
	if b, ok := sum.BestLine(); ok && !b.Frontier {
		line(fmt.Sprintf("best p%d", *b.Point), b)
	}
	tw.Flush()
	s := sum.Plan.Spec
	if b, ok := sum.BestLine(); ok {
		pct := ""
		if base.Total.CostUSD > 0 {
			pct = fmt.Sprintf(" (%+.1f%%)", 100*(b.Total.CostUSD/base.Total.CostUSD-1))
		}
		fmt.Fprintf(w, "best: point %d, $%.4f vs base $%.4f%s, %g vs %g SLO minutes, %g vs %g flaps (%s)\n",
			*b.Point, b.Total.CostUSD, base.Total.CostUSD, pct, b.Total.SLOMinutes, base.Total.SLOMinutes,
			b.Total.Flaps, base.Total.Flaps, tune.BudgetText(s))
		fmt.Fprintf(w, "policy: %s (use with -policy, or as the Lambda's POLICY_JSON)\n", filepath.Join(out, tune.FileBest))
	} else {
		fmt.Fprintf(w, "best: none of the %d points has %s (no %s); see the frontier\n",
			len(sum.Points), tune.BudgetText(s), tune.FileBest)
	}
	fmt.Fprintf(w, "report: %s\n", filepath.Join(out, tune.FileReport))
}
