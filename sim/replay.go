package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/reports"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/metrics"
	"github.com/smartscale/smartscale/sim/replay"
	"github.com/smartscale/smartscale/sim/world"
)

// replayOptions are the flags of the replay modes (docs/replay.md).
type replayOptions struct {
	file         string // -replay: a recording
	closedLoop   bool   // -closed-loop: drive a simulated cluster with the recording's demand
	sim          string // -replay-sim: scenario whose simulator settings the closed loop uses
	flight       string // -flight: an export of the Lambda's flight records
	flightPolicy string // -flight-policy: the policy production ran
}

func addReplayFlags(fs *flag.FlagSet, r *replayOptions) {
	fs.StringVar(&r.file, "replay", "", "replay the recording `FILE` (query_range JSON or OpenMetrics): open loop, the decisions the policy would have taken (see docs/replay.md)")
	fs.BoolVar(&r.closedLoop, "closed-loop", false, "with -replay: derive demand from the recording and drive a simulated cluster with it")
	fs.StringVar(&r.sim, "replay-sim", "", "with -closed-loop: built-in scenario `NAME` or FILE whose simulator settings (node, app, HPA, EC2) to use (default: the defaults)")
	fs.StringVar(&r.flight, "flight", "", "re-decide the production flight records in `FILE` (a CloudWatch Logs export) and prove every decision is reproduced; with -policy, show where that policy differs")
	fs.StringVar(&r.flightPolicy, "flight-policy", "", "with -flight: JSON `FILE` of the policy production ran (default: the defaults)")
}

// runReplay runs -flight and open-loop -replay. It reports handled false for everything
// else, closed loop included: that is a simulation of the scenario loadScenario derives.
func runReplay(ctx context.Context, o options, stdout, stderr io.Writer) (handled bool, code int) {
	r := o.replay
	var err error
	switch {
	case r.flight != "" && r.file != "":
		fmt.Fprintln(stderr, "sim: -flight and -replay are separate modes: give one")
		return true, 2
	case r.closedLoop && r.file == "":
		fmt.Fprintln(stderr, "sim: -closed-loop needs -replay FILE")
		return true, 2
	case r.flight != "":
		var ok bool
		ok, err = flight(o, stdout)
		if err == nil && !ok {
			return true, 1
		}
	case r.file != "" && !r.closedLoop:
		err = audit(ctx, o, stdout, stderr)
	default:
		return false, 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sim:", err)
		return true, 1
	}
	return true, 0
}

// loadScenario is the scenario a simulation runs: the one -scenario names, or with
// -replay FILE -closed-loop the scenario derived from the recording's demand. The derived
// scenario file and the demand it came from are written beside the outputs
// (scenario.json, demand.csv), so `-scenario out/<name>/scenario.json` runs it again.
func loadScenario(o options) (scenarios.Scenario, error) {
	r := o.replay
	if r.file == "" || !r.closedLoop {
		return scenarios.Load(o.scenario)
	}
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return scenarios.Scenario{}, err
	}
	sc, data, demand, err := closedLoopScenario(r.file, r.sim, pol)
	if err != nil {
		return scenarios.Scenario{}, err
	}
	out := o.out
	if out == "" {
		out = filepath.Join("out", sc.Name)
	}
	var dem bytes.Buffer
	if err := replay.WriteDemand(&dem, demand); err != nil {
		return scenarios.Scenario{}, err
	}
	if err := errors.Join(os.MkdirAll(out, 0o755),
		os.WriteFile(filepath.Join(out, "scenario.json"), data, 0o644),
		os.WriteFile(filepath.Join(out, "demand.csv"), dem.Bytes(), 0o644)); err != nil {
		return scenarios.Scenario{}, fmt.Errorf("writing the derived scenario: %w", err)
	}
	return sc, nil
}

