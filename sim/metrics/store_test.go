package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

var epoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// churn fills a store the way the simulated exporters do for 3 hours at 15 s: nodes that
// come, go and come back after more than liveHorizon (node-d), pods with short lives,
// counters, gauges and one-hot phases, with staleness markers from the scrapes.
func churn(t testing.TB) *Store { return churnWith(t, nil) }

// churnWith is churn calling after(at) after each scrape.
func churnWith(t testing.TB, after func(s *Store, at time.Duration)) *Store {
	t.Helper()
	s := NewStore()
	rng := rand.New(rand.NewPCG(1, 2))
	type span struct{ from, to time.Duration }
	nodes := map[string][]span{
		"node-a": {{0, 3 * time.Hour}},
		"node-b": {{20 * time.Minute, 130 * time.Minute}},
		"node-c": {{90 * time.Minute, 3 * time.Hour}},
		"node-d": {{0, 15 * time.Minute}, {150 * time.Minute, 3 * time.Hour}},
	}
	names := []string{"node-a", "node-b", "node-c", "node-d"}
	cpu := map[string]float64{}
	type pod struct {
		name     string
		from, to time.Duration
	}
	var pods []pod
	for i := range 60 {
		from := time.Duration(rng.IntN(170)) * time.Minute
		pods = append(pods, pod{fmt.Sprintf("app-%d", i), from, from + time.Duration(5+rng.IntN(55))*time.Minute})
	}
	phases := []string{"Pending", "Running", "Succeeded"}
	add := func(tm int64, v float64, kv ...string) {
		if err := s.Append(labels.FromStrings(kv...), tm, v); err != nil {
			t.Fatal(err)
		}
	}
	for at := time.Duration(0); at <= 3*time.Hour; at += 15 * time.Second {
		tm := epoch.Add(at).UnixMilli()
		s.BeginScrape()
		for _, n := range names {
			up := false
			for _, sp := range nodes[n] {
				up = up || (at >= sp.from && at < sp.to)
			}
			if !up {
				continue
			}
			for c := range 2 {
				for _, mode := range []string{"idle", "user", "system"} {
					k := n + strconv.Itoa(c) + mode
					cpu[k] += float64(rng.IntN(240)) / 16
					add(tm, cpu[k], "__name__", "node_cpu_seconds_total", "cpu", strconv.Itoa(c), "mode", mode, "node", n)
				}
			}
			add(tm, float64(1<<32), "__name__", "node_memory_MemTotal_bytes", "node", n)
			add(tm, float64(rng.IntN(1<<32)), "__name__", "node_memory_MemAvailable_bytes", "node", n)
			add(tm, 1, "__name__", "kube_node_info", "node", n)
		}
		for _, p := range pods {
			if at < p.from || at >= p.to {
				continue
			}
			phase := 1
			if at < p.from+2*time.Minute {
				phase = 0
			}
			for i, ph := range phases {
				add(tm, float64(min(1, max(0, 1-math.Abs(float64(i-phase))))), "__name__", "kube_pod_status_phase", "phase", ph, "pod", p.name)
			}
		}
		s.EndScrape(tm)
		if after != nil {
			after(s, at)
		}
	}
	return s
}

// queries cover instant and range selectors over live and pruned series, subqueries,
// offsets, @, binary matching and aggregations, and the engine's default queries.
var queries = []string{
	`count(kube_node_info)`,
	`sum(kube_pod_status_phase{phase="Pending"})`,
	`min_over_time(sum(kube_pod_status_phase{phase="Pending"})[3m:15s])`,
	`time() - max(timestamp(node_memory_MemAvailable_bytes))`,
	`max_over_time(node_memory_MemAvailable_bytes[2h])`,
	`count_over_time(node_cpu_seconds_total{mode="idle"}[3h])`,
	`count(count_over_time(kube_pod_status_phase[10m] offset 2h))`,
	`rate(node_cpu_seconds_total{mode="idle"}[1m])`,
	`sum by (node) (node_memory_MemTotal_bytes)`,
	`kube_pod_status_phase{phase="Running"} @ 5400`,
	`last_over_time(node_memory_MemAvailable_bytes{node=~"node-[bd]"}[90m])`,
	`absent(node_memory_MemAvailable_bytes{node="node-b"})`,
	`sum by (phase) (kube_pod_status_phase) > 0`,
	`node_memory_MemAvailable_bytes / on (node) group_left node_memory_MemTotal_bytes`,
	`-max_over_time((count(kube_node_info))[70m:1m] offset 30m)`,
	`100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m])))`,
	`min_over_time((100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))))[3m:15s])`,
	`max_over_time((100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))))[10m:15s])`,
	`100 * (1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes))`,
}

