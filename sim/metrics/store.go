// Package metrics is the simulator's Prometheus: an in-memory time-series store that the
// simulated exporters append to at each scrape, queried with the real PromQL engine
// (github.com/prometheus/prometheus/promql).
package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// Store is an append-only in-memory TSDB. Samples of a series must be appended in time
// order. It implements storage.Queryable.
type Store struct {
	series []*series
	index  map[uint64][]*series // labels hash -> series
	byName map[string]*family   // metric name -> its series
	// scrape bookkeeping for staleness markers: the series appended in the current and
	// the previous scrape, and the current scrape's number (0: not scraping)
	scrape, lastGen uint64
	seenNow         []*series
	lastScrape      []*series
	// maxT is the newest sample's time and sealed the newest finished scrape's (MinInt64:
	// none yet); epoch counts the appends older than maxT or at a sealed time, which may
	// change answers at earlier times (subquery.go keeps answers of settled times).
	maxT, sealed int64
	epoch        uint64
}

type series struct {
	lset   labels.Labels
	pts    points
	seen   uint64 // the scrape that last appended to it
	fam    *family
	inLive bool // in fam.live
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{index: map[uint64][]*series{}, byName: map[string]*family{}, maxT: math.MinInt64, sealed: math.MinInt64}
}

func (s *Store) get(lset labels.Labels) *series {
	h := lset.Hash()
	for _, sr := range s.index[h] {
		if labels.Equal(sr.lset, lset) {
			return sr
		}
	}
	sr := &series{lset: lset}
	s.series = append(s.series, sr)
	s.index[h] = append(s.index[h], sr)
	name := lset.Get(labels.MetricName)
	f := s.byName[name]
	if f == nil {
		f = newFamily()
		s.byName[name] = f
	}
	f.add(sr)
	return sr
}

// Ref is a handle on one series, for appending without hashing its labels again.
type Ref struct{ sr *series }

// Ref returns the handle of the series with these labels, creating it.
func (s *Store) Ref(lset labels.Labels) Ref { return Ref{s.get(lset)} }

// AppendRef adds one sample to a series by handle.
func (s *Store) AppendRef(r Ref, tMillis int64, v float64) error { return s.appendTo(r.sr, tMillis, v) }

// Append adds one sample. Samples older than the series' newest are an error.
func (s *Store) Append(lset labels.Labels, tMillis int64, v float64) error {
	return s.appendTo(s.get(lset), tMillis, v)
}

func (s *Store) appendTo(sr *series, tMillis int64, v float64) error {
	if sr.pts.len() > 0 && tMillis <= sr.pts.last() {
		return fmt.Errorf("series %s: sample at %d is not after the newest (%d)", sr.lset, tMillis, sr.pts.last())
	}
	sr.pts.append(point{tMillis, v})
	s.advance(tMillis)
	if !sr.inLive {
		sr.fam.rebuild = true
	}
	if s.scrape != 0 && sr.seen != s.scrape {
		sr.seen = s.scrape
		s.seenNow = append(s.seenNow, sr)
	}
	return nil
}

// advance records a sample at tMillis: a new epoch when it is older than the newest or at
// the time of a finished scrape.
func (s *Store) advance(tMillis int64) {
	if tMillis < s.maxT || tMillis <= s.sealed {
		s.epoch++
	}
	s.maxT = max(s.maxT, tMillis)
}

// settled is the newest time whose answers no sample to come can change (within an epoch):
// the one before the newest sample, or the newest finished scrape's.
func (s *Store) settled() int64 {
	if s.maxT == math.MinInt64 {
		return math.MinInt64
	}
	return max(s.maxT-1, s.sealed)
}

// BeginScrape starts a scrape: series appended until EndScrape are "seen".
func (s *Store) BeginScrape() {
	s.lastGen++
	s.scrape = s.lastGen
	s.seenNow = s.seenNow[:0]
}

// EndScrape writes a staleness marker, as Prometheus does, at tMillis for every series the
// previous scrape had and this one did not, so vanished pods and nodes drop out of instant
// queries at once instead of lingering for the 5-minute lookback.
func (s *Store) EndScrape(tMillis int64) {
	for _, sr := range s.lastScrape {
		if sr.seen != s.scrape && (sr.pts.len() == 0 || sr.pts.last() < tMillis) {
			sr.pts.append(point{tMillis, math.Float64frombits(value.StaleNaN)})
			s.advance(tMillis)
		}
	}
	s.lastScrape, s.seenNow = s.seenNow, s.lastScrape
	s.scrape = 0
	s.sealed = max(s.sealed, tMillis)
	if s.lastGen%compactEvery == 0 {
		for _, f := range s.byName {
			f.prune(tMillis - liveHorizon.Milliseconds())
		}
	}
}

