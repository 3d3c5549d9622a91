package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/runtime/config"
	"github.com/smartscale/smartscale/runtime/dynamo"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func runArgs(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

type explanation struct {
	Observation struct {
		Readings map[string]struct {
			Value   *float64 `json:"value"`
			Problem string   `json:"problem"`
		} `json:"readings"`
		RegisteredWorkers int  `json:"registered_workers"`
		WorkersKnown      bool `json:"workers_known"`
	} `json:"observation"`
	Decision struct {
		Action string `json:"action"`
		Delta  int    `json:"delta"`
		Reason string `json:"reason"`
	} `json:"decision"`
	Note string `json:"note"`
}

func TestExplainAgainstRealPrometheus(t *testing.T) {
	url := realtest.Prometheus(t, realtest.Busy(start).OpenMetrics())
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		action string
		delta  int
	}{
		{"busy, flag URL, RFC 3339", nil, []string{"-prometheus", url, "-at", start.Add(55*time.Minute + 7*time.Second).Format(time.RFC3339)}, "scale_up", 2},
		{"quiet at min, env URL, Unix seconds", map[string]string{"PROMETHEUS_URL": url}, []string{"-at", strconv.FormatInt(start.Add(25*time.Minute+7*time.Second).Unix(), 10)}, "at_min", 0},
		{"quiet with 4 workers", map[string]string{"PROMETHEUS_URL": url}, []string{"-at", strconv.FormatInt(start.Add(25*time.Minute+7*time.Second).Unix(), 10), "-workers", "4"}, "scale_down", -1},
		{"policy override raises the threshold", map[string]string{"PROMETHEUS_URL": url, "POLICY_JSON": `{"scale_up_cpu_percent": 85, "scale_up_memory_percent": 90}`}, []string{"-at", start.Add(35*time.Minute + 7*time.Second).Format(time.RFC3339)}, "none", 0},
		{"no data in the past", map[string]string{"PROMETHEUS_URL": url}, []string{"-at", start.Add(-24 * time.Hour).Format(time.RFC3339)}, "no_data", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runArgs(tt.env, append([]string{"-explain"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %s", code, errs)
			}
			var ex explanation
			dec := json.NewDecoder(strings.NewReader(out))
			if err := dec.Decode(&ex); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out)
			}
			if dec.More() {
				t.Errorf("more than one JSON value in the output")
			}
			if ex.Decision.Action != tt.action || ex.Decision.Delta != tt.delta {
				t.Errorf("decision %+v, want %s %d", ex.Decision, tt.action, tt.delta)
			}
			if len(ex.Observation.Readings) != 8 {
				t.Errorf("readings %v, want all 8 queries", ex.Observation.Readings)
			}
			if !strings.Contains(ex.Note, "cooldowns count as elapsed") {
				t.Errorf("note %q does not say cooldowns count as elapsed", ex.Note)
			}
			if tt.action == "scale_up" {
				cpu := ex.Observation.Readings["cpu"].Value
				if cpu == nil || math.Abs(*cpu-78) > 0.5 {
					t.Errorf("cpu reading %v, want 78", cpu)
				}
			}
		})
	}
}

func TestExplainExitCodes(t *testing.T) {
	dead := "http://127.0.0.1:" + strconv.Itoa(realtest.FreePort(t))
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{"Prometheus unreachable", nil, []string{"-explain", "-prometheus", dead, "-timeout", "10s"}, 1, "could not observe"},
		{"no Prometheus URL", nil, []string{"-explain"}, 2, "PROMETHEUS_URL is required"},
		{"bad -at", nil, []string{"-explain", "-prometheus", dead, "-at", "yesterday"}, 2, "neither RFC 3339"},
		{"bad policy", map[string]string{"POLICY_JSON": `{"max_workers": 0}`}, []string{"-explain", "-prometheus", dead}, 2, "max_workers"},
		{"both modes", nil, []string{"-explain", "-once"}, 2, "exclude"},
		{"no mode outside Lambda", nil, nil, 2, "Local modes"},
		{"unknown flag", nil, []string{"-nope"}, 2, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runArgs(tt.env, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.msg) {
				t.Errorf("exit %d (want %d), stderr %q (want %q in it)", code, tt.code, errs, tt.msg)
			}
		})
	}
}

func TestHelpDocumentsEveryFlagAndVariable(t *testing.T) {
	code, out, _ := runArgs(nil, "-h")
	if code != 0 {
		t.Errorf("-h exit %d", code)
	}
	for _, v := range config.Vars {
		if !strings.Contains(out, v.Name) {
			t.Errorf("-h does not mention %s", v.Name)
		}
	}
	for _, f := range []string{"-explain", "-once", "-dry-run", "-prometheus", "-at", "-workers", "-state", "-timeout"} {
		if !strings.Contains(out, f) {
			t.Errorf("-h does not mention %s", f)
		}
	}
}