func newEngine(cached bool) *promql.Engine {
	opts := promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true}
	if cached {
		opts.Parser = newParseCache()
	}
	return promql.NewEngine(opts)
}

// answer evaluates q at ts as sorted lines of labels and value bits (or the error).
func answer(t *testing.T, eng *promql.Engine, q storage.Queryable, expr string, ts time.Time) ([]string, []float64) {
	t.Helper()
	qry, err := eng.NewInstantQuery(context.Background(), q, nil, expr, ts)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		return []string{"error " + res.Err.Error()}, nil
	}
	type line struct {
		s string
		f float64
	}
	var ls []line
	switch v := res.Value.(type) {
	case promql.Scalar:
		ls = append(ls, line{fmt.Sprintf("scalar @%d", v.T), v.V})
	case promql.Vector:
		for _, s := range v {
			ls = append(ls, line{fmt.Sprintf("%s @%d", s.Metric, s.T), s.F})
		}
	default:
		t.Fatalf("%s: result type %s", expr, res.Value.Type())
	}
	slices.SortFunc(ls, func(a, b line) int {
		if a.s < b.s {
			return -1
		}
		if a.s > b.s {
			return 1
		}
		return 0
	})
	var keys []string
	var vals []float64
	for _, l := range ls {
		keys, vals = append(keys, l.s), append(vals, l.f)
	}
	return keys, vals
}

// naive is a reference storage.Queryable over the same samples: whole sample lists in
// creation order, filtered by time and matchers on every Select, with Prometheus' own
// list series. No blocks, families, pruning or searches.
func naive(s *Store) storage.Queryable {
	var all []*storage.SeriesEntry
	var pts [][]point
	s.Series(func(lset labels.Labels, ts []int64, vs []float64) {
		ps := make([]point, len(ts))
		for i := range ts {
			ps[i] = point{ts[i], vs[i]}
		}
		all = append(all, &storage.SeriesEntry{Lset: lset})
		pts = append(pts, ps)
	})
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{SelectMockFunction: func(_ bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
		var out []storage.Series
		for i, sr := range all {
			ok := true
			for _, m := range ms {
				ok = ok && m.Matches(sr.Lset.Get(m.Name))
			}
			var in []chunks.Sample
			for j := range pts[i] {
				if p := &pts[i][j]; p.t >= h.Start && p.t <= h.End {
					in = append(in, p)
				}
			}
			if ok && len(in) > 0 {
				out = append(out, storage.NewListSeries(sr.Lset, in))
			}
		}
		return &seriesSet{list: out, idx: -1}
	}}}
}

