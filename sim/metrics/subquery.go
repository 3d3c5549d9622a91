package metrics

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
)

// The engine's "sustained for D" readings are subqueries, min_over_time((expr)[D:15s]):
// PromQL evaluates expr again at every 15 s step of the window at every tick, though a tick
// two minutes after the last shares all but eight of the steps with it, and the up and down
// windows share the same expr. subqueries keeps each inner expression's results per step
// and hands the engine the window as the matrix selector PromQL itself would have built
// (promql's evalSubquery), evaluating only the steps it has not seen: a range query from
// the first missing step to the last, on the subquery's own grid.
//
// A step is kept only once every sample that can change it is in the store: steps before
// the store's newest sample or at a finished scrape's time, while the store is appended to
// in time order (an append older than the newest sample or at a finished scrape's time
// forgets every kept step). A query whose inner evaluation warns,
// errs or yields histograms is answered the ordinary way, so answers are PromQL's to the
// bit (TestSubqueryStepsAnswerAsPromQL).
type subqueries struct {
	mu    sync.Mutex
	store *Store
	parse *parseCache
	eng   *promql.Engine
	epoch uint64                // the store's epoch the kept steps belong to
	plans map[string][]subqSite // query -> its sites (nil: none)
	steps map[string]*stepCache // inner expression and step -> its steps
}

// subqSite is a subquery PromQL replaces by a matrix selector: the matrix argument of a
// function, outside any other subquery, with its own step and no offset or @.
type subqSite struct {
	cache *stepCache
	rng   time.Duration
}

// stepCache is one inner expression's results on one step grid: steps[i] is its result at
// first + i*step (every kept step is settled: Store.settled).
type stepCache struct {
	key   string // the inner expression's parse-cache key
	step  int64  // ms
	keep  int64  // the longest window asked (ms): older steps are dropped
	first int64
	steps [][]stepSample
}

type stepSample struct {
	metric   labels.Labels
	f        float64
	dropName bool
}

// noSeries selects nothing: the substituted selectors carry their series already, yet the
// engine still asks the storage for them.
var noSeries = labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "__sim_subquery_steps")

func newSubqueries(s *Store, pc *parseCache, eng *promql.Engine) *subqueries {
	return &subqueries{store: s, parse: pc, eng: eng, plans: map[string][]subqSite{}, steps: map[string]*stepCache{}}
}

// subqCall is a function call whose argument arg is a subquery PromQL evaluates into a
// matrix selector (the first matrix argument, as promql's eval looks for it).
type subqCall struct {
	call *parser.Call
	arg  int
}

// sitesOf lists the replaceable subqueries of a tree in a fixed order (pre-order): the
// planning walk over the pristine tree and the substitution walk over its copy agree.
func sitesOf(e parser.Node, inSubquery bool, out []subqCall) []subqCall {
	if c, ok := e.(*parser.Call); ok && !inSubquery {
		for i, a := range c.Args {
			if _, ok := a.(*parser.MatrixSelector); ok {
				break
			}
			if sq, ok := a.(*parser.SubqueryExpr); ok {
				if replaceable(sq) {
					out = append(out, subqCall{c, i})
				}
				break
			}
		}
	}
	_, isSub := e.(*parser.SubqueryExpr)
	for _, ch := range parser.Children(e) {
		out = sitesOf(ch, inSubquery || isSub, out)
	}
	return out
}

// replaceable: an explicit step, no offset or @ on the subquery, and an inner expression
// a range query evaluates as the subquery does (no subquery, @ or duration expression in it).
func replaceable(sq *parser.SubqueryExpr) bool {
	if sq.Step <= 0 || sq.Range <= 0 || sq.OriginalOffset != 0 || sq.Offset != 0 || sq.Timestamp != nil || sq.StartOrEnd != 0 ||
		sq.RangeExpr != nil || sq.StepExpr != nil || sq.OriginalOffsetExpr != nil {
		return false
	}
	ok := true
	parser.Inspect(sq.Expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.SubqueryExpr, *parser.DurationExpr, *parser.StepInvariantExpr:
			ok = false
		case *parser.VectorSelector:
			ok = ok && n.Timestamp == nil && n.StartOrEnd == 0 && n.OriginalOffsetExpr == nil
		case *parser.MatrixSelector:
			ok = ok && n.RangeExpr == nil
		}
		return nil
	})
	return ok
}

