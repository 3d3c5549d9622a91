package prom

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func startProm(t *testing.T) string {
	t.Helper()
	return realtest.Prometheus(t, realtest.Busy(start).OpenMetrics())
}

func TestDefaultQueriesOnRealPrometheus(t *testing.T) {
	url := startProm(t)
	c, err := New(url, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := engine.DefaultPolicy()
	ctx := context.Background()
	tests := []struct {
		at        time.Duration
		name      string
		want, tol float64
	}{
		{55*time.Minute + 7*time.Second, engine.ReadingCPU, 78, 0.5},
		{55*time.Minute + 7*time.Second, engine.ReadingCPUHighMin, 78, 0.5},
		{55*time.Minute + 7*time.Second, engine.ReadingCPULowMax, 78, 0.5},
		{25*time.Minute + 7*time.Second, engine.ReadingCPULowMax, 20, 0.5},
		{35*time.Minute + 7*time.Second, engine.ReadingCPULowMax, 78, 0.5},  // 10m window reaches the ramp
		{31*time.Minute + 7*time.Second, engine.ReadingCPUHighMin, 20, 0.5}, // 3m window still holds the low part
		{55*time.Minute + 7*time.Second, engine.ReadingMemory, 40, 0.01},
		{55*time.Minute + 7*time.Second, engine.ReadingPending, 2, 0},
		{41*time.Minute + 7*time.Second, engine.ReadingPendingMin, 0, 0},
		{45*time.Minute + 7*time.Second, engine.ReadingPendingMin, 2, 0},
		{55*time.Minute + 7*time.Second, engine.ReadingNodes, 3, 0},
		{55*time.Minute + 7*time.Second, engine.ReadingMetricAge, 7, 0.001},
	}
	for _, tt := range tests {
		t.Run(tt.name+"@"+tt.at.String(), func(t *testing.T) {
			s, err := c.Query(ctx, p.Expand(tt.name), start.Add(tt.at))
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if math.Abs(s.Value-tt.want) > tt.tol {
				t.Errorf("%s = %v, want %v ± %v", tt.name, s.Value, tt.want, tt.tol)
			}
			if !s.Time.Equal(start.Add(tt.at)) {
				t.Errorf("sample time %v, want the evaluation time %v", s.Time, start.Add(tt.at))
			}
		})
	}

	// Through engine.Query: every reading usable.
	rs := engine.Query(ctx, c, p, start.Add(55*time.Minute+7*time.Second))
	if inv := rs.Invalid(); len(inv) > 0 {
		t.Errorf("invalid readings on healthy data: %v (%+v)", inv, rs)
	}
}

// The brief's CPU query averages every non-idle mode series, most of them near zero: on
// realistic node-exporter data it reads several times below the real busy share.
func TestBriefCPUQueryReadsFarBelowTheDefault(t *testing.T) {
	url := startProm(t)
	c, err := New(url, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := start.Add(55*time.Minute + 7*time.Second)
	ctx := context.Background()
	right, err := c.Query(ctx, engine.DefaultPolicy().Expand(engine.ReadingCPU), at)
	if err != nil {
		t.Fatal(err)
	}
	brief, err := c.Query(ctx, engine.BriefCPUQuery, at)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("busy 78%%: default query %.1f%%, brief query %.1f%%", right.Value, brief.Value)
	if math.Abs(right.Value-78) > 0.5 {
		t.Errorf("default CPU query = %.2f, want 78", right.Value)
	}
	// 7 non-idle modes share the busy time: the brief's average is busy/7.
	if want := 78.0 / float64(len(realtest.CPUModes)); math.Abs(brief.Value-want) > 0.5 {
		t.Errorf("brief CPU query = %.2f, want about %.2f", brief.Value, want)
	}
	if brief.Value > right.Value/3 {
		t.Errorf("brief query %.1f%% not far below the correct %.1f%%", brief.Value, right.Value)
	}
	// The brief's query never triggers the 70% scale-up although the cluster is at 78%.
	if brief.Value > engine.DefaultPolicy().ScaleUpCPUPercent {
		t.Errorf("brief query %.1f%% would trigger the scale-up", brief.Value)
	}
}

func TestBadAnswersFromRealPrometheus(t *testing.T) {
	url := startProm(t)
	c, err := New(url, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := start.Add(50 * time.Minute)
	tests := []struct {
		name  string
		query string
		want  engine.MetricProblem
		value float64
	}{
		{"scalar is a value", `scalar(count(kube_node_info))`, engine.ProblemNone, 3},
		{"one-element vector is a value", `count(kube_node_info)`, engine.ProblemNone, 3},
		{"empty vector", `sum(no_such_metric)`, engine.ProblemEmpty, 0},
		{"rate at an absent series", `sum(rate(no_such_metric_total[5m]))`, engine.ProblemEmpty, 0},
		{"several series", `kube_node_info`, engine.ProblemMultiple, 0},
		{"NaN", `sum(kube_node_info) * 0 / 0`, engine.ProblemNaN, 0},
		{"Inf", `count(kube_node_info) / 0`, engine.ProblemInf, 0},
		{"-Inf scalar", `-1/0`, engine.ProblemInf, 0},
		{"syntax error is a 400", `sum(`, engine.ProblemHTTP, 0},
		{"string result", `"text"`, engine.ProblemHTTP, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Query(context.Background(), tt.query, at)
			assertProblem(t, err, tt.want)
			if tt.want == engine.ProblemNone && s.Value != tt.value {
				t.Errorf("value %v, want %v", s.Value, tt.value)
			}
		})
	}
}

func assertProblem(t *testing.T, err error, want engine.MetricProblem) {
	t.Helper()
	if want == engine.ProblemNone {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var me *engine.MetricError
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T), want *engine.MetricError %s", err, err, want)
	}
	if me.Problem != want {
		t.Errorf("problem %q (%v), want %q", me.Problem, err, want)
	}
	if me.Query == "" {
		t.Errorf("MetricError without its query")
	}
}

// proxy sits in front of the real Prometheus and spoils its answers on demand.
type proxy struct {
	mode atomic.Value // string
	rp   *httputil.ReverseProxy
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode, _ := p.mode.Load().(string)
	switch mode {
	case "503":
		http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
	case "502-html":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>bad gateway</html>")
	case "422":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory"}`)
	case "503-timeout":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`)
	case "slow":
		select {
		case <-time.After(4 * time.Second):
		case <-r.Context().Done():
		}
		http.Error(w, "too late", http.StatusGatewayTimeout)
	case "nan":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1767228600,"NaN"]}]}}`)
	case "garbage":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"val`)
	case "warnings":
		r.Header.Del("Accept-Encoding")
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		body["warnings"] = []string{"remote read of store-2 failed: partial response"}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

func TestBadAnswersThroughProxy(t *testing.T) {
	upstream := startProm(t)
	u, _ := url.Parse(upstream)
	px := &proxy{rp: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	// Long enough for a loaded CI machine, far shorter than the slow mode's delay.
	c, err := New(srv.URL, 1500*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := engine.DefaultPolicy().Expand(engine.ReadingMemory)
	at := start.Add(50 * time.Minute)
	tests := []struct {
		mode string
		want engine.MetricProblem
	}{
		{"", engine.ProblemNone},
		{"503", engine.ProblemHTTP},
		{"502-html", engine.ProblemHTTP},
		{"422", engine.ProblemHTTP},
		{"503-timeout", engine.ProblemTimeout},
		{"slow", engine.ProblemTimeout},
		{"nan", engine.ProblemNaN},
		{"garbage", engine.ProblemHTTP},
		{"warnings", engine.ProblemPartial},
	}
	for _, tt := range tests {
		t.Run("mode="+tt.mode, func(t *testing.T) {
			px.mode.Store(tt.mode)
			began := time.Now()
			s, err := c.Query(context.Background(), q, at)
			assertProblem(t, err, tt.want)
			if el := time.Since(began); el > 3500*time.Millisecond {
				t.Errorf("query took %v, want it bounded by the 1.5s timeout", el)
			}
			if tt.want == engine.ProblemPartial && (len(s.Warnings) == 0 || math.Abs(s.Value-40) > 0.01) {
				t.Errorf("partial answer should keep value and warnings, got %+v", s)
			}
			// Whatever went wrong, the engine sees a problem, never a zero.
			r := engine.Query(context.Background(), c, engine.DefaultPolicy(), at).Memory
			if tt.want != engine.ProblemNone && r.OK() {
				t.Errorf("engine reading usable (%v) on a %s answer", r.Value, tt.mode)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	port := realtest.FreePort(t)
	c, err := New("http://127.0.0.1:"+strconv.Itoa(port), 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Query(context.Background(), "up", time.Now())
	var me *engine.MetricError
	if !errors.As(err, &me) || me.Problem == engine.ProblemNone {
		t.Fatalf("want a MetricError, got %v", err)
	}
	if !strings.Contains(err.Error(), "connect") {
		t.Errorf("error should say why: %v", err)
	}
}
