package world

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
)

func short(t testing.TB, name string, d time.Duration) scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	// cut the scenario to d
	var kept []scenarios.Stage
	var at time.Duration
	for _, st := range sc.Stages {
		if at >= d {
			break
		}
		st.Duration = min(st.Duration, d-at)
		kept = append(kept, st)
		at += st.Duration
	}
	sc.Stages = kept
	return sc
}

func runOnce(t testing.TB, sc scenarios.Scenario, seed uint64) (*World, *Result) {
	t.Helper()
	w, err := New(Config{Scenario: sc, Seed: seed, Policy: engine.DefaultPolicy(), InitialWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return w, res
}

func outputs(t testing.TB, res *Result) [3][]byte {
	t.Helper()
	var s, tl, d bytes.Buffer
	if err := WriteSummary(&s, res.Summary); err != nil {
		t.Fatal(err)
	}
	if err := WriteTimeline(&tl, res.Timeline); err != nil {
		t.Fatal(err)
	}
	if err := WriteDecisions(&d, res.Records); err != nil {
		t.Fatal(err)
	}
	return [3][]byte{s.Bytes(), tl.Bytes(), d.Bytes()}
}

func TestDeterminism(t *testing.T) {
	sc := short(t, "flash-sale", 60*time.Minute)
	_, a := runOnce(t, sc, 7)
	_, b := runOnce(t, sc, 7)
	_, c := runOnce(t, sc, 8)
	oa, ob, oc := outputs(t, a), outputs(t, b), outputs(t, c)
	for i, name := range []string{"summary.json", "timeline.csv", "decisions.jsonl"} {
		if !bytes.Equal(oa[i], ob[i]) {
			t.Errorf("%s differs between two runs with seed 7", name)
		}
		if bytes.Equal(oa[i], oc[i]) {
			t.Errorf("%s is the same for seeds 7 and 8", name)
		}
	}
}

func TestFlashSaleScalesUpAndBackDown(t *testing.T) {
	sc, err := scenarios.Load("flash-sale")
	if err != nil {
		t.Fatal(err)
	}
	_, res := runOnce(t, sc, 1)
	s := res.Summary
	if s.ScaleUps == 0 || s.ScaleDowns == 0 {
		t.Fatalf("no scaling on a flash sale: %+v", s)
	}
	if s.MaxWorkers < 6 || s.MaxWorkers > 10 || s.MinWorkers != 2 {
		t.Errorf("workers %d..%d", s.MinWorkers, s.MaxWorkers)
	}
	last := res.Timeline[len(res.Timeline)-1]
	if last.ReadyWorkers > 3 {
		t.Errorf("still %d workers at the end of the quiet tail", last.ReadyWorkers)
	}
	if len(res.Timeline) != 100 {
		t.Errorf("%d timeline rows for 100 minutes", len(res.Timeline))
	}
	if s.Ticks != 49 {
		t.Errorf("%d ticks in 100 minutes, want 49 (every 2 min from 2m05s)", s.Ticks)
	}
	// a scale-down is never decided on a tick with invalid data
	for _, r := range res.Records {
		if r.Decision.Action == engine.ActionScaleDown && len(r.Observation.Invalid) > 0 {
			t.Errorf("scale-down at %v with invalid readings %v", r.Time, r.Observation.Invalid)
		}
	}
}

// TestBriefCPUQueryReadsFarTooLow runs the simulated node-exporter (8 modes per CPU, as the
// real one exposes) and compares the brief's CPU query with the engine's: the brief's
// averages every non-idle mode series, so it reads about a seventh of the busy share.
func TestBriefCPUQueryReadsFarTooLow(t *testing.T) {
	sc := short(t, "sustained", 20*time.Minute)
	w, res := runOnce(t, sc, 1)
	at := w.Loop.Now().Add(-10 * time.Second)
	brief, err := w.Metrics.Query(context.Background(), engine.BriefCPUQuery, at)
	if err != nil {
		t.Fatal(err)
	}
	good, err := w.Metrics.Query(context.Background(), engine.DefaultPolicy().Expand(engine.ReadingCPU), at)
	if err != nil {
		t.Fatal(err)
	}
	truth := res.Timeline[len(res.Timeline)-1].CPUPercent
	if math.Abs(good.Value-truth) > 5 {
		t.Errorf("engine CPU query %.1f%%, true busy share %.1f%%", good.Value, truth)
	}
	if brief.Value > good.Value/5 {
		t.Errorf("brief query %.1f%% vs correct %.1f%%: expected it to read several times too low", brief.Value, good.Value)
	}
	t.Logf("busy %.1f%%: engine query %.1f%%, brief query %.1f%% (%.1fx too low)", truth, good.Value, brief.Value, good.Value/brief.Value)
}

func TestEmptyVectorIsNoDataNotZero(t *testing.T) {
	sc := short(t, "sustained", 10*time.Minute)
	w, _ := runOnce(t, sc, 1)
	_, err := w.Metrics.Query(context.Background(), `sum(kube_pod_status_phase{phase="Evicted"})`, w.Loop.Now())
	if engine.ProblemOf(err) != engine.ProblemEmpty {
		t.Fatalf("err %v, want an empty-vector problem", err)
	}
}

func TestStalenessMarkersDropVanishedPods(t *testing.T) {
	sc := short(t, "flash-sale", 60*time.Minute)
	w, res := runOnce(t, sc, 1)
	// the pods that existed during the spike are gone at the end: the instant count of pod
	// series must match the live pods, not the last 5 minutes of history
	s, err := w.Metrics.Query(context.Background(), `count(kube_pod_status_phase{phase="Running"})`, w.Loop.Now())
	if err != nil {
		t.Fatal(err)
	}
	if int(s.Value) != len(w.Cluster.Pods()) {
		t.Fatalf("%v pod series, %d live pods (timeline %+v)", s.Value, len(w.Cluster.Pods()), res.Timeline[len(res.Timeline)-1])
	}
}

// BenchmarkSimDay simulates the 24-hour diurnal scenario with PromQL in the loop and reports
// simulated seconds per wall second.
func BenchmarkSimDay(b *testing.B) {
	sc, err := scenarios.Load("diurnal")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		runOnce(b, sc, 1)
	}
	b.ReportMetric(sc.Duration().Seconds()*float64(b.N)/time.Since(start).Seconds(), "sim-s/s")
}
