package replay

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The same three series in both formats, as Prometheus and promtool write them: JSON with
// second timestamps (fractions where the scrape was off the second) and string values;
// OpenMetrics as `promtool tsdb dump-openmetrics` prints it (%g values, %.3f timestamps).
const sameJSON = `{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"__name__":"node_cpu_seconds_total","cpu":"0","instance":"10.0.1.12:9100","job":"node-exporter","mode":"idle"},
  "values":[[1767571200,"81234.56"],[1767571215.25,"81248.1"],[1767571230.5,"81262.77"]]},
 {"metric":{"__name__":"node_memory_MemTotal_bytes","instance":"10.0.1.12:9100","job":"node-exporter"},
  "values":[[1767571200,"4102029312"],[1767571215.25,"4102029312"]]},
 {"metric":{"__name__":"kube_pod_status_phase","job":"kube-state-metrics","namespace":"default","phase":"Pending","pod":"web-\"7\""},
  "values":[[1767571200,"0"],[1767571215.25,"1"],[1767571230.5,"NaN"]]}
]},"warnings":[]}`

const sameOpenMetrics = `kube_pod_status_phase{job="kube-state-metrics",namespace="default",phase="Pending",pod="web-\"7\""} 0 1767571200.000
kube_pod_status_phase{job="kube-state-metrics",namespace="default",phase="Pending",pod="web-\"7\""} 1 1767571215.250
kube_pod_status_phase{job="kube-state-metrics",namespace="default",phase="Pending",pod="web-\"7\""} NaN 1767571230.500
node_cpu_seconds_total{cpu="0",instance="10.0.1.12:9100",job="node-exporter",mode="idle"} 81234.56 1767571200.000
node_cpu_seconds_total{cpu="0",instance="10.0.1.12:9100",job="node-exporter",mode="idle"} 81248.1 1767571215.250
node_cpu_seconds_total{cpu="0",instance="10.0.1.12:9100",job="node-exporter",mode="idle"} 81262.77 1767571230.500
node_memory_MemTotal_bytes{instance="10.0.1.12:9100",job="node-exporter"} 4.102029312e+09 1767571200.000
node_memory_MemTotal_bytes{instance="10.0.1.12:9100",job="node-exporter"} 4.102029312e+09 1767571215.250
# EOF
`

func TestBothFormatsParseToTheSameSeries(t *testing.T) {
	fromJSON, err := Parse([]byte(sameJSON))
	if err != nil {
		t.Fatal(err)
	}
	fromOM, err := Parse([]byte(sameOpenMetrics))
	if err != nil {
		t.Fatal(err)
	}
	if d := fromJSON.Diff(fromOM); d != "" {
		t.Fatalf("JSON and OpenMetrics differ: %s", d)
	}
	if len(fromJSON.Series) != 3 || fromJSON.NumSamples() != 8 {
		t.Fatalf("got %d series, %d samples; want 3, 8", len(fromJSON.Series), fromJSON.NumSamples())
	}
	if got := fromJSON.Series[1].Samples[1]; got.T != 1767571215250 || got.V != 81248.1 {
		t.Errorf("sample = %+v, want 81248.1 at 1767571215250 ms", got)
	}
	if got := fromJSON.Series[0].Labels.Get("pod"); got != `web-"7"` {
		t.Errorf("escaped label value = %q", got)
	}
}

