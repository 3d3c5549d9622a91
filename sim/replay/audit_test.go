package replay

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/metrics"
	"github.com/smartscale/smartscale/sim/world"
)

// auditOf runs the open-loop replay of a recording with the default policy and returns the
// three output files' bytes.
func auditOf(t *testing.T, rec *Recording) (recs []engine.Record, decisions, timeline, summary []byte) {
	t.Helper()
	st, err := rec.Store()
	if err != nil {
		t.Fatal(err)
	}
	first, last, _ := rec.Bounds()
	pol := engine.DefaultPolicy()
	recs, err = Audit(context.Background(), AuditConfig{Policy: pol, Metrics: metrics.NewQuerier(st),
		View: NewView(rec, pol.ControlPlaneNodes), Ticks: Ticks(first, last, world.TickInterval, world.TickOffset, world.TickInterval)})
	if err != nil {
		t.Fatal(err)
	}
	var d, tl, s bytes.Buffer
	if err := world.WriteDecisions(&d, recs); err != nil {
		t.Fatal(err)
	}
	if err := WriteAuditTimeline(&tl, recs); err != nil {
		t.Fatal(err)
	}
	if err := WriteSummary(&s, Summarize(recs, "x.json", "default", rec)); err != nil {
		t.Fatal(err)
	}
	return recs, d.Bytes(), tl.Bytes(), s.Bytes()
}

func TestTicksAvoidSampleBoundaries(t *testing.T) {
	first := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	ticks := Ticks(first, first.Add(10*time.Minute), 2*time.Minute, 5*time.Second, 2*time.Minute)
	want := []string{"00:02:05", "00:04:05", "00:06:05", "00:08:05"}
	if len(ticks) != len(want) {
		t.Fatalf("ticks %v, want %v", ticks, want)
	}
	for i, tk := range ticks {
		if got := tk.Format("15:04:05"); got != want[i] {
			t.Errorf("tick %d = %s, want %s", i, got, want[i])
		}
	}
	// A recording starting off the minute still ticks on the 2-minute grid.
	ticks = Ticks(first.Add(47*time.Second), first.Add(7*time.Minute), 2*time.Minute, 5*time.Second, 2*time.Minute)
	if got := ticks[0].Format("15:04:05"); got != "00:04:05" {
		t.Errorf("first tick %s, want 00:04:05", got)
	}
}

// TestAuditDiurnalDay: on the static 3-worker fleet of the diurnal day, the policy wants
// fewer workers at night (no flapping) and more from the morning ramp, within cooldowns.
func TestAuditDiurnalDay(t *testing.T) {
	rec := shipped(t, "diurnal-day")
	recs, d1, tl1, s1 := auditOf(t, rec)
	if len(recs) != 719 {
		t.Fatalf("%d ticks, want 719 (every 2 minutes of a day, after a 2-minute warm-up)", len(recs))
	}
	sum := Summarize(recs, "diurnal-day.json", "default", rec)
	if sum.ScaleUps == 0 || sum.ScaleDowns == 0 {
		t.Errorf("want scale-ups and scale-downs on a diurnal day, got %+v", sum)
	}
	if sum.Flaps != 0 {
		t.Errorf("%d flaps on a smooth diurnal day", sum.Flaps)
	}
	if sum.RecordedWorkersMin != 3 || sum.RecordedWorkersMax != 3 {
		t.Errorf("recorded workers %d..%d, want the static 3", sum.RecordedWorkersMin, sum.RecordedWorkersMax)
	}
	byHour := func(a engine.Action) map[int]int {
		m := map[int]int{}
		for _, r := range recs {
			if r.Decision.Action == a {
				m[r.Time.Hour()]++
			}
		}
		return m
	}
	ups, downs := byHour(engine.ActionScaleUp), byHour(engine.ActionScaleDown)
	for h := range 6 {
		if ups[h] > 0 {
			t.Errorf("scale-up at %02d:00 on a quiet night", h)
		}
		if downs[h] == 0 {
			t.Errorf("no scale-down at %02d:00 on a quiet night (3 workers at ~15%% CPU)", h)
		}
	}
	if ups[9]+ups[10]+ups[11]+ups[12] == 0 {
		t.Error("no scale-up during the morning and lunch peak (3 workers saturated)")
	}
	// Cooldowns hold: no two scale-ups within 5 minutes, no two scale-downs within 10.
	var lastUp, lastDown time.Time
	for _, r := range recs {
		switch r.Decision.Action {
		case engine.ActionScaleUp:
			if !lastUp.IsZero() && r.Time.Sub(lastUp) < 5*time.Minute {
				t.Errorf("scale-ups at %s and %s inside the cooldown", lastUp, r.Time)
			}
			lastUp = r.Time
		case engine.ActionScaleDown:
			if !lastDown.IsZero() && r.Time.Sub(lastDown) < 10*time.Minute {
				t.Errorf("scale-downs at %s and %s inside the cooldown", lastDown, r.Time)
			}
			if r.Decision.Node == "" || r.Decision.Node == "k3s-master" {
				t.Errorf("scale-down at %s names node %q", r.Time, r.Decision.Node)
			}
			lastDown = r.Time
		}
		if r.Lock != engine.LockDryRun {
			t.Errorf("lock %q, want dry_run", r.Lock)
		}
	}
	// Same input, byte-identical outputs.
	_, d2, tl2, s2 := auditOf(t, rec)
	if !bytes.Equal(d1, d2) || !bytes.Equal(tl1, tl2) || !bytes.Equal(s1, s2) {
		t.Error("two replays of the same recording differ")
	}
}

// TestAuditWeeklyPeak: the newsletter spike at 10:00 on 4 workers asks for a worker within
// minutes (pods pending), then for 2 at once when CPU is high and pods pend together.
func TestAuditWeeklyPeak(t *testing.T) {
	recs, _, _, _ := auditOf(t, shipped(t, "weekly-peak"))
	spike := time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC)
	var first, double *engine.Record
	for i := range recs {
		r := &recs[i]
		if r.Decision.Action != engine.ActionScaleUp || r.Time.Before(spike) {
			continue
		}
		if first == nil {
			first = r
		}
		if double == nil && r.Decision.Delta == 2 {
			double = r
		}
	}
	if first == nil || first.Time.After(spike.Add(10*time.Minute)) {
		t.Fatalf("first scale-up after the 10:00 spike: %+v, want within 10 minutes", first)
	}
	if double == nil || double.Time.After(spike.Add(15*time.Minute)) {
		t.Fatalf("scale-up by 2: %+v, want within 15 minutes of the spike", double)
	}
	for _, trig := range []string{engine.TriggerCPUHigh, engine.TriggerPending} {
		if !slices.Contains(double.Decision.Triggers, trig) {
			t.Errorf("scale-up by 2 at %s lacks trigger %s: %v", double.Time, trig, double.Decision.Triggers)
		}
	}
}
