package main

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// latencyBuckets are the histogram's upper bounds in seconds.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type seriesKey struct {
	route string
	code  int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// metrics is a hand-written Prometheus registry: a request counter and a latency histogram
// by route and status code, and the CPU burned.
type metrics struct {
	mu       sync.Mutex
	requests map[seriesKey]uint64
	latency  map[string]*histogram // by route
	cpu      time.Duration
}

func newMetrics() *metrics {
	return &metrics{requests: map[seriesKey]uint64{}, latency: map[string]*histogram{}}
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[seriesKey{route, code}]++
	h := m.latency[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets)+1)}
		m.latency[route] = h
	}
	s := d.Seconds()
	i := sort.SearchFloat64s(latencyBuckets, s) // first bound >= s
	h.counts[i]++
	h.sum += s
	h.count++
}

func (m *metrics) addCPU(d time.Duration) {
	m.mu.Lock()
	m.cpu += d
	m.mu.Unlock()
}

// serve writes the text exposition format 0.0.4.
func (m *metrics) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(m.render()))
}

func (m *metrics) render() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP demo_http_requests_total HTTP requests served, by route and status code.\n")
	b.WriteString("# TYPE demo_http_requests_total counter\n")
	keys := make([]seriesKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].route != keys[j].route {
			return keys[i].route < keys[j].route
		}
		return keys[i].code < keys[j].code
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "demo_http_requests_total{route=%q,code=\"%d\"} %d\n", k.route, k.code, m.requests[k])
	}
	b.WriteString("# HELP demo_http_request_duration_seconds HTTP request latency, by route.\n")
	b.WriteString("# TYPE demo_http_request_duration_seconds histogram\n")
	routes := make([]string, 0, len(m.latency))
	for r := range m.latency {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	for _, r := range routes {
		h := m.latency[r]
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "demo_http_request_duration_seconds_bucket{route=%q,le=%q} %d\n", r, formatFloat(le), cum)
		}
		cum += h.counts[len(latencyBuckets)]
		fmt.Fprintf(&b, "demo_http_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", r, cum)
		fmt.Fprintf(&b, "demo_http_request_duration_seconds_sum{route=%q} %s\n", r, formatFloat(h.sum))
		fmt.Fprintf(&b, "demo_http_request_duration_seconds_count{route=%q} %d\n", r, h.count)
	}
	b.WriteString("# HELP demo_cpu_seconds_total CPU time burned by /work requests.\n")
	b.WriteString("# TYPE demo_cpu_seconds_total counter\n")
	fmt.Fprintf(&b, "demo_cpu_seconds_total %s\n", formatFloat(m.cpu.Seconds()))
	return b.String()
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
