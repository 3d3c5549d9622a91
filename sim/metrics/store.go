// Package metrics is the simulator's Prometheus: an in-memory time-series store that the
// simulated exporters append to at each scrape, queried with the real PromQL engine
// (github.com/prometheus/prometheus/promql).
package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
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
	pts  points
}

// point is one float sample; it implements chunks.Sample so Prometheus' own list
// iterator (with its binary-search Seek) reads the store without copies.
type point struct {
	t int64
	f float64
}

func (p *point) T() int64                      { return p.t }
func (p *point) ST() int64                     { return 0 }
func (p *point) F() float64                    { return p.f }
func (p *point) H() *histogram.Histogram       { return nil }
func (p *point) FH() *histogram.FloatHistogram { return nil }
func (p *point) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (p *point) Copy() chunks.Sample           { c := *p; return &c }

// points implements storage.Samples; Get returns a pointer into the slice (no allocation).
type points []point

func (ps points) Get(i int) chunks.Sample { return &ps[i] }
func (ps points) Len() int                { return len(ps) }

func (ps points) last() int64 { return ps[len(ps)-1].t }

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
	if len(sr.pts) > 0 && tMillis <= sr.pts.last() {
		return fmt.Errorf("series %s: sample at %d is not after the newest (%d)", sr.lset, tMillis, sr.pts.last())
	}
	sr.pts = append(sr.pts, point{tMillis, v})
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
			if len(sr.pts) == 0 || sr.pts.last() < tMillis {
				sr.pts = append(sr.pts, point{tMillis, math.Float64frombits(value.StaleNaN)})
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
		n += len(sr.pts)
	}
	return n
}

// Series calls fn for every series in creation order with its samples.
func (s *Store) Series(fn func(lset labels.Labels, ts []int64, vs []float64)) {
	for _, sr := range s.series {
		ts, vs := make([]int64, len(sr.pts)), make([]float64, len(sr.pts))
		for i, p := range sr.pts {
			ts[i], vs[i] = p.t, p.f
		}
		fn(sr.lset, ts, vs)
	}
}

// Bounds returns the oldest and newest sample times in milliseconds (ok false when empty).
func (s *Store) Bounds() (minT, maxT int64, ok bool) {
	for _, sr := range s.series {
		if len(sr.pts) == 0 {
			continue
		}
		if !ok || sr.pts[0].t < minT {
			minT = sr.pts[0].t
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
		lo := sort.Search(len(sr.pts), func(i int) bool { return sr.pts[i].t >= mint })
		hi := sort.Search(len(sr.pts), func(i int) bool { return sr.pts[i].t > maxt })
		if lo >= hi {
			continue
		}
		pts := sr.pts[lo:hi]
		out = append(out, &storage.SeriesEntry{Lset: sr.lset, SampleIteratorFn: func(it chunkenc.Iterator) chunkenc.Iterator {
			if r, ok := it.(interface{ Reset(storage.Samples) }); ok { // reuse the engine's iterator
				r.Reset(pts)
				return it
			}
			return storage.NewListSeriesIterator(pts)
		}})
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
