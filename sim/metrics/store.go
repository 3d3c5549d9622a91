// Package metrics is the simulator's Prometheus: an in-memory time-series store that the
// simulated exporters append to at each scrape, queried with the real PromQL engine
// (github.com/prometheus/prometheus/promql).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/prometheus/prometheus/model/histogram"
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
	byName map[string][]*series // metric name -> series, in creation order
	// scrape bookkeeping for staleness markers
	scrapeSeen map[*series]bool
	lastScrape []*series
}

type series struct {
	lset labels.Labels
	ts   []int64
	vs   []float64
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{index: map[uint64][]*series{}, byName: map[string][]*series{}}
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
	s.byName[name] = append(s.byName[name], sr)
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
	if n := len(sr.ts); n > 0 && tMillis <= sr.ts[n-1] {
		return fmt.Errorf("series %s: sample at %d is not after the newest (%d)", sr.lset, tMillis, sr.ts[n-1])
	}
	sr.ts = append(sr.ts, tMillis)
	sr.vs = append(sr.vs, v)
	if s.scrapeSeen != nil {
		s.scrapeSeen[sr] = true
	}
	return nil
}

// BeginScrape starts a scrape: series appended until EndScrape are "seen".
func (s *Store) BeginScrape() { s.scrapeSeen = map[*series]bool{} }

// EndScrape writes a staleness marker, as Prometheus does, at tMillis for every series the
// previous scrape had and this one did not, so vanished pods and nodes drop out of instant
// queries at once instead of lingering for the 5-minute lookback.
func (s *Store) EndScrape(tMillis int64) {
	for _, sr := range s.lastScrape {
		if !s.scrapeSeen[sr] {
			if n := len(sr.ts); n == 0 || sr.ts[n-1] < tMillis {
				sr.ts = append(sr.ts, tMillis)
				sr.vs = append(sr.vs, math.Float64frombits(value.StaleNaN))
			}
		}
	}
	s.lastScrape = s.lastScrape[:0]
	for _, sr := range s.series {
		if s.scrapeSeen[sr] {
			s.lastScrape = append(s.lastScrape, sr)
		}
	}
	s.scrapeSeen = nil
}

// NumSeries returns how many series the store holds.
func (s *Store) NumSeries() int { return len(s.series) }

// NumSamples returns how many samples the store holds.
func (s *Store) NumSamples() int {
	n := 0
	for _, sr := range s.series {
		n += len(sr.ts)
	}
	return n
}

// Series calls fn for every series in creation order with its samples (read-only).
func (s *Store) Series(fn func(lset labels.Labels, ts []int64, vs []float64)) {
	for _, sr := range s.series {
		fn(sr.lset, sr.ts, sr.vs)
	}
}

// Bounds returns the oldest and newest sample times in milliseconds (ok false when empty).
func (s *Store) Bounds() (minT, maxT int64, ok bool) {
	for _, sr := range s.series {
		if len(sr.ts) == 0 {
			continue
		}
		if !ok || sr.ts[0] < minT {
			minT = sr.ts[0]
		}
		if !ok || sr.ts[len(sr.ts)-1] > maxT {
			maxT = sr.ts[len(sr.ts)-1]
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

func (q *querier) candidates(ms []*labels.Matcher) []*series {
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return q.s.byName[m.Value]
		}
	}
	return q.s.series
}

func (q *querier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	var out []storage.Series
	for _, sr := range q.candidates(ms) {
		if !matches(sr.lset, ms) {
			continue
		}
		lo := sort.Search(len(sr.ts), func(i int) bool { return sr.ts[i] >= mint })
		hi := sort.Search(len(sr.ts), func(i int) bool { return sr.ts[i] > maxt })
		if lo >= hi {
			continue
		}
		out = append(out, &view{lset: sr.lset, ts: sr.ts[lo:hi], vs: sr.vs[lo:hi]})
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesSet{list: out, idx: -1}
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	for _, sr := range q.candidates(ms) {
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
	for _, sr := range q.candidates(ms) {
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

// view is a series restricted to a time range.
type view struct {
	lset labels.Labels
	ts   []int64
	vs   []float64
}

func (v *view) Labels() labels.Labels { return v.lset }

func (v *view) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if si, ok := it.(*iterator); ok {
		si.ts, si.vs, si.i = v.ts, v.vs, -1
		return si
	}
	return &iterator{ts: v.ts, vs: v.vs, i: -1}
}

type iterator struct {
	ts []int64
	vs []float64
	i  int
}

var errNoHistograms = errors.New("the simulator's store holds no histograms")

func (it *iterator) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.ts) {
		it.i = len(it.ts)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *iterator) Seek(t int64) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	if it.i >= len(it.ts) {
		return chunkenc.ValNone
	}
	if it.ts[it.i] >= t {
		return chunkenc.ValFloat
	}
	rest := it.ts[it.i:]
	it.i += sort.Search(len(rest), func(j int) bool { return rest[j] >= t })
	if it.i >= len(it.ts) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

func (it *iterator) At() (int64, float64) { return it.ts[it.i], it.vs[it.i] }
func (it *iterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic(errNoHistograms)
}
func (it *iterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic(errNoHistograms)
}
func (it *iterator) AtT() int64  { return it.ts[it.i] }
func (it *iterator) AtST() int64 { return 0 }
func (it *iterator) Err() error  { return nil }
