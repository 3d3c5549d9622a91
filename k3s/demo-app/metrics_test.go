package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql/parser"
)

// served starts the app on a loopback port, makes the requests a load test would (good,
// bad, unknown path, wrong method) and returns the server.
func served(t *testing.T) *httptest.Server {
	t.Helper()
	a, _ := fakeApp(t)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	for _, r := range []struct{ method, path string }{
		{"GET", "/work?cpu_ms=5"}, {"GET", "/work?cpu_ms=5"}, {"GET", "/work?cpu_ms=x"},
		{"GET", "/nope"}, {"POST", "/work"}, {"GET", "/healthz"}, {"GET", "/metrics"},
	} {
		req, _ := http.NewRequest(r.method, srv.URL+r.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return srv
}

func scrape(t *testing.T, srv *httptest.Server, accept string) (contentType string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return resp.Header.Get("Content-Type"), body
}

// families scrapes /metrics in the text format and parses it with expfmt.
func families(t *testing.T, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	ct, body := scrape(t, srv, "")
	if !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("expfmt cannot parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func TestMetricsScrape(t *testing.T) {
	mfs := families(t, served(t))

	reqs := mfs["http_requests_total"]
	if reqs.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("http_requests_total: %v", reqs)
	}
	got := map[string]float64{}
	for _, m := range reqs.GetMetric() {
		l := labelsOf(m)
		got[l["code"]+" "+l["method"]+" "+l["route"]] = m.GetCounter().GetValue()
	}
	want := map[string]float64{"200 get /work": 2, "400 get /work": 1, "404 get other": 1, "405 post /work": 1, "200 get /healthz": 1}
	if len(got) != len(want) {
		t.Errorf("requests %v, want %v (the scrape itself not counted)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("http_requests_total{code method route = %s} = %v, want %v", k, got[k], v)
		}
	}

	lat := mfs["http_request_duration_seconds"]
	if lat.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("http_request_duration_seconds: %v", lat)
	}
	for _, m := range lat.GetMetric() {
		l := labelsOf(m)
		if l["route"] == "/metrics" {
			t.Errorf("the scrape is timed: %v", l)
		}
		if l["method"] == "get" && l["route"] == "/work" && m.GetHistogram().GetSampleCount() != 3 {
			t.Errorf("GET /work observed %d times, want 3", m.GetHistogram().GetSampleCount())
		}
		var bounds []float64
		for _, b := range m.GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		if want := append(slices.Clone(latencyBuckets), math.Inf(1)); !slices.Equal(bounds, want) {
			t.Errorf("%v: buckets %v, want %v", l, bounds, want)
		}
	}

	if cpu := mfs["demo_cpu_seconds_total"].GetMetric(); len(cpu) != 1 || math.Abs(cpu[0].GetCounter().GetValue()-0.01) > 1e-12 {
		t.Errorf("demo_cpu_seconds_total = %v, want 0.01 (two fake 5 ms burns)", cpu)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "promhttp_metric_handler_requests_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s: the standard collectors are not registered", name)
		}
	}
}

// TestMetricsOpenMetrics: a scraper that asks for OpenMetrics gets it, and Prometheus' own
// parser reads it to the # EOF.
func TestMetricsOpenMetrics(t *testing.T) {
	ct, body := scrape(t, served(t), "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	if !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("content type %q, want OpenMetrics", ct)
	}
	p, err := textparse.New(body, ct, labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		t.Fatal(err)
	}
	work := 0.0
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("textparse: %v\n%s", err, body)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		var l labels.Labels
		p.Labels(&l)
		if _, _, v := p.Series(); l.Get("__name__") == "http_requests_total" && l.Get("route") == "/work" {
			work += v
		}
	}
	if work != 4 {
		t.Errorf("OpenMetrics: %v requests to /work, want 4", work)
	}
}

func TestHistogramBucketsAreCumulative(t *testing.T) {
	m := newMetrics()
	for _, d := range []time.Duration{3 * time.Millisecond, 30 * time.Millisecond, 10 * time.Second} { // le 0.005, le 0.05, +Inf
		m.latency.WithLabelValues("get", "/work").Observe(d.Seconds())
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "http_request_duration_seconds" })
	h := mfs[i].GetMetric()[0].GetHistogram()
	cum := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if cum[0.005] != 1 || cum[0.025] != 1 || cum[0.05] != 2 || cum[5] != 2 || h.GetSampleCount() != 3 || math.Abs(h.GetSampleSum()-10.033) > 1e-9 {
		t.Errorf("buckets %v, count %d, sum %v", cum, h.GetSampleCount(), h.GetSampleSum())
	}
}

// TestDashboardsAndRulesReadWhatTheAppExposes: every series of the app (http_* and demo_*) a
// Grafana dashboard or an alert rule selects exists in the app's scrape, with every label the
// selector matches on.
func TestDashboardsAndRulesReadWhatTheAppExposes(t *testing.T) {
	mfs := families(t, served(t))
	var exprs []string
	dashboards, _ := filepath.Glob(filepath.Join("..", "dashboards", "*.json"))
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		exprs = append(exprs, exprsIn(doc)...)
	}
	promql := parser.NewParser(parser.Options{})
	rules, _ := filepath.Glob(filepath.Join("..", "monitoring", "*rules*.yml"))
	for _, f := range rules {
		groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
		if len(errs) > 0 {
			t.Fatalf("%s: %v", f, errs)
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				exprs = append(exprs, r.Expr)
			}
		}
	}
	if len(dashboards) == 0 || len(exprs) == 0 {
		t.Fatalf("no dashboards or rules found (%d files, %d queries)", len(dashboards)+len(rules), len(exprs))
	}
	checked := 0
	for _, e := range exprs {
		ast, err := promql.ParseExpr(e)
		if err != nil {
			t.Errorf("query %q: %v", e, err)
			continue
		}
		for _, vs := range parser.ExtractSelectors(ast) {
			name := ""
			for _, m := range vs {
				if m.Name == labels.MetricName {
					name = m.Value
				}
			}
			if !strings.HasPrefix(name, "demo_") && !strings.HasPrefix(name, "http_request") {
				continue
			}
			checked++
			mf := mfs[name]
			if mf == nil {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && mfs[base].GetType() == dto.MetricType_HISTOGRAM {
						mf = mfs[base]
					}
				}
			}
			if mf == nil {
				t.Errorf("query %q reads %s, which the app does not expose", e, name)
				continue
			}
			for _, m := range vs {
				if m.Name == labels.MetricName || m.Name == "le" {
					continue
				}
				if !slices.ContainsFunc(mf.GetMetric(), func(s *dto.Metric) bool { _, ok := labelsOf(s)[m.Name]; return ok }) {
					t.Errorf("query %q matches on label %q, which %s does not have", e, m.Name, mf.GetName())
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no dashboard or rule reads a series of the app: is this test still looking at the right files?")
	}
}

// exprsIn returns every "expr" string in a decoded Grafana dashboard.
func exprsIn(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "expr" {
				out = append(out, s)
			} else {
				out = append(out, exprsIn(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, exprsIn(x)...)
		}
	}
	return out
}