// TestStoreAnswersLikeNaiveStorage asks the store and a naive storage of the same samples
// every query every 125 s, over 3 hours of churn (so across sample blocks and family
// prunes): the same series with the same values, to the bit.
func TestStoreAnswersLikeNaiveStorage(t *testing.T) {
	s := churn(t)
	ours, ref := newEngine(true), newEngine(false)
	checked := 0
	for at := 20 * time.Minute; at <= 3*time.Hour+time.Minute; at += 125 * time.Second {
		ts := epoch.Add(at)
		for _, q := range queries {
			gk, gv := answer(t, ours, s, q, ts)
			wk, wv := answer(t, ref, naive(s), q, ts)
			if !slices.Equal(gk, wk) {
				t.Fatalf("%s at %v: series\n got %q\nwant %q", q, at, gk, wk)
			}
			for i := range gv {
				if math.Float64bits(gv[i]) != math.Float64bits(wv[i]) {
					t.Fatalf("%s at %v: %s = %v, naive storage says %v", q, at, gk[i], gv[i], wv[i])
				}
			}
			checked += len(gk)
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d answers compared", checked)
	}
}

// TestParseCacheSameBits: the store queried through the caching parser answers every query,
// again and again, exactly as an engine that parses each time (the engine writes into the
// trees it evaluates, so a cache handing out one tree twice would go wrong here).
func TestParseCacheSameBits(t *testing.T) {
	s := churn(t)
	cached, plain := newEngine(true), newEngine(false)
	for at := 20 * time.Minute; at <= 3*time.Hour; at += 125 * time.Second {
		for _, q := range queries {
			gk, gv := answer(t, cached, s, q, epoch.Add(at))
			wk, wv := answer(t, plain, s, q, epoch.Add(at))
			if !slices.Equal(gk, wk) || !slices.EqualFunc(gv, wv, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }) {
				t.Fatalf("%s at %v: cached %q %v, parsed %q %v", q, at, gk, gv, wk, wv)
			}
		}
	}
}

// TestPruneKeepsOldRangesAndRevivedSeries: a series quiet for more than liveHorizon leaves
// the live set, yet a selection over its old samples still sees it, and it is live again
// once appended to.
func TestPruneKeepsOldRangesAndRevivedSeries(t *testing.T) {
	s := NewStore()
	x := labels.FromStrings("__name__", "up", "job", "x")
	y := labels.FromStrings("__name__", "up", "job", "y")
	ms := func(d time.Duration) int64 { return epoch.Add(d).UnixMilli() }
	scrape := func(at time.Duration, ls ...labels.Labels) {
		s.BeginScrape()
		for _, l := range ls {
			if err := s.Append(l, ms(at), 1); err != nil {
				t.Fatal(err)
			}
		}
		s.EndScrape(ms(at))
	}
	at := time.Duration(0)
	for ; at < 10*time.Minute; at += 15 * time.Second {
		scrape(at, x, y)
	}
	for ; s.lastGen < 2*compactEvery; at += 15 * time.Second {
		scrape(at, x)
	}
	jobs := func(from, to time.Duration) []string {
		q, _ := s.Querier(math.MinInt64, math.MaxInt64)
		ss := q.Select(context.Background(), false, &storage.SelectHints{Start: ms(from), End: ms(to)},
			labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "up"))
		var out []string
		for ss.Next() {
			out = append(out, ss.At().Labels().Get("job"))
		}
		return out
	}
	f := s.byName["up"]
	if len(f.live) != 1 || f.oldMaxT != ms(10*time.Minute) {
		t.Fatalf("live %d series, oldMaxT %d: want x alone, y's staleness marker at 10m", len(f.live), f.oldMaxT)
	}
	if got := jobs(5*time.Minute, 6*time.Minute); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("5-6 m: %v, want x and y", got)
	}
	if got := jobs(at-5*time.Minute, at); !slices.Equal(got, []string{"x"}) {
		t.Errorf("last 5 m: %v, want x", got)
	}
	scrape(at, x, y)
	if got := jobs(at-5*time.Minute, at); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("after y's return: %v, want x and y in creation order", got)
	}
}

func TestWindowAcrossBlocks(t *testing.T) {
	var ps points
	for i := range 3*blockLen + 7 {
		ps.append(point{int64(i), float64(i)})
	}
	for _, r := range [][2]int{{0, 1}, {0, blockLen}, {blockLen - 3, blockLen + 3}, {5, 3*blockLen + 7}, {2 * blockLen, 3 * blockLen}} {
		w := ps.window(r[0], r[1])
		if w.Len() != r[1]-r[0] {
			t.Fatalf("%v: len %d", r, w.Len())
		}
		for i := range w.Len() {
			if got := w.Get(i).T(); got != int64(r[0]+i) {
				t.Fatalf("%v: sample %d is at %d", r, i, got)
			}
		}
	}
	if got := ps.search(blockLen + 1); got != blockLen+1 {
		t.Errorf("search: %d", got)
	}
}
