// Command sim runs SmartScale's engine against a simulated K3s cluster on AWS.
//
//	go run ./sim -scenario flash-sale
//
// See `go run ./sim -h` for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/progress"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/baseline"
	"github.com/smartscale/smartscale/sim/world"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	scenario string
	seed     uint64
	out      string
	policy   string
	list     bool
	quiet    bool
	chaos    string        // fault kinds, "all", "list" or an explicit schedule (sim/chaos.go)
	compare  bool          // run every baseline on the same seed (sim/compare.go)
	report   string        // every built-in scenario with every baseline into this directory
	replay   replayOptions // -replay, -closed-loop, -flight (sim/replay.go)
}

const usage = `Usage: go run ./sim [flags]

Runs SmartScale's autoscaling engine on a simulated K3s cluster on AWS, driven by a k6-style
load scenario, on a virtual clock: the same seed and inputs give byte-identical outputs.

Examples:
  go run ./sim -scenario flash-sale             # built-in scenario, seed 1
  go run ./sim -scenario ramp -seed 7 -out /tmp/ramp
  go run ./sim -scenario my-load.json -policy my-policy.json
  go run ./sim -list
  go run ./sim -replay testdata/recordings/diurnal-day.json    # open loop: what the policy would have decided
  go run ./sim -replay day.json -closed-loop -compare          # closed loop: the recorded demand, simulated
  go run ./sim -flight export.jsonl -policy other.json         # re-decide the Lambda's flight records
  go run ./sim record -prometheus URL -from now-24h -out day.json  # record a cluster's series (record -h)
  go run ./sim tune -space space.json -scenario flash-sale,ramp -seeds 1-3  # sweep policies (tune -h, docs/tune.md)
  (docs/replay.md)

Outputs (in -out):
  summary.json      cost, node-hours, latency, SLO and scaling measures (no wall-clock figures)
  timeline.csv      one row per simulated minute: load, workers, pods, CPU, memory, p95, cost, decision
  decisions.jsonl   one JSON object per autoscaler tick: time, observation, decision, acted
  policy.json       the policy the run used
  report.html       self-contained report (inline SVG charts); report.md the same table in Markdown
  plots/            workers, CPU/memory, pending pods, p95, cumulative cost, Pareto (PNG and SVG)
  comparison.json   with -compare: one object per policy (smartscale and every baseline)

Flags:
`

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.scenario, "scenario", "flash-sale", "built-in scenario `NAME` (see -list) or PATH of a k6-style scenario file")
	fs.Uint64Var(&o.seed, "seed", 1, "random `seed`: same seed and inputs, same outputs")
	fs.StringVar(&o.out, "out", "", "output `DIR` (default out/<scenario>)")
	fs.StringVar(&o.policy, "policy", "", "a preset (`brief`, the default, or responsive; docs/algorithm.md) or a JSON FILE of overrides on the defaults (snake_case keys, durations like \"5m\"; {\"preset\": \"responsive\", ...} starts from a preset)")
	fs.BoolVar(&o.list, "list", false, "list the built-in scenarios, one line each, and exit")
	fs.BoolVar(&o.quiet, "quiet", false, "print nothing but errors")
	fs.StringVar(&o.chaos, "chaos", "", "inject faults and check the invariants: `KINDS` (comma-separated), \"all\", \"list\" (the catalogue), or an explicit schedule kind@start+length#param,...")
	addReplayFlags(fs, &o.replay)
	fs.BoolVar(&o.compare, "compare", false, "also run every baseline (static-max, static-5, ca-like, ca-native, oracle, oracle-tick) and the other preset (preset-responsive or preset-brief) on the same seed: comparison.json and a comparison report")
	fs.StringVar(&o.report, "report", "", "run every built-in scenario with every baseline and write the reports and DIR/index.html into `DIR`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags come before, e.g. -scenario %s)", fs.Arg(0), fs.Arg(0))
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "record" {
		return runRecord(ctx, args[1:], stdout, stderr) // sim/record.go
	}
	if len(args) > 0 && args[0] == "tune" {
		return runTune(ctx, args[1:], stdout, stderr) // sim/tune.go
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sim:", err)
		return 2
	}
	if o.list {
		return listScenarios(stdout, stderr)
	}
	if o.chaos != "" {
		return runChaos(ctx, o, stdout, stderr)
	}
	if handled, code := runReplay(ctx, o, stdout, stderr); handled { // sim/replay.go
		return code
	}
	if o.report != "" {
		return reportAll(ctx, o, stdout, stderr)
	}
	if err := simulate(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "sim:", err)
		return 1
	}
	return 0
}

func listScenarios(stdout, stderr io.Writer) int {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, n := range scenarios.Names() {
		sc, err := scenarios.Load(n)
		if err != nil {
			fmt.Fprintf(stderr, "sim: built-in scenario %s: %v\n", n, err)
			return 1
		}
		fmt.Fprintf(tw, "%s\t%v\tpeak %.0f req/s\t%s\n", n, sc.Duration(), sc.PeakRate(), sc.Description)
	}
	tw.Flush()
	return 0
}