// TestWritersRoundTrip writes a real recording in both formats and parses each back.
func TestWritersRoundTrip(t *testing.T) {
	rec := shipped(t, "diurnal-day")
	first, _, _ := rec.Bounds()
	win := rec.Window(first.Add(8*time.Hour), first.Add(9*time.Hour))
	var js, om bytes.Buffer
	if err := win.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := win.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	a, err := ParseJSON(js.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseOpenMetrics(om.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if d := win.Diff(a); d != "" {
		t.Errorf("JSON round trip: %s", d)
	}
	if d := win.Diff(b); d != "" {
		t.Errorf("OpenMetrics round trip: %s", d)
	}
	if len(win.Series) < 20 || win.NumSamples() < 20*100 {
		t.Errorf("window too small to mean anything: %d series, %d samples", len(win.Series), win.NumSamples())
	}
	// Writing is deterministic.
	var js2 bytes.Buffer
	if err := a.WriteJSON(&js2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js.Bytes(), js2.Bytes()) {
		t.Error("WriteJSON(ParseJSON(x)) != x")
	}
}

// TestChunkedJSON: several query_range responses in one file join into one series; the
// first sample of a chunk may repeat the previous chunk's last (inclusive bounds).
func TestChunkedJSON(t *testing.T) {
	doc := func(values string) string {
		return `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"kube_node_info","node":"a"},"values":[` + values + `]}]}}`
	}
	rec, err := ParseJSON([]byte(doc(`[10,"1"],[25,"1"]`) + "\n" + doc(`[25,"1"],[40,"1"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Series) != 1 || len(rec.Series[0].Samples) != 3 {
		t.Fatalf("got %+v, want one series of 3 samples", rec.Series)
	}
}

func TestMalformedRecordings(t *testing.T) {
	const okJSONSeries = `{"metric":{"__name__":"kube_node_info","node":"a"},"values":[[1767571200,"1"]]}`
	jsonDoc := func(result string) string {
		return `{"status":"success","data":{"resultType":"matrix","result":[` + "\n" + result + "\n" + `]}}`
	}
	const line = `kube_node_info{node="a"} 1 1767571200`
	cases := []struct {
		name, input string
		want        []string // substrings of the error
	}{
		{"om: no EOF", line + "\n", []string{"missing \"# EOF\"", "truncated"}},
		{"om: no timestamp", `kube_node_info{node="a"} 1` + "\n# EOF\n", []string{"line 1", "no timestamp"}},
		{"om: bad value", `kube_node_info{node="a"} one 1767571200` + "\n# EOF\n", []string{"line 1", `"one"`, "invalid syntax"}},
		{"om: out of order", line + "\n" + `kube_node_info{node="a"} 1 1767571185` + "\n# EOF\n",
			[]string{"line 2", `kube_node_info{node="a"}`, "out of order", "2026-01-04T23:59:45.000Z"}},
		{"om: duplicate", line + "\n" + line + "\n# EOF\n", []string{"line 2", "duplicate timestamp"}},
		{"om: unknown series", line + "\n" + `up{job="node-exporter"} 1 1767571200` + "\n# EOF\n",
			[]string{"line 2", `unknown series up{job="node-exporter"}`, "kube_node_info"}},
		{"om: milliseconds", `kube_node_info{node="a"} 1 1767571200000` + "\n# EOF\n", []string{"line 1", "milliseconds"}},
		{"om: unclosed label", `kube_node_info{node="a} 1 1767571200` + "\n# EOF\n", []string{"line 1", "expected label value"}},
		{"om: after EOF", line + "\n# EOF\n" + line + "\n", []string{"line 3", "after \"# EOF\""}},
		{"om: bad label name", `kube_node_info{1node="a"} 1 1767571200` + "\n# EOF\n", []string{"line 1", "expected label name"}},
		{"om: stray comment", "# hello\n" + line + "\n# EOF\n", []string{"line 1", "unexpected comment", "only # HELP, # TYPE, # UNIT"}},
		{"om: CRLF", line + "\r\n# EOF\r\n", []string{"line 1", `ends with \r\n`}},
		{"om: empty line", line + "\n\n# EOF\n", []string{"line 2", "empty line"}},
		{"om: blank line after EOF", line + "\n# EOF\n\n", []string{"line 3", "after \"# EOF\""}},
		{"om: duplicate label", `kube_node_info{node="a",node="b"} 1 1767571200` + "\n# EOF\n", []string{"line 1", `label "node" appears twice`}},
		{"om: unit not a suffix", "# TYPE node_memory_MemTotal_bytes gauge\n# UNIT node_memory_MemTotal_bytes seconds\n# EOF\n",
			[]string{"line 2", `unit "seconds" not a suffix`}},
		{"om: bad type", "# TYPE kube_node_info sometimes\n" + line + "\n# EOF\n", []string{"line 1", `invalid metric type "sometimes"`}},
		{"om: exemplar without value", "# TYPE node_cpu_seconds counter\n" +
			`node_cpu_seconds_total{cpu="0",mode="idle"} 1 1767571200 # {trace_id="x"}` + "\n# EOF\n", []string{"line 2", "expected value after exemplar labels"}},
		{"json: syntax", jsonDoc(okJSONSeries + ",\n{\"metric\":{]"), []string{"line 3", "malformed JSON"}},
		{"json: truncated", jsonDoc(okJSONSeries)[:60], []string{"truncated"}},
		{"json: error status", `{"status":"error","errorType":"bad_data","error":"parse error"}`, []string{"status is \"error\"", "parse error"}},
		{"json: vector", `{"status":"success","data":{"resultType":"vector","result":[]}}`, []string{"resultType is \"vector\"", "matrix"}},
		{"json: unknown series", jsonDoc(okJSONSeries + ",\n" + `{"metric":{"__name__":"apiserver_request_total"},"values":[[1767571200,"1"]]}`),
			[]string{"line 3", "unknown series apiserver_request_total"}},
		{"json: out of order", jsonDoc(`{"metric":{"__name__":"kube_node_info","node":"a"},"values":[[1767571200,"1"],[1767571100,"1"]]}`),
			[]string{"line 2", `kube_node_info{node="a"}`, "out of order"}},
		{"json: number value", jsonDoc(`{"metric":{"__name__":"kube_node_info","node":"a"},"values":[[1767571200,1]]}`),
			[]string{"line 2", "series 1", "sample value must be a quoted string"}},
		{"json: no name", jsonDoc(`{"metric":{"node":"a"},"values":[[1767571200,"1"]]}`), []string{"line 2", "no metric name"}},
		{"json: milliseconds", jsonDoc(`{"metric":{"__name__":"kube_node_info","node":"a"},"values":[[1767571200000,"1"]]}`),
			[]string{"line 2", "milliseconds"}},
		{"empty", "", []string{"missing \"# EOF\""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.input))
			if err == nil {
				t.Fatalf("no error for %q", c.input)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %v is not a *ParseError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

var shippedCache sync.Map

// shipped returns a shipped recording, parsed once per test binary.
func shipped(t testing.TB, name string) *Recording {
	t.Helper()
	if r, ok := shippedCache.Load(name); ok {
		return r.(*Recording)
	}
	r, err := ReadFile(filepath.Join(recordingsDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	shippedCache.Store(name, r)
	return r
}

// TestOpenMetricsAsTheSpecSays: metadata lines, exemplars, _created start times and escapes
// are read as OpenMetrics defines them, and an error after them still names its own line.
func TestOpenMetricsAsTheSpecSays(t *testing.T) {
	const text = `# HELP node_cpu_seconds Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds counter
# UNIT node_cpu_seconds seconds
node_cpu_seconds_total{cpu="0",mode="idle"} 100.5 1767571200.001 # {trace_id="abc"} 1 1767571199.5
node_cpu_seconds_created{cpu="0",mode="idle"} 1767500000 1767571200.001
node_cpu_seconds_total{cpu="0",mode="idle"} 115.25 1767571215.999
# TYPE kube_pod_status_phase gauge
# HELP kube_pod_status_phase The pod's phase, with a "quote" and a \\ backslash.
kube_pod_status_phase{namespace="default",phase="Pending",pod="web-\"7\"\\x",uid=""} 1 1767571200
# EOF`
	rec, err := ParseOpenMetrics([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Series) != 2 || rec.NumSamples() != 3 {
		t.Fatalf("got %d series, %d samples, want 2 and 3 (no _created, no exemplar): %+v", len(rec.Series), rec.NumSamples(), rec.Series)
	}
	pod, cpu := rec.Series[0], rec.Series[1]
	if got := pod.Labels.Get("pod"); got != `web-"7"\x` {
		t.Errorf("escaped label value = %q", got)
	}
	if pod.Labels.Has("uid") {
		t.Errorf("an empty label value is an absent label: %s", pod.Labels)
	}
	want := []Sample{{T: 1767571200001, V: 100.5}, {T: 1767571215999, V: 115.25}}
	if len(cpu.Samples) != 2 || cpu.Samples[0] != want[0] || cpu.Samples[1] != want[1] {
		t.Errorf("samples = %+v, want %+v (seconds to exact milliseconds)", cpu.Samples, want)
	}

	// The same text with a bad sample appended before # EOF: line 10.
	bad := strings.Replace(text, "# EOF", `kube_pod_status_phase{pod="a"} 1`+"\n# EOF", 1)
	_, err = ParseOpenMetrics([]byte(bad))
	if err == nil || !strings.HasPrefix(err.Error(), "line 10: ") || !strings.Contains(err.Error(), "no timestamp") {
		t.Errorf("error %v, want line 10: ... no timestamp", err)
	}
}

// TestOpenMetricsTimestampsAreExactMilliseconds: every millisecond of a day's worth of
// magnitudes survives WriteOpenMetrics and textparse's seconds-to-milliseconds conversion.
func TestOpenMetricsTimestampsAreExactMilliseconds(t *testing.T) {
	var b strings.Builder
	b.WriteString("# TYPE kube_node_info gauge\n")
	var want []int64
	for _, base := range []int64{1e9 * 1000, 1767571200000, 4102444800000} { // 2001, 2026, 2100
		for ms := base; ms < base+2000; ms += 7 {
			want = append(want, ms)
			b.WriteString(`kube_node_info{node="a"} 1 ` + formatSeconds(ms) + "\n")
		}
	}
	b.WriteString("# EOF\n")
	rec, err := ParseOpenMetrics([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	got := rec.Series[0].Samples
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i, s := range got {
		if s.T != want[i] {
			t.Fatalf("sample %d at %d ms, want %d (written as %s)", i, s.T, want[i], formatSeconds(want[i]))
		}
	}
}
