// Package replay reads recorded Prometheus series and replays them to SmartScale's engine:
// open loop (what would the policy have decided on these series, tick by tick), closed loop
// (demand derived from the series drives a simulated cluster), and the flight recorder (the
// production Lambda's per-tick records re-decided byte for byte).
//
// A recording holds the raw series the engine's queries read. Two formats are accepted and
// parse to the same series: the Prometheus HTTP API's query_range JSON response (a matrix;
// several responses may follow each other in one file) and OpenMetrics text as written by
// `promtool tsdb dump-openmetrics`. `go run ./sim record` writes the JSON form.
package replay

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/smartscale/smartscale/sim/metrics"
)

// Metric names a recording may hold: the raw series the engine's default queries read.
const (
	MetricCPU          = "node_cpu_seconds_total"
	MetricMemAvailable = "node_memory_MemAvailable_bytes"
	MetricMemTotal     = "node_memory_MemTotal_bytes"
	MetricPodPhase     = "kube_pod_status_phase"
	MetricNodeInfo     = "kube_node_info"
)

// Metrics lists the metric names the brief's queries read, in the order `record` fetches
// them.
func Metrics() []string {
	return []string{MetricCPU, MetricMemAvailable, MetricMemTotal, MetricPodPhase, MetricNodeInfo}
}

// RuleMetrics lists the metric names the rules beyond the brief read (the responsive
// preset): a recording may hold them too, so such a policy can be replayed.
func RuleMetrics() []string {
	return []string{"kube_horizontalpodautoscaler_status_desired_replicas", "kube_horizontalpodautoscaler_status_current_replicas",
		"http_requests_total", "kube_pod_container_resource_requests", "kube_node_status_allocatable",
		"kube_node_spec_unschedulable", "kube_node_role", "kube_pod_status_unschedulable"}
}

// known reports whether a recording may hold series of the metric.
func known(name string) bool {
	return slices.Contains(Metrics(), name) || slices.Contains(RuleMetrics(), name)
}

// Sample is one recorded value; T is in milliseconds since the Unix epoch.
type Sample struct {
	T int64
	V float64
}

// Series is one recorded series: its labels (metric name included) and samples in strictly
// increasing time order.
type Series struct {
	Labels  labels.Labels
	Samples []Sample
}

// Recording is a set of series, sorted by labels.
type Recording struct {
	Series []Series
}

// Bounds returns the times of the oldest and newest samples (ok false when empty).
func (r *Recording) Bounds() (first, last time.Time, ok bool) {
	var lo, hi int64
	for _, s := range r.Series {
		if len(s.Samples) == 0 {
			continue
		}
		if !ok || s.Samples[0].T < lo {
			lo = s.Samples[0].T
		}
		if !ok || s.Samples[len(s.Samples)-1].T > hi {
			hi = s.Samples[len(s.Samples)-1].T
		}
		ok = true
	}
	return time.UnixMilli(lo).UTC(), time.UnixMilli(hi).UTC(), ok
}

// NumSamples counts the samples of every series.
func (r *Recording) NumSamples() int {
	n := 0
	for _, s := range r.Series {
		n += len(s.Samples)
	}
	return n
}

// Load appends every series to st, the simulator's in-memory TSDB, for the real PromQL
// engine to query. No staleness markers are added: a series that ends lingers for the
// 5-minute lookback, as it does in a Prometheus filled by promtool or remote write.
func (r *Recording) Load(st *metrics.Store) error {
	for _, s := range r.Series {
		ref := st.Ref(s.Labels)
		for _, smp := range s.Samples {
			if err := st.AppendRef(ref, smp.T, smp.V); err != nil {
				return fmt.Errorf("loading %s: %w", SeriesName(s.Labels), err)
			}
		}
	}
	return nil
}

// Store returns a new in-memory TSDB holding the recording.
func (r *Recording) Store() (*metrics.Store, error) {
	st := metrics.NewStore()
	return st, r.Load(st)
}

// Window returns the samples in [from, to] (milliseconds, inclusive) as a new recording;
// series without samples there are left out.
func (r *Recording) Window(from, to time.Time) *Recording {
	lo, hi := from.UnixMilli(), to.UnixMilli()
	out := &Recording{}
	for _, s := range r.Series {
		var kept []Sample
		for _, smp := range s.Samples {
			if smp.T >= lo && smp.T <= hi {
				kept = append(kept, smp)
			}
		}
		if len(kept) > 0 {
			out.Series = append(out.Series, Series{Labels: s.Labels, Samples: kept})
		}
	}
	return out
}

// Equal reports whether two recordings hold the same series with the same samples (NaN
// equals NaN).
func (r *Recording) Equal(o *Recording) bool { return r.Diff(o) == "" }