// closedLoopScenario derives the scenario of a recording's closed-loop replay: its demand
// minute by minute, on the simulator settings of simName (default: the defaults). data is
// the scenario file.
func closedLoopScenario(file, simName string, pol engine.Policy) (scenarios.Scenario, []byte, []replay.DemandPoint, error) {
	rec, err := replay.ReadFile(file)
	if err != nil {
		return scenarios.Scenario{}, nil, nil, err
	}
	base := scenarios.DefaultSim()
	if simName != "" {
		sc, err := scenarios.Load(simName)
		if err != nil {
			return scenarios.Scenario{}, nil, nil, fmt.Errorf("-replay-sim: %w", err)
		}
		base = sc.Sim
	}
	view := replay.NewView(rec, pol.ControlPlaneNodes)
	demand, err := replay.Demand(rec, view, base)
	if err != nil {
		return scenarios.Scenario{}, nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	name := "replay-" + recordingName(file)
	first, last, _ := rec.Bounds()
	desc := fmt.Sprintf("Closed-loop replay of %s (%s .. %s): arrival rate derived minute by minute from the recorded busy cores and pending pods.",
		filepath.Base(file), first.Format(time.RFC3339), last.Format(time.RFC3339))
	data, sc, err := replay.Scenario(name, desc, demand, base)
	if err != nil {
		return scenarios.Scenario{}, nil, nil, err
	}
	return sc, data, demand, nil
}

func recordingName(file string) string {
	base := filepath.Base(file)
	for _, ext := range []string{".json", ".om", ".txt", ".openmetrics"} {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

// audit is the open-loop replay: the engine's queries and Decide at every 2-minute tick
// of the recording.
func audit(ctx context.Context, o options, stdout, stderr io.Writer) error {
	rec, err := replay.ReadFile(o.replay.file)
	if err != nil {
		return err
	}
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return err
	}
	first, last, ok := rec.Bounds()
	if !ok {
		return fmt.Errorf("%s: the recording has no samples", o.replay.file)
	}
	st, err := rec.Store()
	if err != nil {
		return err
	}
	ticks := replay.Ticks(first, last, world.TickInterval, world.TickOffset, world.TickInterval)
	if len(ticks) == 0 {
		return fmt.Errorf("%s: the recording (%s .. %s) is too short for one tick", o.replay.file,
			first.Format(time.RFC3339), last.Format(time.RFC3339))
	}
	recs, err := replay.Audit(ctx, replay.AuditConfig{Policy: pol, Metrics: metrics.NewQuerier(st),
		View: replay.NewView(rec, pol.ControlPlaneNodes), Ticks: ticks})
	if err != nil {
		return err
	}
	policyName := "default"
	if o.policy != "" {
		policyName = filepath.Base(o.policy)
	}
	sum := replay.Summarize(recs, filepath.Base(o.replay.file), policyName, rec)
	out := o.out
	if out == "" {
		out = filepath.Join("out", "replay-"+recordingName(o.replay.file))
	}
	if err := writeAudit(out, recs, sum, pol); err != nil {
		return err
	}
	if err := writeAuditPlot(out, recs, pol, first, last, policyName, filepath.Base(o.replay.file)); err != nil {
		return err
	}
	if !o.quiet {
		printAudit(stdout, sum, out)
	}
	return nil
}

func writeAudit(dir string, recs []engine.Record, sum replay.AuditSummary, pol engine.Policy) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	write := func(name string, fn func(io.Writer) error) error {
		var b bytes.Buffer
		if err := fn(&b); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644)
	}
	return errors.Join(
		write("decisions.jsonl", func(w io.Writer) error { return world.WriteDecisions(w, recs) }),
		write("timeline.csv", func(w io.Writer) error { return replay.WriteAuditTimeline(w, recs) }),
		write("summary.json", func(w io.Writer) error { return replay.WriteSummary(w, sum) }),
		write("policy.json", func(w io.Writer) error { return writePolicy(w, pol) }),
	)
}

// writeAuditPlot draws the recorded CPU and memory readings at each tick against the
// policy's thresholds (plots/usage.png and .svg), with the reports' chart.
func writeAuditPlot(dir string, recs []engine.Record, pol engine.Policy, first, last time.Time, policy, recording string) error {
	shift := world.Epoch.Sub(first) // the charts count time from world.Epoch
	rows := make([]world.Row, len(recs))
	for i, r := range recs {
		rows[i] = world.Row{Time: r.Time.Add(shift), Action: r.Decision.Action, Delta: r.Decision.Delta}
		if rd := r.Observation.Readings.CPU; rd.OK() {
			rows[i].CPUPercent = rd.Value
		}
		if rd := r.Observation.Readings.Memory; rd.OK() {
			rows[i].MemoryPercent = rd.Value
		}
	}
	res := &world.Result{Summary: world.Summary{Policy: policy, Scenario: "replay of " + recording}, Timeline: rows}
	p, err := reports.UsageChart(res, last.Sub(first), pol)
	if err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	ch, err := reports.Render("usage", p)
	if err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	plots := filepath.Join(dir, "plots")
	return errors.Join(os.MkdirAll(plots, 0o755),
		os.WriteFile(filepath.Join(plots, "usage.png"), ch.PNG, 0o644),
		os.WriteFile(filepath.Join(plots, "usage.svg"), ch.SVG, 0o644))
}

func printAudit(w io.Writer, s replay.AuditSummary, out string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("replay", "%s, open loop (policy %s)", s.Recording, s.Policy)
	row("ticks", "%d, %s .. %s", s.Ticks, s.From, s.To)
	var ds []string
	for _, a := range []engine.Action{engine.ActionScaleUp, engine.ActionScaleDown, engine.ActionNone, engine.ActionCooldown,
		engine.ActionBusy, engine.ActionAtMax, engine.ActionAtMin, engine.ActionNoData} {
		if n := s.Decisions[string(a)]; n > 0 {
			ds = append(ds, fmt.Sprintf("%s %d", a, n))
		}
	}
	row("decisions", "%s", strings.Join(ds, ", "))
	row("would have", "%d scale-ups (+%d workers), %d scale-downs (-%d workers), %d flaps", s.ScaleUps, s.NodesAdded, s.ScaleDowns, s.NodesRemoved, s.Flaps)
	row("recorded workers", "min %d, max %d", s.RecordedWorkersMin, s.RecordedWorkersMax)
	row("outputs", "%s/{summary.json,timeline.csv,decisions.jsonl,policy.json,plots/usage.png}", out)
	tw.Flush()
}

// flight re-decides the flight records; ok is false when a production decision was not
// reproduced.
func flight(o options, stdout io.Writer) (ok bool, err error) {
	f, err := os.Open(o.replay.flight)
	if err != nil {
		return false, fmt.Errorf("reading flight records: %w", err)
	}
	defer f.Close()
	recs, _, err := replay.ReadFlight(f)
	if err != nil {
		return false, fmt.Errorf("%s: %w", o.replay.flight, err)
	}
	if len(recs) == 0 {
		return false, fmt.Errorf("%s: no flight records (want one JSON log line per tick with the record under \"record\")", o.replay.flight)
	}
	prod, err := loadPolicy(o.replay.flightPolicy)
	if err != nil {
		return false, err
	}
	var other *engine.Policy
	otherName := ""
	if o.policy != "" {
		p, err := loadPolicy(o.policy)
		if err != nil {
			return false, err
		}
		other, otherName = &p, filepath.Base(o.policy)
	}
	rep := replay.VerifyFlight(recs, prod, other)
	replay.WriteFlightReport(stdout, rep, otherName)
	return len(rep.Mismatches) == 0, nil
}
