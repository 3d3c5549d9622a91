package world

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
)

func TestAlertmanagerGrouping(t *testing.T) {
	a := &alerting{pending: map[string]time.Time{}}
	at := func(s int) time.Time { return Epoch.Add(time.Duration(s) * time.Second) }
	steps := []struct {
		at     int
		firing []string
		want   []string
	}{
		{0, nil, nil},
		{5, []string{"A"}, nil},                      // a new group waits group_wait (1 s) ...
		{6, []string{"A"}, []string{"A"}},            // ... Alertmanager's timer, not an evaluation
		{10, []string{"A", "B"}, nil},                // the group changed: group_interval (30 s) after the last
		{35, []string{"A", "B"}, nil},                //
		{36, []string{"A", "B"}, []string{"A", "B"}}, //
		{40, []string{"A", "B"}, nil},                // unchanged: repeat_interval (1 m)
		{95, []string{"A", "B"}, nil},                //
		{96, []string{"A", "B"}, []string{"A", "B"}}, //
		{100, nil, nil},                              // resolved: the resolved notification is due at 126 ...
		{126, nil, nil},                              // ... and the handler does nothing with it
		{130, []string{"A"}, nil},                    // a new group again
		{131, []string{"A"}, []string{"A"}},
	}
	for _, s := range steps {
		if got := a.due(s.firing, at(s.at)); !slices.Equal(got, s.want) {
			t.Errorf("at %ds firing %v: notified %v, want %v", s.at, s.firing, got, s.want)
		}
	}
}

func TestAlertTicksOnAFlashSale(t *testing.T) {
	sc, err := scenarios.Load("flash-sale")
	if err != nil {
		t.Fatal(err)
	}
	p := engine.ResponsivePolicy()
	p.AlertTicks = true
	run := func() *Result {
		w, err := New(Config{Scenario: sc, Seed: 1, Policy: p, InitialWorkers: -1})
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := run()
	if res.Summary.AlertTicks == 0 {
		t.Fatal("no alert tick on a flash sale")
	}
	var alerts, schedule int
	var firstUp time.Time
	for _, r := range res.Records {
		switch {
		case r.Trigger == engine.TriggerSchedule:
			schedule++
		case strings.HasPrefix(r.Trigger, engine.TriggerAlertPrefix):
			alerts++
			if r.Decision.Action == engine.ActionScaleUp && firstUp.IsZero() {
				firstUp = r.Time
			}
		default:
			t.Fatalf("a tick without its trigger: %+v", r.Trigger)
		}
	}
	if alerts < res.Summary.AlertTicks || schedule == 0 {
		t.Errorf("%d alert ticks (summary %d), %d scheduled", alerts, res.Summary.AlertTicks, schedule)
	}
	// the spike begins at 20m; the schedule's next tick is at 22m05s: an alert tick acts first
	if firstUp.IsZero() || !firstUp.Before(Epoch.Add(22*time.Minute)) {
		t.Errorf("first alert scale-up at %v, want before the 22:05 scheduled tick", firstUp.Sub(Epoch))
	}
	var a, b strings.Builder
	_ = WriteDecisions(&a, res.Records)
	_ = WriteDecisions(&b, run().Records)
	if a.String() != b.String() {
		t.Error("alert ticks are not deterministic")
	}
}
