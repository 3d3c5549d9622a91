package metrics

import (
	"math"
	"time"
)

// family is every series of one metric name, in creation order, and the subset of them
// recently appended to. A long run creates series for every pod and node it ever had, but
// a query at now only reads the last minutes: a selection whose range starts after
// oldMaxT reads live only, so queries cost what is alive, not what has ever been.
type family struct {
	all  []*series
	live []*series // creation order; every series not in it has no sample after oldMaxT
	// oldMaxT is the newest sample of any series left out of live (MinInt64: none is).
	oldMaxT int64
	rebuild bool  // a series out of live was appended to: live is incomplete
	cutoff  int64 // of the last prune
}

// liveHorizon is how long a series without samples stays in live; compactEvery is how
// often (in scrapes) families are pruned.
const (
	liveHorizon  = time.Hour
	compactEvery = 240
)

func newFamily() *family { return &family{oldMaxT: math.MinInt64, cutoff: math.MinInt64} }

func (f *family) add(sr *series) {
	f.all = append(f.all, sr)
	f.live = append(f.live, sr)
	sr.fam, sr.inLive = f, true
}

// prune keeps in live the series with a sample at or after cutoff (and every series
// still in live without samples, as new ones are).
func (f *family) prune(cutoff int64) {
	f.live = f.live[:0]
	f.oldMaxT = math.MinInt64
	for _, sr := range f.all {
		if sr.pts.len() == 0 || sr.pts.last() >= cutoff {
			f.live = append(f.live, sr)
			sr.inLive = true
			continue
		}
		sr.inLive = false
		f.oldMaxT = max(f.oldMaxT, sr.pts.last())
	}
	f.rebuild = false
	f.cutoff = cutoff
}

// selectFrom returns the series that may have samples at or after mint, in creation order.
func (f *family) selectFrom(mint int64) []*series {
	if f.rebuild {
		f.prune(f.cutoff)
	}
	if mint > f.oldMaxT {
		return f.live
	}
	return f.all
}