// plan returns q's replaceable subqueries, registering each inner expression with the
// parse cache under a key no query can spell (it starts with a NUL byte).
func (sq *subqueries) plan(q string) ([]subqSite, error) {
	if p, ok := sq.plans[q]; ok {
		return p, nil
	}
	tree, err := sq.parse.ParseExpr(q)
	if err != nil {
		return nil, err
	}
	var sites []subqSite
	for _, c := range sitesOf(tree, false, nil) {
		s := c.call.Args[c.arg].(*parser.SubqueryExpr)
		step := durationMilliseconds(s.Step)
		inner := s.Expr.String()
		key := "\x00subquery step " + strconv.FormatInt(step, 10) + "\x00" + inner
		sc := sq.steps[key]
		if sc == nil {
			if !sq.parse.register(key, s.Expr) {
				sites = nil // a tree the cache cannot copy: ask PromQL as is
				break
			}
			sc = &stepCache{key: key, step: step}
			sq.steps[key] = sc
		}
		sc.keep = max(sc.keep, durationMilliseconds(s.Range))
		sites = append(sites, subqSite{cache: sc, rng: s.Range})
	}
	sq.plans[q] = sites
	return sites, nil
}

// prepare readies the substitution of q's subqueries for an instant query at at. It returns
// false when q has none or one of them cannot be answered from kept steps (then PromQL
// evaluates q as it is).
func (sq *subqueries) prepare(ctx context.Context, q string, at time.Time) bool {
	sites, err := sq.plan(q)
	if err != nil || len(sites) == 0 {
		return false
	}
	if e := sq.store.epoch; e != sq.epoch {
		for _, sc := range sq.steps {
			sc.steps = nil
		}
		sq.epoch = e
	}
	atMs := at.UnixNano() / int64(time.Millisecond)
	mats := make([]*parser.MatrixSelector, len(sites))
	for i, s := range sites {
		ms, ok := sq.window(ctx, s, atMs)
		if !ok {
			return false
		}
		mats[i] = ms
	}
	sq.parse.substitute(q, mats)
	return true
}