func TestOnceReportsEveryConfigProblem(t *testing.T) {
	code, _, errs := runArgs(map[string]string{"SMARTSCALE_LEASE": "soon"}, "-once", "-dry-run")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{"SMARTSCALE_CLUSTER_ID", "SMARTSCALE_TABLE", "SMARTSCALE_LAUNCH_TEMPLATE", "SMARTSCALE_SUBNETS", "PROMETHEUS_URL", "KUBECONFIG", "SMARTSCALE_LEASE"} {
		if !strings.Contains(errs, want) {
			t.Errorf("problems do not mention %s:\n%s", want, errs)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-03-01T12:00:00Z", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), true},
		{"2026-03-01T13:00:00+01:00", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), true},
		{"1772366400", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), true},
		{"1772366400.5", time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC), true},
		{"yesterday", time.Time{}, false},
		{"NaN", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// -explain -state reads the cooldowns from the DynamoDB state: a scale-up two minutes ago
// holds the next one back.
func TestExplainWithState(t *testing.T) {
	promURL := realtest.Prometheus(t, realtest.Busy(start).OpenMetrics())
	ddbURL := realtest.Dynalite(t)
	env := map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_DYNAMODB": ddbURL,
		"PROMETHEUS_URL": promURL, "SMARTSCALE_TABLE": "smartscale", "SMARTSCALE_CLUSTER_ID": "demo"}
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	awsCfg, err := loadAWS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	if err := dynamo.CreateTable(ctx, ddb, "smartscale"); err != nil {
		t.Fatal(err)
	}
	at := start.Add(55*time.Minute + 7*time.Second)
	store := dynamo.New(ddb, "smartscale", "demo")
	lease, _, err := store.Acquire(ctx, "test", at.Add(-time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, lease, engine.State{Workers: 2, LastScaleUp: at.Add(-2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runArgs(env, "-explain", "-state", "-at", at.Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var ex explanation
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Decision.Action != "cooldown" || !strings.Contains(ex.Note, "state store") {
		t.Errorf("decision %+v note %q, want the scale-up cooldown from the stored state", ex.Decision, ex.Note)
	}
}

// The trigger -explain reports comes from the ALERTS series of a real Prometheus (backfilled
// here as its rule evaluation would write them: CPU high from minute 31 on).
func TestExplainTriggerFromAlerts(t *testing.T) {
	om := strings.TrimSuffix(realtest.Busy(start).OpenMetrics(), "# EOF\n")
	var b strings.Builder
	b.WriteString(om + "# TYPE ALERTS gauge\n")
	for off := 31 * time.Minute; off <= time.Hour; off += 15 * time.Second {
		fmt.Fprintf(&b, "ALERTS{alertname=%q,alertstate=\"firing\",severity=\"page\"} 1 %d\n", engine.AlertCPUHigh, start.Add(off).Unix())
	}
	b.WriteString("# EOF\n")
	url := realtest.Prometheus(t, b.String())
	type out struct {
		Trigger      string   `json:"trigger"`
		AlertsFiring []string `json:"alerts_firing"`
		Note         string   `json:"note"`
	}
	tests := []struct {
		name, policy string
		at           time.Duration
		want         out
		noteHas      string
	}{
		{"alert ticks on, CPU alert firing", `{"alert_ticks": true}`, 55 * time.Minute,
			out{Trigger: "alert:" + engine.AlertCPUHigh, AlertsFiring: []string{engine.AlertCPUHigh}}, ""},
		{"alert ticks off, CPU alert firing", "", 55 * time.Minute,
			out{Trigger: "schedule", AlertsFiring: []string{engine.AlertCPUHigh}}, "does not take alert ticks"},
		{"alert ticks on, nothing firing", `{"alert_ticks": true}`, 25 * time.Minute,
			out{Trigger: "schedule"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"PROMETHEUS_URL": url, "POLICY_JSON": tt.policy}
			code, stdout, errs := runArgs(env, "-explain", "-at", start.Add(tt.at+7*time.Second).Format(time.RFC3339))
			if code != 0 {
				t.Fatalf("exit %d, stderr %s", code, errs)
			}
			var got out
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout)
			}
			if got.Trigger != tt.want.Trigger || !slices.Equal(got.AlertsFiring, tt.want.AlertsFiring) {
				t.Errorf("trigger %q, firing %v; want %q, %v", got.Trigger, got.AlertsFiring, tt.want.Trigger, tt.want.AlertsFiring)
			}
			if !strings.Contains(got.Note, tt.noteHas) || strings.Contains(got.Note, "could not read the ALERTS") {
				t.Errorf("note %q, want it to contain %q and no ALERTS failure", got.Note, tt.noteHas)
			}
		})
	}
}
