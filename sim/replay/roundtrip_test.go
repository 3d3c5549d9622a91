package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/runtime/handler"
	"github.com/smartscale/smartscale/runtime/prom"
	"github.com/smartscale/smartscale/sim/metrics"
	"github.com/smartscale/smartscale/sim/world"
)

// shift moves every sample by d.
func shift(r *Recording, d time.Duration) *Recording {
	out := &Recording{}
	for _, s := range r.Series {
		ns := Series{Labels: s.Labels, Samples: make([]Sample, len(s.Samples))}
		for i, smp := range s.Samples {
			ns.Samples[i] = Sample{T: smp.T + d.Milliseconds(), V: smp.V}
		}
		out.Series = append(out.Series, ns)
	}
	return out
}

// TestRoundTripThroughPrometheus: realistic series (4.5 hours of the diurnal day: quiet
// night, then the morning ramp) backfilled into a real Prometheus 2.42 with promtool,
// recorded back through the HTTP API in chunks, written and parsed as a file, replayed open
// loop; the decisions equal those engine.Query + engine.Decide take through the runtime's
// Prometheus adapter at the same ticks. The samples sit 7 s off the 15 s grid, so neither
// the ticks nor the subqueries' steps fall on a sample (Prometheus 2.x closes range selectors
// on the left, the 3.x library used in the replay does not).
func TestRoundTripThroughPrometheus(t *testing.T) {
	day := shipped(t, "diurnal-day")
	from := time.Date(2026, 1, 5, 5, 0, 0, 0, time.UTC)
	orig := shift(day.Window(from, from.Add(4*time.Hour+30*time.Minute)), 7*time.Second)
	first, last, _ := orig.Bounds()
	var om bytes.Buffer
	if err := orig.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	url := realtest.Prometheus(t, om.String())

	// Record: query_range of each metric at the samples' 30 s, in 1 h chunks.
	client, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	progress := 0
	got, err := Fetch(ctx, v1.NewAPI(client), FetchConfig{From: first, To: last, Step: 30 * time.Second, Chunk: time.Hour,
		Progress: func(done, total int) { progress = done }})
	if err != nil {
		t.Fatal(err)
	}
	if want := 5 * 5; progress != want {
		t.Errorf("%d requests, want %d (5 metrics x 5 chunks)", progress, want)
	}
	checkRecorded(t, orig, got)

	// Write the recording as a file and read it back, as `sim record` and `sim -replay` do.
	path := filepath.Join(t.TempDir(), "rec.json")
	var buf bytes.Buffer
	if err := got.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	replayed, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Diff(replayed); d != "" {
		t.Fatalf("file round trip: %s", d)
	}

	// Replay open loop, and run the same ticks against the real Prometheus.
	pol := engine.DefaultPolicy()
	view := NewView(replayed, pol.ControlPlaneNodes)
	ticks := Ticks(first, last, world.TickInterval, world.TickOffset, world.TickInterval)
	st, err := replayed.Store()
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := Audit(ctx, AuditConfig{Policy: pol, Metrics: metrics.NewQuerier(st), View: view, Ticks: ticks})
	if err != nil {
		t.Fatal(err)
	}
	live, err := prom.New(url, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	fromProm, err := Audit(ctx, AuditConfig{Policy: pol, Metrics: live, View: view, Ticks: ticks})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[engine.Action]int{}
	for i := range ticks {
		a, b := fromFile[i], fromProm[i]
		actions[a.Decision.Action]++
		da, _ := json.Marshal(a.Decision)
		db, _ := json.Marshal(b.Decision)
		if !bytes.Equal(da, db) {
			t.Errorf("tick %s:\nreplay     %s\nprometheus %s", ticks[i].Format(time.RFC3339), da, db)
		}
		for _, name := range engine.QueryNames() {
			ra, rb := a.Observation.Readings.Get(name), b.Observation.Readings.Get(name)
			if ra.Problem != rb.Problem || math.Abs(ra.Value-rb.Value) > 1e-6*max(1, math.Abs(rb.Value)) {
				t.Errorf("tick %s %s: replay %+v, prometheus %+v", ticks[i].Format(time.RFC3339), name, ra, rb)
			}
		}
	}
	// And through the runtime's explain mode (bootstrap -explain -prometheus URL -at TIME),
	// given the replay's state at each tick: the same readings, the same decision.
	for i, at := range ticks {
		ex, err := handler.Explain(ctx, pol, live, at, handler.ExplainOptions{Workers: -1, State: &fromFile[i].State})
		if err != nil {
			t.Fatalf("explain at %s: %v", at.Format(time.RFC3339), err)
		}
		obs := fromFile[i].Observation
		obs.Nodes, obs.Instances = nil, nil // explain mode has no cluster or cloud listing
		want, _ := json.Marshal(handler.Decide(at, pol, obs, fromFile[i].State))
		got, _ := json.Marshal(ex.Decision)
		if !bytes.Equal(want, got) {
			t.Errorf("tick %s:\nreplay  %s\nexplain %s", at.Format(time.RFC3339), want, got)
		}
		wr, _ := json.Marshal(obs.Readings)
		gr, _ := json.Marshal(ex.Observation.Readings)
		if !bytes.Equal(wr, gr) {
			t.Errorf("tick %s readings:\nreplay  %s\nexplain %s", at.Format(time.RFC3339), wr, gr)
		}
	}
	// The window must exercise the policy: scale-downs at night, scale-ups in the morning.
	if actions[engine.ActionScaleUp] == 0 || actions[engine.ActionScaleDown] == 0 || len(ticks) < 120 {
		t.Errorf("window too tame: %d ticks, %v", len(ticks), actions)
	}
}

// checkRecorded: every backfilled sample comes back at its time with its value. query_range
// also repeats a series' last value for up to the 5-minute lookback after it ends (a pod
// that went away); nothing else may be added.
func checkRecorded(t *testing.T, want, got *Recording) {
	t.Helper()
	if len(got.Series) != len(want.Series) {
		t.Fatalf("recorded %d series, backfilled %d", len(got.Series), len(want.Series))
	}
	for i, ws := range want.Series {
		gs := got.Series[i]
		if SeriesName(ws.Labels) != SeriesName(gs.Labels) {
			t.Fatalf("series %d: recorded %s, backfilled %s", i, SeriesName(gs.Labels), SeriesName(ws.Labels))
		}
		if len(gs.Samples) < len(ws.Samples) {
			t.Fatalf("%s: recorded %d samples, backfilled %d", SeriesName(ws.Labels), len(gs.Samples), len(ws.Samples))
		}
		for j, w := range ws.Samples {
			if g := gs.Samples[j]; g != w {
				t.Fatalf("%s sample %d: recorded %v@%d, backfilled %v@%d", SeriesName(ws.Labels), j, g.V, g.T, w.V, w.T)
			}
		}
		end := ws.Samples[len(ws.Samples)-1]
		for _, g := range gs.Samples[len(ws.Samples):] {
			if g.V != end.V || g.T-end.T > Lookback.Milliseconds() {
				t.Fatalf("%s: extra sample %v@%d after the series ended at %d", SeriesName(ws.Labels), g.V, g.T, end.T)
			}
		}
	}
}