// NumSeries returns how many series the store holds.
func (s *Store) NumSeries() int { return len(s.series) }

// NumSamples returns how many samples the store holds.
func (s *Store) NumSamples() int {
	n := 0
	for _, sr := range s.series {
		n += sr.pts.len()
	}
	return n
}

// Series calls fn for every series in creation order with its samples.
func (s *Store) Series(fn func(lset labels.Labels, ts []int64, vs []float64)) {
	for _, sr := range s.series {
		ts, vs := make([]int64, sr.pts.len()), make([]float64, sr.pts.len())
		for i := range ts {
			p := sr.pts.at(i)
			ts[i], vs[i] = p.t, p.f
		}
		fn(sr.lset, ts, vs)
	}
}

// Bounds returns the oldest and newest sample times in milliseconds (ok false when empty).
func (s *Store) Bounds() (minT, maxT int64, ok bool) {
	for _, sr := range s.series {
		if sr.pts.len() == 0 {
			continue
		}
		if !ok || sr.pts.first() < minT {
			minT = sr.pts.first()
		}
		if !ok || sr.pts.last() > maxT {
			maxT = sr.pts.last()
		}
		ok = true
	}
	return minT, maxT, ok
}

// Querier implements storage.Queryable.
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *Store
	mint, maxt int64
}

// candidates are the series that may match ms and have samples at or after mint.
func (q *querier) candidates(mint int64, ms []*labels.Matcher) []*series {
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			if f := q.s.byName[m.Value]; f != nil {
				return f.selectFrom(mint)
			}
			return nil
		}
	}
	return q.s.series
}

func (q *querier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	var sel []selected
	for _, sr := range q.candidates(mint, ms) {
		if sr.pts.len() == 0 || sr.pts.last() < mint || !matches(sr.lset, ms) {
			continue
		}
		lo, hi := sr.pts.search(mint), sr.pts.len()
		if sr.pts.last() > maxt {
			hi = lo + searchAfter(&sr.pts, lo, maxt)
		}
		if lo >= hi {
			continue
		}
		sel = append(sel, selected{lset: sr.lset, w: sr.pts.window(lo, hi)})
	}
	out := make([]storage.Series, len(sel))
	for i := range sel {
		out[i] = &sel[i]
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesSet{list: out, idx: -1}
}

// searchAfter returns how many samples from lo on are at or before maxt.
func searchAfter(ps *points, lo int, maxt int64) int {
	a, b := lo, ps.len()
	for a < b {
		m := int(uint(a+b) >> 1)
		if ps.at(m).t <= maxt {
			a = m + 1
		} else {
			b = m
		}
	}
	return a - lo
}

// selected is one series of a Select: its labels and its samples in the query's range.
type selected struct {
	lset labels.Labels
	w    window
}

func (s *selected) Labels() labels.Labels { return s.lset }

func (s *selected) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if r, ok := it.(interface{ Reset(storage.Samples) }); ok { // reuse the engine's iterator
		r.Reset(&s.w)
		return it
	}
	return storage.NewListSeriesIterator(&s.w)
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			continue // the family already matched it
		}
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	for _, sr := range q.candidates(math.MinInt64, ms) {
		if matches(sr.lset, ms) {
			if v := sr.lset.Get(name); v != "" {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil, nil
}

func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	for _, sr := range q.candidates(math.MinInt64, ms) {
		if matches(sr.lset, ms) {
			sr.lset.Range(func(l labels.Label) { seen[l.Name] = true })
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil, nil
}

func (q *querier) Close() error { return nil }

type seriesSet struct {
	list []storage.Series
	idx  int
}

func (ss *seriesSet) Next() bool                        { ss.idx++; return ss.idx < len(ss.list) }
func (ss *seriesSet) At() storage.Series                { return ss.list[ss.idx] }
func (ss *seriesSet) Err() error                        { return nil }
func (ss *seriesSet) Warnings() annotations.Annotations { return nil }
