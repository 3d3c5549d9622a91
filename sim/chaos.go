package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/chaos"
	"github.com/smartscale/smartscale/sim/world"
)

// runChaos runs the scenario under a fault schedule (-chaos) and checks the invariants of
// issue 5. A violation makes it exit 1 after printing the seed and the command that
// reproduces the run.
func runChaos(ctx context.Context, o options, stdout, stderr io.Writer) int {
	if o.chaos == "list" {
		listFaults(stdout)
		return 0
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "sim:", err)
		return 1
	}
	sc, err := scenarios.Load(o.scenario)
	if err != nil {
		return fail(err)
	}
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return fail(err)
	}
	var sched chaos.Schedule
	if chaos.IsSchedule(o.chaos) {
		if sched, err = chaos.ParseSchedule(o.chaos); err != nil {
			return fail(fmt.Errorf("-chaos: %w", err))
		}
	} else {
		kinds, err := chaos.ParseKinds(o.chaos)
		if err != nil {
			return fail(fmt.Errorf("-chaos: %w", err))
		}
		sched = chaos.Draw(o.seed, kinds, sc.Duration())
	}
	out := o.out
	if out == "" {
		out = filepath.Join("out", sc.Name)
	}
	cfg := world.Config{Scenario: sc, Seed: o.seed, Policy: pol, InitialWorkers: -1}
	res, err := chaos.Run(ctx, cfg, sched, chaos.Options{Twin: true, Determinism: true})
	if err != nil {
		return fail(err)
	}
	if err := writeOutputs(out, res.Result, pol); err != nil {
		return fail(err)
	}
	if err := writeInvocations(filepath.Join(out, "invocations.jsonl"), res.Invocations); err != nil {
		return fail(err)
	}
	if !o.quiet {
		printSummary(stdout, res.Result.Summary, out)
		fmt.Fprintf(stdout, "faults             %s\n", injectedText(res.Injected))
		fmt.Fprintf(stdout, "schedule           %s\n", sched)
	}
	if v := res.Violations; len(v) > 0 {
		fmt.Fprintf(stderr, "sim: %d invariant %s (seed %d):\n", len(v), plural(len(v), "violation"), o.seed)
		for _, s := range v {
			fmt.Fprintln(stderr, "  "+s)
		}
		fmt.Fprintf(stderr, "reproduce: %s\n", reproduce(o))
		return 1
	}
	if !o.quiet {
		fmt.Fprintf(stdout, "invariants         all %d hold\n", len(chaos.Invariants)-1)
	}
	return 0
}

// writeInvocations writes every invocation of the run (primary ticks, duplicates,
// overlapping and resumed ones), one JSON object a line.
func writeInvocations(path string, invs []chaos.Invocation) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, iv := range invs {
		if err := enc.Encode(iv); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return f.Close()
}

func listFaults(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range chaos.Catalogue() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, k.Layer, k.Summary)
	}
	tw.Flush()
}

func injectedText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// reproduce is the command line that runs the same chaos run again.
func reproduce(o options) string {
	args := []string{"go", "run", "./sim", "-scenario", shellQuote(o.scenario), "-chaos", shellQuote(o.chaos),
		"-seed", fmt.Sprint(o.seed)}
	if o.policy != "" {
		args = append(args, "-policy", shellQuote(o.policy))
	}
	return strings.Join(args, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./,@+#:=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
