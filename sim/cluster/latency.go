package cluster

import "math"

// Histogram accumulates request latencies as a weighted mixture of shifted exponential
// distributions (one per group of identical pods), in log-spaced buckets from 1 ms to 100 s.
type Histogram struct {
	counts [buckets + 1]float64 // counts[k]: latencies in (edge[k-1], edge[k]]; last: > 100 s
	total  float64
}

const (
	perDecade = 48
	buckets   = 5 * perDecade // 1 ms .. 100 s
)

var edges = func() [buckets]float64 {
	var e [buckets]float64
	for k := range e {
		e[k] = math.Pow(10, float64(k+1)/perDecade) // ms
	}
	return e
}()

// Add adds weight requests whose latency is baseMs plus an exponential with rate perMs (1/ms).
func (h *Histogram) Add(weight, baseMs, perMs float64) {
	if weight <= 0 {
		return
	}
	prev := 0.0
	for k, x := range edges {
		c := 0.0
		if x > baseMs {
			c = 1 - math.Exp(-perMs*(x-baseMs))
		}
		h.counts[k] += weight * (c - prev)
		prev = c
		if c >= 1-1e-12 {
			h.total += weight
			return
		}
	}
	h.counts[buckets] += weight * (1 - prev)
	h.total += weight
}

// Merge adds o into h.
func (h *Histogram) Merge(o *Histogram) {
	for k := range h.counts {
		h.counts[k] += o.counts[k]
	}
	h.total += o.total
}

// Total is the weight added.
func (h *Histogram) Total() float64 { return h.total }

// Quantile returns the q-quantile in ms (log-interpolated within a bucket), 0 when empty.
func (h *Histogram) Quantile(q float64) float64 {
	if h.total <= 0 {
		return 0
	}
	want := q * h.total
	acc := 0.0
	for k, c := range h.counts {
		if acc+c >= want && c > 0 {
			lo := 0.0
			if k > 0 {
				lo = edges[k-1]
			}
			if k == buckets {
				return edges[buckets-1]
			}
			hi := edges[k]
			f := (want - acc) / c
			if lo == 0 {
				return hi * f
			}
			return lo * math.Pow(hi/lo, f)
		}
		acc += c
	}
	return edges[buckets-1]
}

// Reset empties the histogram.
func (h *Histogram) Reset() { *h = Histogram{} }

// podLatency returns the latency component of a pod serving lambda requests/s with a
// service rate of mu requests/s: an M/M/1 response time (rate mu - lambda), held at 2% of mu
// once saturated (the queue is full and the rest is dropped).
func podLatency(lambda, mu float64) (perMs float64) {
	r := max(mu-lambda, 0.02*mu)
	return r / 1000
}
