package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/reports"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/baseline"
	"github.com/smartscale/smartscale/sim/world"
)

// command is the command line that reproduces a run's report.
func command(o options, scenario string, compare bool) string {
	parts := []string{"go run ./sim -scenario", scenario, "-seed", fmt.Sprint(o.seed)}
	if o.policy != "" {
		parts = append(parts, "-policy", o.policy)
	}
	if compare {
		parts = append(parts, "-compare")
	}
	return strings.Join(parts, " ")
}

// writeReport writes the plots, report.html and report.md of a run into out; with -compare
// it first runs every baseline on the same scenario and seed and also writes comparison.json.
func writeReport(ctx context.Context, o options, sc scenarios.Scenario, pol engine.Policy, res *world.Result, out string,
	stdout io.Writer, logf func(string, ...any)) error {
	results := []*world.Result{res}
	if o.compare {
		var jobs []baseline.Job
		for _, b := range baseline.Compared(pol) {
			if b.Name != baseline.SmartScale {
				jobs = append(jobs, baseline.Job{Scenario: sc, Baseline: b})
			}
		}
		more, err := baseline.RunMany(ctx, jobs, o.seed, pol, 0, func(j baseline.Job, i int, wall time.Duration) {
			logf("baseline %s done (%d/%d, %v)\n", j.Baseline.Name, i, len(jobs), wall.Round(time.Millisecond))
		})
		if err != nil {
			return err
		}
		results = append(results, more...)
	}
	b, err := reports.Write(out, reports.Report{Scenario: sc, Seed: o.seed, Policy: pol,
		Command: command(o, o.scenario, o.compare), Results: results, Notes: policyNotes(pol)})
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if o.compare && !o.quiet {
		printComparison(stdout, b.Rows)
		fmt.Fprintf(stdout, "comparison: %s\n", filepath.Join(out, reports.FileComparison))
	}
	logf("report: %s\n", filepath.Join(out, reports.FileHTML))
	return nil
}

// policyNotes describes every compared policy for the reports.
func policyNotes(p engine.Policy) map[string]string {
	m := map[string]string{}
	for _, b := range baseline.Compared(p) {
		m[b.Name] = b.Description
	}
	return m
}

func printComparison(w io.Writer, rows []reports.Row) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tcost USD\tnode-h\tSLO min\tunder node-s\tp95 ms\tups\tdowns\tvs static-max\tx oracle\tTTC s\t")
	ptr := func(v *float64, f string) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf(f, *v)
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.4f\t%.2f\t%d\t%.0f\t%.0f\t%d\t%d\t%s\t%s\t%.0f\t\n", r.Policy, r.CostUSD, r.NodeHours,
			r.SLOViolationMinutes, r.UnderprovisionedNodeSeconds, r.Latency.P95, r.ScaleUps, r.ScaleDowns,
			ptr(r.SavingsVsStaticMaxPct, "%.1f%%"), ptr(r.CostVsOracle, "%.3f"), r.TimeToCapacitySeconds)
	}
	tw.Flush()
}

// reportAll runs every built-in scenario with every policy on one seed and writes each
// scenario's report into o.report/<scenario> and an index.html over them.
func reportAll(ctx context.Context, o options, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "sim:", err)
		return 1
	}
	start := time.Now()
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return fail(err)
	}
	var scs []scenarios.Scenario
	var jobs []baseline.Job
	for _, name := range scenarios.Names() {
		sc, err := scenarios.Load(name)
		if err != nil {
			return fail(err)
		}
		scs = append(scs, sc)
		for _, b := range baseline.Compared(pol) {
			jobs = append(jobs, baseline.Job{Scenario: sc, Baseline: b})
		}
	}
	results, err := baseline.RunMany(ctx, jobs, o.seed, pol, 0, func(j baseline.Job, i int, wall time.Duration) {
		if !o.quiet {
			fmt.Fprintf(stderr, "[%2d/%d] %-10s %-11s simulated %v in %v\n", i, len(jobs), j.Scenario.Name, j.Baseline.Name,
				j.Scenario.Duration(), wall.Round(time.Millisecond))
		}
	})
	if err != nil {
		return fail(err)
	}
	per := len(baseline.Compared(pol))
	entries := make([]reports.IndexEntry, len(scs))
	errs := make([]error, len(scs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, sc := range scs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			dir := filepath.Join(o.report, sc.Name)
			t := time.Now()
			b, err := reports.Write(dir, reports.Report{Scenario: sc, Seed: o.seed, Policy: pol,
				Command: command(o, sc.Name, true), Results: results[i*per : (i+1)*per], Notes: policyNotes(pol)})
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", sc.Name, err)
				return
			}
			if !o.quiet {
				mu.Lock()
				fmt.Fprintf(stderr, "report %s written in %v\n", filepath.Join(dir, reports.FileHTML), time.Since(t).Round(time.Millisecond))
				mu.Unlock()
			}
			entries[i] = reports.IndexEntry{Scenario: sc, Dir: sc.Name, Rows: b.Rows}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	cmd := fmt.Sprintf("go run ./sim -report %s -seed %d", o.report, o.seed)
	if o.policy != "" {
		cmd += " -policy " + o.policy
	}
	if err := reports.WriteIndex(o.report, entries, o.seed, cmd); err != nil {
		return fail(err)
	}
	if !o.quiet {
		fmt.Fprintf(stdout, "%s: %d scenarios x %d policies in %v\n", filepath.Join(o.report, reports.FileIndex), len(scs), per,
			time.Since(start).Round(time.Millisecond))
	}
	return 0
}
