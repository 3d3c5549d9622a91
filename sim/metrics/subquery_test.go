package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/smartscale/smartscale/engine"
)

// subqueryQueries are the subquery forms: the engine's readings (the brief's and the
// rules'), two subqueries in one query, windows longer than the kept ones, multi-series
// inner expressions, and the forms left to PromQL (offset, nested, no step).
var subqueryQueries = []string{
	`min_over_time((100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))))[3m:15s])`,
	`max_over_time((100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))))[10m:15s])`,
	`min_over_time(sum(kube_pod_status_phase{phase="Pending"})[3m:15s])`,
	`max_over_time(sum(kube_pod_status_phase{phase="Pending"})[3m:15s])`,
	`sum_over_time((count(kube_node_info))[6m:15s])`,
	`max_over_time((100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))))[40m:15s]) - min_over_time((100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))))[5m:15s])`,
	`predict_linear((sum(rate(node_cpu_seconds_total{mode!="idle"}[1m])))[10m:15s], 600)`,
	`avg_over_time((sum(kube_pod_status_phase{phase="Running"}) / count(kube_node_info))[7m:30s])`,
	`max(max_over_time((sum by (node) (rate(node_cpu_seconds_total[1m])))[5m:30s]))`,
	`count(min_over_time((node_memory_MemAvailable_bytes / 2)[4m:15s]))`,
	`max_over_time((sum by (node) (node_memory_MemAvailable_bytes))[3m:15s])`,
	`max_over_time(min_over_time((count(kube_node_info))[3m:15s])[10m:1m])`,
	`min_over_time((count(kube_node_info))[5m:15s] offset 3m)`,
	`max_over_time((count(kube_node_info))[5m:])`,
	`count_over_time((absent(node_memory_MemAvailable_bytes{node="node-b"}))[20m:15s])`,
}

// plainQueryable hides the Store's type, so a Querier over it keeps no subquery steps.
type plainQueryable struct{ storage.Queryable }

// TestSubqueryStepsAnswerAsPromQL grows a store scrape by scrape and asks every subquery
// form, every 125 s and at times before, after and on the scrapes (and far back and ahead), of
// a Querier that keeps subquery steps and of one that does not: the same sample, to the bit,
// with the same warnings, or the same error. Midway samples land in the past (a new series
// 10 minutes back, another at a finished scrape's time), which must forget the kept steps
// they change.
func TestSubqueryStepsAnswerAsPromQL(t *testing.T) {
	var kept, plain *Querier
	qs := append(slices.Clone(subqueryQueries), queries...)
	pol := engine.ResponsivePolicy()
	pol.PredictHorizon, pol.PredictWindow = 10*time.Minute, 20*time.Minute
	for _, n := range engine.AllQueryNames() {
		qs = append(qs, pol.Expand(n))
	}
	asked, cmp, late := 0, 0, false
	check := func(at time.Time) {
		for _, q := range qs {
			got, gerr := kept.Query(context.Background(), q, at)
			want, werr := plain.Query(context.Background(), q, at)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || math.Float64bits(got.Value) != math.Float64bits(want.Value) ||
				!got.Time.Equal(want.Time) || !slices.Equal(got.Warnings, want.Warnings) {
				t.Fatalf("%s at %v:\n kept steps %+v %v\n PromQL     %+v %v", q, at.Sub(epoch), got, gerr, want, werr)
			}
			asked++
			if gerr == nil {
				cmp++
			}
		}
	}
	churnWith(t, func(s *Store, at time.Duration) {
		if kept == nil {
			kept, plain = NewQuerier(s), NewQuerier(plainQueryable{s})
		}
		if at == 100*time.Minute { // a series appended 10 minutes back changes the last 10 minutes
			for i := range 40 {
				tm := epoch.Add(at - 10*time.Minute + time.Duration(i)*15*time.Second).UnixMilli()
				if err := s.Append(labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle", "node", "late"), tm, float64(i)*14); err != nil {
					t.Fatal(err)
				}
			}
		}
		if at < 15*time.Minute || at%(125*time.Second) >= 15*time.Second {
			return
		}
		now := epoch.Add(at)
		check(now)                         // on the scrape just made
		if at > 140*time.Minute && !late { // a sample at the finished scrape's time
			late = true
			for _, l := range []labels.Labels{labels.FromStrings("__name__", "kube_node_info", "node", "later"),
				labels.FromStrings("__name__", "kube_pod_status_phase", "phase", "Pending", "pod", "later")} {
				if err := s.Append(l, now.UnixMilli(), 1); err != nil {
					t.Fatal(err)
				}
			}
		}
		check(now.Add(5 * time.Second)) // between scrapes, as the engine's ticks are
		check(now.Add(time.Minute))     // ahead of the samples: steps still to come
		if at%(25*time.Minute) < 15*time.Second {
			check(now.Add(-7 * time.Minute))   // back in time
			check(now.Add(-100 * time.Minute)) // before every kept step
		}
	})
	if cmp < 1500 {
		t.Fatalf("only %d answers compared (%d asked)", cmp, asked)
	}
}

// TestSubquerySites: the subqueries replaced are exactly those PromQL itself turns into a
// matrix selector and that a range query evaluates alike.
func TestSubquerySites(t *testing.T) {
	for _, c := range []struct {
		q     string
		sites int
	}{
		{`min_over_time((up)[3m:15s])`, 1},
		{`min_over_time((up)[3m:15s]) + max_over_time((up)[10m:15s])`, 2},
		{`max_over_time(min_over_time((up)[3m:15s])[10m:1m])`, 0}, // nested: the outer's inner has a subquery
		{`min_over_time((up)[3m:15s] offset 1m)`, 0},
		{`min_over_time((up)[3m:15s] @ 100)`, 0},
		{`min_over_time((up @ 100)[3m:15s])`, 0},
		{`min_over_time((up)[3m:])`, 0},
		{`(up)[3m:15s]`, 0},
		{`min_over_time((rate(up[1m]))[3m:15s])`, 1},
		{`predict_linear((up)[10m:15s], 60)`, 1},
	} {
		pc := newParseCache()
		e, err := pc.ParseExpr(c.q)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(sitesOf(e, false, nil)); n != c.sites {
			t.Errorf("%s: %d sites, want %d", c.q, n, c.sites)
		}
	}
}
