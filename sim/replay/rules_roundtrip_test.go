package replay

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/runtime/handler"
	"github.com/smartscale/smartscale/runtime/prom"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/metrics"
	"github.com/smartscale/smartscale/sim/world"
)

// TestRuleReadingsThroughPrometheus: the readings of the responsive preset's rules (HPA
// replicas, request rates, busy cores and their prediction, the workers' requested shares)
// asked of a real Prometheus 2.42 — as the Lambda's -explain asks them — are usable and
// agree with what the simulator's own PromQL engine answers on the same series: the
// simulator's kube-state-metrics, node-exporter and demo-app series of a responsive flash
// sale, backfilled with promtool, 7 s off the 15 s grid (see TestRoundTripThroughPrometheus).
// The ticks sit in steady stretches: the 2.x server closes range selectors on the left and
// the 3.x library does not, so one sample more or less in a window moves a rate in a ramp by
// a few percent and predict_linear more (1% and 5% are allowed here).
func TestRuleReadingsThroughPrometheus(t *testing.T) {
	sc, err := scenarios.Load("flash-sale")
	if err != nil {
		t.Fatal(err)
	}
	pol := engine.ResponsivePolicy()
	pol.PredictHorizon = 2 * time.Minute // ask the prediction too
	w, err := world.New(world.Config{Scenario: sc, Seed: 1, Policy: pol, InitialWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := shift(FromStore(w.TSDB, 0, nil), 7*time.Second)
	var om bytes.Buffer
	if err := rec.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	url := realtest.Prometheus(t, om.String())
	live, err := prom.New(url, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rec.Store()
	if err != nil {
		t.Fatal(err)
	}
	sim := metrics.NewQuerier(st)
	ctx := context.Background()
	for _, at := range []time.Duration{12 * time.Minute, 35 * time.Minute, 44 * time.Minute, 95 * time.Minute} {
		now := world.Epoch.Add(at)
		ex, err := handler.Explain(ctx, pol, live, now, handler.ExplainOptions{Workers: -1})
		if err != nil {
			t.Fatalf("explain at %v: %v", at, err)
		}
		want := engine.Query(ctx, sim, pol, now)
		for _, name := range engine.RuleQueryNames() {
			if _, asked := ex.Queries[name]; !asked {
				t.Errorf("explain does not show the %s query", name)
			}
			got, exp := ex.Observation.Readings.Get(name), want.Get(name)
			if !got.OK() || !exp.OK() {
				t.Errorf("at %v %s: prometheus %s, simulator %s", at, name, problemText(got), problemText(exp))
				continue
			}
			tol := 0.01
			if name == engine.ReadingBusyCoresPredicted {
				tol = 0.05
			}
			if math.Abs(got.Value-exp.Value) > tol*max(1, math.Abs(exp.Value)) {
				t.Errorf("at %v %s: prometheus %v, simulator %v", at, name, got.Value, exp.Value)
			}
		}
	}
	// the saturation the demand rule reads is there: at 22m the spike turns requests away
	ex, _ := handler.Explain(ctx, pol, live, world.Epoch.Add(22*time.Minute), handler.ExplainOptions{Workers: -1})
	if r := ex.Observation.Readings; r.RequestRate.Value <= r.ServedRate.Value*1.1 {
		t.Errorf("no saturation seen in the spike: offered %v, served %v", r.RequestRate.Value, r.ServedRate.Value)
	}
}

func problemText(r engine.Reading) string {
	if r.OK() {
		return "ok"
	}
	return string(r.Problem) + " " + r.Detail
}
