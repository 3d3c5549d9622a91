package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// The alert storm on the spike with the responsive preset and alert ticks: the engine's
// alert_tick_min_interval (30 s) lets about one alert tick through per interval; with the
// interval 0 (a valid policy) every notification ticks. Either way at most one scale action
// per instant and every invariant holds; without alert ticks the storm injects nothing.
func TestChaosKindAlertStorm(t *testing.T) {
	p := engine.ResponsivePolicy()
	p.AlertTicks = true
	run := func(p engine.Policy, sched string) *Outcome {
		cfg := world.Config{Scenario: spike(t), Seed: 2, Policy: p, InitialWorkers: -1}
		out, err := Run(context.Background(), cfg, mustSchedule(t, sched), Options{Twin: true, Determinism: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Violations) > 0 {
			t.Errorf("schedule %s: invariants broken:\n  %s", sched, strings.Join(out.Violations, "\n  "))
		}
		return out
	}
	base := run(p, "notify-down@0s+1s")
	out := run(p, "alert-storm@5m+12m#2")
	needInjected(t, out, AlertStorm)
	got, was := out.Result.Summary.AlertTicks, base.Result.Summary.AlertTicks
	if limit := was + int(12*time.Minute/p.AlertTickMinInterval) + 1; got <= was || got > limit {
		t.Errorf("%d alert ticks with the storm, %d without: want more, and at most %d (one per %v)", got, was, limit, p.AlertTickMinInterval)
	}
	unlimited := p
	unlimited.AlertTickMinInterval = 0
	flood := run(unlimited, "alert-storm@5m+12m#2")
	if n := flood.Result.Summary.AlertTicks; n < 200 {
		t.Errorf("%d alert ticks in a 12-minute storm every 3 s without a min interval, want 200 at least", n)
	}
	for _, o := range []*Outcome{out, flood} {
		acted := map[time.Time]int{}
		for _, r := range o.Result.Records {
			if r.Decision.Action == engine.ActionScaleUp || r.Decision.Action == engine.ActionScaleDown {
				acted[r.Time]++
			}
		}
		for at, n := range acted {
			if n > 1 {
				t.Errorf("%d scale actions at %s", n, at.Format(time.TimeOnly))
			}
		}
	}

	off := engine.ResponsivePolicy()
	cfg := world.Config{Scenario: spike(t), Seed: 2, Policy: off, InitialWorkers: -1}
	quiet, err := Run(context.Background(), cfg, mustSchedule(t, "alert-storm@0s+40m"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if quiet.Injected[AlertStorm] != 0 || quiet.Result.Summary.AlertTicks != 0 {
		t.Errorf("alert storm without alert ticks: %d injected, %d alert ticks", quiet.Injected[AlertStorm], quiet.Result.Summary.AlertTicks)
	}
}
