package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// latencyBuckets are the latency histogram's upper bounds in seconds: the dashboards'
// p50/p95/p99 panels (k3s/dashboards/cluster-utilisation.json) interpolate between them, and
// 0.5 is the SLO's p95 bound.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// metrics is the app's own registry (no global state): the request counter and latency
// histogram the dashboards read, the CPU burned, and the standard Go and process collectors.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	cpu      prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", // the name most HTTP services use: the responsive preset reads it
			Help: "HTTP requests served, by status code, method and route.",
		}, []string{"code", "method", "route"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds",
			Help: "HTTP request latency, by method and route.", Buckets: latencyBuckets,
		}, []string{"method", "route"}),
		cpu: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "demo", Name: "cpu_seconds_total",
			Help: "CPU time burned by /work requests.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.cpu,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// instrument counts and times every request to next under its route (routeOf).
func (m *metrics) instrument(next http.Handler) http.Handler {
	route := promhttp.WithLabelFromRequest("route", func(r *http.Request) string { return routeOf(r.URL.Path) })
	return promhttp.InstrumentHandlerDuration(m.latency,
		promhttp.InstrumentHandlerCounter(m.requests, next, route), route)
}

// handler serves the registry in the format the scraper asks for (text 0.0.4 by default,
// OpenMetrics when negotiated), counting its own scrapes in promhttp_metric_handler_*.
func (m *metrics) handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry: m.reg, EnableOpenMetrics: true,
	}))
}
