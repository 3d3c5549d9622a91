package engine

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicyIsTheBrief(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.MinWorkers != 2 || p.MaxWorkers != 10 || p.ScaleUpCPUPercent != 70 || p.ScaleUpSustain != 3*time.Minute ||
		p.ScaleUpMemoryPercent != 75 || p.ScaleDownCPUPercent != 30 || p.ScaleDownSustain != 10*time.Minute ||
		p.ScaleDownMemoryPercent != 50 || p.ScaleUpCooldown != 5*time.Minute || p.ScaleDownCooldown != 10*time.Minute ||
		p.ScaleUpStep != 1 || p.ScaleUpMaxStep != 2 {
		t.Fatalf("defaults drifted from the brief: %+v", p)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	p := DefaultPolicy()
	p.MinWorkers, p.MaxWorkers = 5, 3
	p.ScaleUpCPUPercent = 120
	p.ScaleDownMemoryPercent = 80
	p.ScaleUpStep = 0
	p.ScaleUpSustain = time.Second
	p.Queries.CPU = " "
	err := p.Validate()
	if err == nil {
		t.Fatal("invalid policy accepted")
	}
	for _, want := range []string{"min_workers (5) must not exceed max_workers (3)", "scale_up_cpu_percent must be in (0, 100)",
		"scale_down_memory_percent (80) must be below scale_up_memory_percent (75)", "scale_up_step must be >= 1",
		"scale_up_sustain must be >= 30s", "queries.cpu is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy(strings.NewReader(`{"max_workers": 6, "scale_up_cooldown": "3m", "queries": {"pending": "sum(x)"}}`), DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if p.MaxWorkers != 6 || p.ScaleUpCooldown != 3*time.Minute || p.Queries.Pending != "sum(x)" || p.MinWorkers != 2 {
		t.Fatalf("overrides not applied: %+v", p)
	}
	bad := []struct{ in, want string }{
		{`{"max_workers": "ten"}`, "max_workers"},
		{`{"max_wrokers": 3}`, `unknown key "max_wrokers"`},
		{`{"scale_up_cooldown": "5 minutes"}`, `scale_up_cooldown: "5 minutes" is not a duration`},
		{`{"queries": {"cpux": "up"}}`, `unknown query "cpux"`},
		{`{"queries": {"cpu": 3}}`, "want a PromQL string"},
		{`{"min_workers": 12}`, "min_workers (12) must not exceed max_workers (10)"},
		{"{\n  \"max_workers\": 3,\n  ]", "line 3"},
	}
	for _, b := range bad {
		_, err := ParsePolicy(strings.NewReader(b.in), DefaultPolicy())
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want it to mention %q", b.in, err, b.want)
		}
	}
}

func TestPolicyJSONRoundTrip(t *testing.T) {
	brief := DefaultPolicy()
	brief.MaxWorkers, brief.DrainTimeout = 7, 90*time.Second
	resp := ResponsivePolicy()
	resp.ScaleUpOnDemand, resp.HeadroomPods = false, 3 // keys that differ from the preset's
	resp.Queries.RequestRate = `sum(rate(http_requests_total{job="shop"}[1m]))`
	for name, c := range map[string]struct {
		p    Policy
		base Policy
	}{
		"brief on the defaults": {brief, DefaultPolicy()},
		"responsive on nothing": {resp, Policy{}}, // the preset key brings the rest
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(c.p)
			if err != nil {
				t.Fatal(err)
			}
			q, err := ParsePolicy(bytes.NewReader(b), c.base)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			b2, _ := json.Marshal(q)
			if !bytes.Equal(b, b2) {
				t.Fatalf("round trip differs:\n%s\n%s", b, b2)
			}
			if !reflect.DeepEqual(q, c.p) {
				t.Errorf("parsed policy differs:\n%+v\n%+v", q, c.p)
			}
		})
	}
}

func TestBriefPolicyFileHasNoRuleKeys(t *testing.T) {
	b, _ := json.Marshal(DefaultPolicy())
	for _, k := range []string{"preset", "scale_up_sizing", "predict", "headroom", "requested", "hpa_desired", "request_rate"} {
		if bytes.Contains(b, []byte(k)) {
			t.Errorf("the brief's policy file mentions %q: its outputs would change\n%s", k, b)
		}
	}
}

func TestPresets(t *testing.T) {
	for _, name := range PresetNames() {
		p, err := PresetPolicy(name)
		if err != nil || p.Preset != name {
			t.Fatalf("%s: %v %q", name, err, p.Preset)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := PresetPolicy("fast"); err == nil || !strings.Contains(err.Error(), `unknown preset "fast" (known: brief, responsive)`) {
		t.Errorf("unknown preset: %v", err)
	}
	p, err := ParsePolicy(strings.NewReader(`{"preset": "responsive", "max_workers": 6}`), DefaultPolicy())
	if err != nil || p.Preset != PresetResponsive || p.MaxWorkers != 6 || p.ScaleUpSizing != SizingPods {
		t.Fatalf("preset with overrides: %v %+v", err, p)
	}
	bad := []struct{ in, want string }{
		{`{"preset": "fast"}`, `unknown preset "fast"`},
		{`{"preset": 3}`, "preset"},
		{`{"scale_up_sizing": "nodes"}`, `scale_up_sizing must be "metrics" or "pods", got "nodes"`},
		{`{"scale_up_on_demand": true}`, `set scale_up_sizing to "pods"`},
		{`{"preset": "responsive", "predict_horizon": "2m", "predict_window": "20s"}`, "predict_window must be >= 1m"},
		{`{"preset": "responsive", "predict_horizon": "soon"}`, `predict_horizon: "soon" is not a duration`},
		{`{"preset": "responsive", "scale_down_requested_percent": 120}`, "scale_down_requested_percent must be 0 (off) or in (0, 100]"},
		{`{"preset": "responsive", "headroom_pods": -1}`, "headroom_pods must be >= 0"},
		{`{"preset": "responsive", "queries": {"served_rate": " "}}`, "empty query"},
		{`{"preset": "responsive", "scale_up_turbo": true}`, `unknown key "scale_up_turbo"`},
	}
	for _, b := range bad {
		if _, err := ParsePolicy(strings.NewReader(b.in), DefaultPolicy()); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want it to mention %q", b.in, err, b.want)
		}
	}
}

func TestExpandWindows(t *testing.T) {
	p := DefaultPolicy()
	p.ScaleUpSustain, p.ScaleDownSustain = 90*time.Second, time.Hour+30*time.Minute
	if got := p.Expand(ReadingCPUHighMin); !strings.Contains(got, "[1m30s:15s]") {
		t.Errorf("up window: %s", got)
	}
	if got := p.Expand(ReadingCPULowMax); !strings.Contains(got, "[1h30m:15s]") {
		t.Errorf("down window: %s", got)
	}
	if strings.Contains(p.Expand(ReadingPendingMin), "$") {
		t.Errorf("unexpanded variable: %s", p.Expand(ReadingPendingMin))
	}
}

// TestEngineImportsOnlyTheStandardLibrary keeps engine/ free of AWS, Kubernetes, Prometheus
// and plotting code: nothing in it may know which world it runs in.
func TestEngineImportsOnlyTheStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Fields(string(out)) {
		if line != "github.com/smartscale/smartscale/engine" {
			t.Errorf("engine depends on non-standard package %s", line)
		}
	}
}