// Diff describes the first difference between two recordings, or "" when they are equal.
func (r *Recording) Diff(o *Recording) string {
	if len(r.Series) != len(o.Series) {
		return fmt.Sprintf("%d series vs %d", len(r.Series), len(o.Series))
	}
	for i := range r.Series {
		a, b := r.Series[i], o.Series[i]
		if !labels.Equal(a.Labels, b.Labels) {
			return fmt.Sprintf("series %d: %s vs %s", i, a.Labels, b.Labels)
		}
		if len(a.Samples) != len(b.Samples) {
			return fmt.Sprintf("series %s: %d samples vs %d", a.Labels, len(a.Samples), len(b.Samples))
		}
		for j := range a.Samples {
			x, y := a.Samples[j], b.Samples[j]
			same := x.V == y.V || (math.IsNaN(x.V) && math.IsNaN(y.V))
			if x.T != y.T || !same {
				return fmt.Sprintf("series %s sample %d: %v@%d vs %v@%d", a.Labels, j, x.V, x.T, y.V, y.T)
			}
		}
	}
	return ""
}

// builder collects samples series by series, merging series that appear more than once (a
// JSON file of several chunked responses) and checking time order.
type builder struct {
	series map[string]*Series
	seen   map[string]int // series key -> the document (JSON response, chunk) that last added to it
	last   labels.Labels  // the series of the previous add and its key: files hold a series' samples together
	key    string
}

func newBuilder() *builder {
	return &builder{series: map[string]*Series{}, seen: map[string]int{}}
}

// add appends one sample to the series lset. doc numbers the document (JSON response) the
// sample belongs to: the first sample of a later document may repeat the last one of an
// earlier document exactly (overlapping chunk bounds), anything else out of order is an error.
func (b *builder) add(lset labels.Labels, doc int, t int64, v float64) error {
	if !labels.Equal(lset, b.last) || b.key == "" {
		b.last, b.key = lset, lset.String()
	}
	key := b.key
	s, ok := b.series[key]
	if !ok {
		s = &Series{Labels: lset}
		b.series[key] = s
	}
	if n := len(s.Samples); n > 0 {
		last := s.Samples[n-1]
		if t <= last.T {
			if t == last.T && doc != b.seen[key] && (v == last.V || math.IsNaN(v) && math.IsNaN(last.V)) {
				return nil
			}
			what := "out of order"
			if t == last.T {
				what = "duplicate timestamp"
			}
			return fmt.Errorf("series %s: %s: sample at %s is not after the previous one at %s",
				SeriesName(lset), what, fmtMillis(t), fmtMillis(last.T))
		}
	}
	b.seen[key] = doc
	s.Samples = append(s.Samples, Sample{T: t, V: v})
	return nil
}

func (b *builder) recording() *Recording {
	r := &Recording{}
	for _, s := range b.series {
		r.Series = append(r.Series, *s)
	}
	slices.SortFunc(r.Series, func(a, b Series) int { return labels.Compare(a.Labels, b.Labels) })
	return r
}

// checkLabels validates a series' labels: a known metric name, valid label names.
func checkLabels(lset labels.Labels) error {
	name := lset.Get(labels.MetricName)
	if name == "" {
		return fmt.Errorf("series %s has no metric name (__name__)", SeriesName(lset))
	}
	if !known(name) {
		return fmt.Errorf("unknown series %s: a recording holds only %s", SeriesName(lset), strings.Join(append(Metrics(), RuleMetrics()...), ", "))
	}
	var err error
	lset.Range(func(l labels.Label) {
		if err == nil && !validLabelName(l.Name) {
			err = fmt.Errorf("series %s: invalid label name %q", SeriesName(lset), l.Name)
		}
	})
	return err
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func fmtMillis(t int64) string { return time.UnixMilli(t).UTC().Format("2006-01-02T15:04:05.000Z") }

// FromStore turns the series of the simulator's in-memory TSDB into a recording: known
// metrics only, staleness markers dropped, samples whose time is a multiple of every (0:
// all), series that keep rejects left out.
func FromStore(st *metrics.Store, every time.Duration, keep func(labels.Labels) bool) *Recording {
	b := newBuilder()
	st.Series(func(lset labels.Labels, ts []int64, vs []float64) {
		lset = dropEmpty(lset)
		if !known(lset.Get(labels.MetricName)) || keep != nil && !keep(lset) {
			return
		}
		for i, t := range ts {
			if value.IsStaleNaN(vs[i]) || every > 0 && t%every.Milliseconds() != 0 {
				continue
			}
			_ = b.add(lset, 1, t, vs[i]) // the store keeps samples in order
		}
	})
	r := b.recording()
	r.Series = slices.DeleteFunc(r.Series, func(s Series) bool { return len(s.Samples) == 0 })
	return r
}

// SeriesName writes a series the way PromQL selects it: name{a="b",c="d"}.
func SeriesName(lset labels.Labels) string {
	var b strings.Builder
	b.WriteString(lset.Get(labels.MetricName))
	b.WriteByte('{')
	i := 0
	lset.Range(func(l labels.Label) {
		if l.Name == labels.MetricName {
			return
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + "=" + quoteOM(l.Value))
		i++
	})
	b.WriteByte('}')
	return b.String()
}

// dropEmpty removes labels with empty values: Prometheus treats them as absent.
func dropEmpty(lset labels.Labels) labels.Labels {
	empty := false
	lset.Range(func(l labels.Label) { empty = empty || l.Value == "" })
	if !empty {
		return lset
	}
	b := labels.NewBuilder(lset)
	lset.Range(func(l labels.Label) {
		if l.Value == "" {
			b.Del(l.Name)
		}
	})
	return b.Labels()
}
