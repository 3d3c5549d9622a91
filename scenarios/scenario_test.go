package scenarios

import (
	"strings"
	"testing"
	"time"
)

func TestBuiltinsLoad(t *testing.T) {
	names := Names()
	for _, want := range []string{"diurnal", "flash-sale", "ramp", "sustained"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("built-in scenario %q missing (have %v)", want, names)
		}
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			sc, err := Load(n)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Duration() <= 0 || sc.Description == "" {
				t.Errorf("duration %v, description %q", sc.Duration(), sc.Description)
			}
		})
	}
	if sc, _ := Load("diurnal"); sc.Duration() != 24*time.Hour {
		t.Errorf("diurnal lasts %v, want 24h", sc.Duration())
	}
}

func TestRateAtFollowsK6Stages(t *testing.T) {
	sc := Scenario{StartRate: 100, Stages: []Stage{{10 * time.Minute, 200}, {10 * time.Minute, 200}, {5 * time.Minute, 0}}}
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{0, 100}, {5 * time.Minute, 150}, {10 * time.Minute, 200}, {15 * time.Minute, 200}, {22*time.Minute + 30*time.Second, 100}, {25 * time.Minute, 0}, {time.Hour, 0}} {
		if got := sc.RateAt(c.at); got != c.want {
			t.Errorf("RateAt(%v) = %v, want %v", c.at, got, c.want)
		}
	}
}

func TestMalformedScenariosNameFieldAndProblem(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
	}{
		{"unclosed", `{"scenarios": {`, []string{"unexpected end", "not closed"}},
		{"syntax", "{\n\"scenarios\": {]}", []string{"line 2"}},
		{"unknown top-level key", `{"scenarioz": {}}`, []string{"unknown key", "scenarioz"}},
		{"no scenario", `{"scenarios": {}}`, []string{"exactly one k6 scenario"}},
		{"bad executor", `{"scenarios": {"a": {"executor": "per-vu-iterations"}}}`, []string{"scenarios.a.executor", "per-vu-iterations"}},
		{"bad duration", `{"scenarios": {"a": {"executor": "ramping-arrival-rate", "startRate": 1, "stages": [{"duration": "ten minutes", "target": 5}]}}}`,
			[]string{"scenarios.a.stages[0].duration", "ten minutes"}},
		{"missing target", `{"scenarios": {"a": {"executor": "ramping-arrival-rate", "startRate": 1, "stages": [{"duration": "1m"}]}}}`,
			[]string{"scenarios.a.stages[0].target: missing"}},
		{"negative target", `{"scenarios": {"a": {"executor": "ramping-arrival-rate", "startRate": 1, "stages": [{"duration": "1m", "target": -3}]}}}`,
			[]string{"stages[0].target", "-3"}},
		{"wrong type", `{"scenarios": {"a": {"executor": "constant-arrival-rate", "rate": "fast", "duration": "1m"}}}`,
			[]string{"rate", "float64"}},
		{"bad timeUnit", `{"scenarios": {"a": {"executor": "constant-arrival-rate", "rate": 5, "duration": "1m", "timeUnit": "1m"}}}`,
			[]string{"timeUnit"}},
		{"unknown sim key", `{"scenarios": {"a": {"executor": "constant-arrival-rate", "rate": 5, "duration": "1m"}}, "smartscale": {"nodes": 3}}`,
			[]string{"smartscale", "nodes"}},
		{"bad sim value", `{"scenarios": {"a": {"executor": "constant-arrival-rate", "rate": 5, "duration": "1m"}}, "smartscale": {"app": {"cpu_ms_per_request": 0}}}`,
			[]string{"smartscale.app.cpu_ms_per_request"}},
		{"pod does not fit", `{"scenarios": {"a": {"executor": "constant-arrival-rate", "rate": 5, "duration": "1m"}}, "smartscale": {"app": {"cpu_request_millicores": 5000, "cpu_limit_millicores": 5000}}}`,
			[]string{"does not fit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x", []byte(c.body))
			if err == nil {
				t.Fatal("accepted a malformed scenario")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, err := Parse("x", []byte(`{"scenarios": {"a": {"executor": "ramping-arrival-rate", "stages": [{"duration": "x", "target": -1}]}}}`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"startRate: missing", "stages[0].duration", "stages[0].target"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "flash-sale") {
		t.Errorf("unknown name: %v (want the list of built-ins)", err)
	}
	if _, err := Load("/nonexistent/x.json"); err == nil {
		t.Error("missing file accepted")
	}
}

func TestK6DayDurations(t *testing.T) {
	d, err := parseDuration("1d2h")
	if err != nil || d != 26*time.Hour {
		t.Errorf("1d2h = %v, %v", d, err)
	}
}
