package emf

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
)

type line struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct{ Name, Unit string }
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
	Rest map[string]any `json:"-"`
}

func parse(t *testing.T, s string) ([]line, []map[string]any) {
	t.Helper()
	var ls []line
	var ms []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		var x line
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(l), &m)
		ls, ms = append(ls, x), append(ms, m)
	}
	return ls, ms
}

func TestTickMetrics(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := engine.Record{
		Time:     at,
		Decision: engine.Decision{Action: engine.ActionScaleUp, Delta: 2, Triggers: []string{engine.TriggerCPUHigh}},
		Events:   []engine.Event{{Kind: engine.EventScaleUp}, {Kind: engine.EventFailure}},
		Acted: []engine.Act{
			{Kind: "launch", Result: "failed", ErrorKind: string(engine.KindCapacity)},
			{Kind: "launch", Result: "ok"},
			{Kind: "joined", Result: "ok", JoinSeconds: 81.5},
			{Kind: "joined", Result: "ok", JoinSeconds: 95},
			{Kind: "uncordon", Result: "failed"},
		},
		Error: "saving state: fenced",
	}
	var b bytes.Buffer
	if err := New(&b).Tick("demo", rec, 1234*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ls, ms := parse(t, b.String())
	got := map[string]map[string]any{}
	for i, l := range ls {
		if l.AWS.Timestamp != at.UnixMilli() || l.AWS.CloudWatchMetrics[0].Namespace != "SmartScale" {
			t.Errorf("line %d header %+v", i, l.AWS)
		}
		for _, d := range l.AWS.CloudWatchMetrics[0].Dimensions[0] {
			if _, ok := ms[i][d]; !ok {
				t.Errorf("dimension %s has no value in line %v", d, ms[i])
			}
		}
		for _, m := range l.AWS.CloudWatchMetrics[0].Metrics {
			key := m.Name
			if et, ok := ms[i]["error_type"]; ok {
				key += "/" + et.(string)
			}
			got[key] = ms[i]
		}
	}
	checks := []struct {
		key   string
		field string
		want  any
	}{
		{"AutoscalerInvocations", "AutoscalerInvocations", 1.0},
		{"LambdaExecutionTime", "LambdaExecutionTime", 1234.0},
		{"ScaleUpEvents", "reason", "cpu_high"},
		{"ScalingFailures/insufficient_capacity", "ScalingFailures", 1.0},
		{"ScalingFailures/uncordon_failed", "ScalingFailures", 1.0},
		{"ScalingFailures/tick", "ScalingFailures", 1.0},
	}
	for _, c := range checks {
		m, ok := got[c.key]
		if !ok {
			t.Errorf("no %s line in\n%s", c.key, b.String())
			continue
		}
		if m[c.field] != c.want {
			t.Errorf("%s: %s = %v, want %v", c.key, c.field, m[c.field], c.want)
		}
	}
	if j, ok := got["NodeJoinLatency"]; !ok || len(j["NodeJoinLatency"].([]any)) != 2 {
		t.Errorf("NodeJoinLatency %v", j)
	}
	if _, ok := got["ScaleDownEvents"]; ok {
		t.Errorf("ScaleDownEvents without a scale-down")
	}
}

func TestQuietTickWritesOnlyTheInvocation(t *testing.T) {
	var b bytes.Buffer
	if err := New(&b).Tick("demo", engine.Record{Time: time.Unix(1, 0)}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 1 {
		t.Errorf("%d lines for a quiet tick, want 1:\n%s", n, b.String())
	}
}
