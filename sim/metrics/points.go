package metrics

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

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

// blockBits sizes the blocks a series' samples live in (1<<blockBits points, 8 KiB). A
// series grows its first block by doubling and then adds full blocks, so appending never
// copies more than one block and a day of 15 s samples is a dozen small allocations.
const (
	blockBits = 9
	blockLen  = 1 << blockBits
	blockMask = blockLen - 1
)

// points are a series' samples in time order, in blocks: every block but the last is full.
type points struct {
	blocks [][]point
	n      int
}

func (ps *points) len() int { return ps.n }

func (ps *points) at(i int) *point { return &ps.blocks[i>>blockBits][i&blockMask] }

func (ps *points) last() int64 { return ps.at(ps.n - 1).t }

func (ps *points) first() int64 { return ps.blocks[0][0].t }

func (ps *points) append(p point) {
	if k := len(ps.blocks); k == 0 || len(ps.blocks[k-1]) == blockLen {
		c := blockLen
		if k == 0 {
			c = 8
		}
		ps.blocks = append(ps.blocks, make([]point, 0, c))
	}
	k := len(ps.blocks) - 1
	ps.blocks[k] = append(ps.blocks[k], p) // the first block doubles up to blockLen
	ps.n++
}

// search returns the index of the first sample at or after t (n when none is).
func (ps *points) search(t int64) int {
	lo, hi := 0, ps.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ps.at(m).t < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// window is the samples lo..lo+n-1 of a series; it implements storage.Samples and Get
// returns a pointer into the store (no allocation). A window within one block (a query's
// range usually is) reads that block directly.
type window struct {
	flat  []point // the samples, when in one block
	ps    *points // else the series' samples from lo on
	lo, n int
}

func (ps *points) window(lo, hi int) window {
	if lo>>blockBits == (hi-1)>>blockBits {
		b := ps.blocks[lo>>blockBits]
		return window{flat: b[lo&blockMask : (hi-1)&blockMask+1], n: hi - lo}
	}
	return window{ps: ps, lo: lo, n: hi - lo}
}

func (w *window) Get(i int) chunks.Sample {
	if w.flat != nil {
		return &w.flat[i]
	}
	return w.ps.at(w.lo + i)
}

func (w *window) Len() int { return w.n }