// window returns the matrix selector PromQL's evalSubquery builds for site s at atMs.
func (sq *subqueries) window(ctx context.Context, s subqSite, atMs int64) (*parser.MatrixSelector, bool) {
	sc := s.cache
	rng := durationMilliseconds(s.rng)
	// the subquery's steps: its grid within (at-range, at], as promql's subqueryEvaluationTimes
	lo := sc.step * ((atMs - rng) / sc.step)
	if lo <= atMs-rng {
		lo += sc.step
	}
	hi := lo - sc.step
	if lo <= atMs {
		hi = lo + (atMs-lo)/sc.step*sc.step
	}
	var got [][]stepSample // the steps lo..hi
	if lo <= hi {
		var ok bool
		if got, ok = sc.fill(ctx, sq, lo, hi, sq.store.settled()); !ok {
			return nil, false
		}
	}
	sc.drop(atMs - sc.keep)
	// one series per label set, in label order, its points in time order
	var mat promql.Matrix
	index := map[uint64]int{}
	for i, samples := range got {
		t := lo + int64(i)*sc.step
		for _, smp := range samples {
			h := smp.metric.Hash()
			k, ok := index[h]
			if !ok {
				k = len(mat)
				index[h] = k
				mat = append(mat, promql.Series{Metric: smp.metric, DropName: smp.dropName})
			}
			mat[k].Floats = append(mat[k].Floats, promql.FPoint{T: t, F: smp.f})
		}
	}
	slices.SortFunc(mat, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	vs := &parser.VectorSelector{Series: make([]storage.Series, 0, len(mat)), LabelMatchers: []*labels.Matcher{noSeries}}
	for _, s := range mat {
		vs.Series = append(vs.Series, promql.NewStorageSeries(s))
	}
	return &parser.MatrixSelector{Range: s.rng, VectorSelector: vs}, true
}

// fill returns the results at the steps lo..hi, evaluating those not kept and keeping the
// new ones up to settled.
func (sc *stepCache) fill(ctx context.Context, sq *subqueries, lo, hi, settled int64) ([][]stepSample, bool) {
	n := int((hi-lo)/sc.step) + 1
	last := sc.first + int64(len(sc.steps)-1)*sc.step
	if len(sc.steps) == 0 || hi < sc.first-sc.step || lo > last+sc.step {
		sc.steps = nil // nothing kept touches lo..hi
		got, ok := sc.eval(ctx, sq, lo, hi)
		if !ok {
			return nil, false
		}
		sc.keepFrom(lo, got, settled)
		return got, true
	}
	if lo < sc.first { // older steps than kept (a longer window): evaluate and prepend them
		older, ok := sc.eval(ctx, sq, lo, sc.first-sc.step)
		if !ok {
			return nil, false
		}
		sc.steps = append(older, sc.steps...)
		sc.first = lo
	}
	last = sc.first + int64(len(sc.steps)-1)*sc.step
	var newer [][]stepSample
	if hi > last {
		var ok bool
		if newer, ok = sc.eval(ctx, sq, last+sc.step, hi); !ok {
			return nil, false
		}
	}
	from := int((lo - sc.first) / sc.step)
	got := make([][]stepSample, 0, n)
	got = append(got, sc.steps[from:min(len(sc.steps), from+n)]...)
	got = append(got, newer...)
	sc.keepFrom(last+sc.step, newer, settled)
	return got, true
}

// keepFrom appends the results of the steps from t on that are at or before settled (the
// kept steps end just before t, or none are kept).
func (sc *stepCache) keepFrom(t int64, got [][]stepSample, settled int64) {
	if len(sc.steps) == 0 {
		sc.first = t
	}
	for _, g := range got {
		if t > settled {
			return
		}
		sc.steps = append(sc.steps, g)
		t += sc.step
	}
}

// drop forgets the steps at or before t.
func (sc *stepCache) drop(t int64) {
	k := 0
	for k < len(sc.steps) && sc.first+int64(k)*sc.step <= t {
		k++
	}
	if k > 0 {
		sc.steps = slices.Delete(sc.steps, 0, k)
		sc.first += int64(k) * sc.step
	}
}

// eval evaluates the inner expression at the steps lo..hi with a range query.
func (sc *stepCache) eval(ctx context.Context, sq *subqueries, lo, hi int64) ([][]stepSample, bool) {
	qry, err := sq.eng.NewRangeQuery(ctx, sq.store, nil, sc.key, time.UnixMilli(lo), time.UnixMilli(hi), time.Duration(sc.step)*time.Millisecond)
	if err != nil {
		return nil, false
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	mat, ok := res.Value.(promql.Matrix)
	if res.Err != nil || len(res.Warnings) > 0 || !ok {
		return nil, false
	}
	out := make([][]stepSample, int((hi-lo)/sc.step)+1)
	for _, s := range mat {
		if len(s.Histograms) > 0 {
			return nil, false
		}
		for _, p := range s.Floats {
			i := int((p.T - lo) / sc.step)
			out[i] = append(out[i], stepSample{metric: s.Metric, f: p.F, dropName: s.DropName})
		}
	}
	return out, true
}

func durationMilliseconds(d time.Duration) int64 { return int64(d / time.Millisecond) }