// loadPolicy returns the default policy with the overrides of file, if any; a preset name
// (brief, responsive) instead of a file is that preset (./NAME reads a file of that name).
func loadPolicy(file string) (engine.Policy, error) {
	p := engine.DefaultPolicy()
	if file == "" {
		return p, nil
	}
	if slices.Contains(engine.PresetNames(), file) {
		return engine.PresetPolicy(file)
	}
	f, err := os.Open(file)
	if err != nil {
		return p, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	p, err = engine.ParsePolicy(f, p)
	if err != nil {
		return p, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

func simulate(ctx context.Context, o options, stdout, stderr io.Writer) error {
	sc, err := loadScenario(o) // -scenario, or the closed-loop replay's derived scenario
	if err != nil {
		return err
	}
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = filepath.Join("out", sc.Name)
	}
	logf := func(format string, a ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, format, a...)
		}
	}
	cfg := world.Config{Scenario: sc, Seed: o.seed, Policy: pol, InitialWorkers: -1}
	var bar *progress.Bar // nil (silent) for short runs and -quiet
	hours := int64((sc.Duration() + time.Hour - 1) / time.Hour)
	if sc.Duration() >= 6*time.Hour && !o.quiet {
		bar = progress.New(stderr, fmt.Sprintf("simulated hours of %s", sc.Name), hours)
		var last int64
		cfg.Progress = func(done, _ time.Duration) {
			bar.Add(int64(done/time.Hour) - last)
			last = int64(done / time.Hour)
		}
	}
	start := time.Now()
	w, err := world.New(cfg)
	if err != nil {
		return err
	}
	res, err := w.Run(ctx)
	if err == nil {
		bar.Add(hours) // the last partial hour; capped at the total
	}
	bar.Finish()
	if err != nil {
		return err
	}
	wall := time.Since(start)
	if err := writeOutputs(out, res, pol); err != nil {
		return err
	}
	if err := writeReport(ctx, o, sc, pol, res, out, stdout, logf); err != nil {
		return err
	}
	if !o.quiet {
		printSummary(stdout, res.Summary, out)
		if !o.compare && o.replay.file == "" {
			if err := printPresets(ctx, stdout, o, sc, pol); err != nil {
				return err
			}
		}
	}
	logf("simulated %v in %v (%.0fx real time)\n", sc.Duration(), wall.Round(time.Millisecond),
		sc.Duration().Seconds()/max(wall.Seconds(), 1e-9))
	return nil
}

// printPresets runs the other shipped presets on the same scenario and seed and prints a
// line each: what they give, and how to run them.
func printPresets(ctx context.Context, w io.Writer, o options, sc scenarios.Scenario, pol engine.Policy) error {
	for _, b := range baseline.Presets(pol) {
		res, err := b.Run(ctx, sc, o.seed, pol)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(b.Name, baseline.PresetPrefix)
		s := res.Summary
		fmt.Fprintf(w, "%-18s %s preset on this seed: $%.4f, %d SLO minutes: go run ./sim -scenario %s -seed %d -policy %s\n",
			"other presets", name, s.CostUSD, s.SLOViolationMinutes, o.scenario, o.seed, name)
	}
	return nil
}

func writeOutputs(dir string, res *world.Result, pol engine.Policy) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return f.Close()
	}
	return errors.Join(
		write("summary.json", func(w io.Writer) error { return world.WriteSummary(w, res.Summary) }),
		write("timeline.csv", func(w io.Writer) error { return world.WriteTimeline(w, res.Timeline) }),
		write("decisions.jsonl", func(w io.Writer) error { return world.WriteDecisions(w, res.Records) }),
		write("policy.json", func(w io.Writer) error { return writePolicy(w, pol) }),
	)
}

// writePolicy writes the policy in the form -policy reads.
func writePolicy(w io.Writer, pol engine.Policy) error {
	b, err := pol.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func printSummary(w io.Writer, s world.Summary, out string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("scenario", "%s (seed %d, policy %s)", s.Scenario, s.Seed, s.Policy)
	row("simulated", "%v", time.Duration(s.SimulatedSeconds*float64(time.Second)))
	row("cost", "$%.4f (workers $%.4f + master $%.4f), $%.2f/month at this rate", s.CostUSD, s.WorkerCostUSD, s.MasterCostUSD, s.CostPerMonthUSD)
	row("node-hours", "%.2f", s.NodeHours)
	row("workers", "min %d, max %d; %d scale-ups, %d scale-downs, %d flaps", s.MinWorkers, s.MaxWorkers, s.ScaleUps, s.ScaleDowns, s.Flaps)
	row("latency", "p50 %.0f ms, p95 %.0f ms, p99 %.0f ms", s.Latency.P50, s.Latency.P95, s.Latency.P99)
	row("SLO", "%d violated minutes, %.0f of %.0f requests dropped", s.SLOViolationMinutes, s.DroppedRequests, s.TotalRequests)
	row("pending pods", "%.0f pod-seconds", s.PendingPodSeconds)
	row("under-provisioned", "%.0f node-seconds", s.UnderprovisionedNodeSeconds)
	if sp := spotText(s); sp != "" { // sim/spot.go
		row("spot", "%s", sp)
	}
	var ds []string
	for _, a := range []engine.Action{engine.ActionScaleUp, engine.ActionScaleDown, engine.ActionNone, engine.ActionCooldown,
		engine.ActionBusy, engine.ActionAtMax, engine.ActionAtMin, engine.ActionNoData, engine.ActionInterruption, engine.ActionRebalance} {
		if n := s.Decisions[string(a)]; n > 0 {
			ds = append(ds, fmt.Sprintf("%s %d", a, n))
		}
	}
	row("ticks", "%d (%s)", s.Ticks, strings.Join(ds, ", "))
	row("outputs", "%s/{summary.json,timeline.csv,decisions.jsonl}", out)
	tw.Flush()
}
