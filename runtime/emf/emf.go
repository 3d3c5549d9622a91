// Package emf writes CloudWatch metrics as Embedded Metric Format log lines: one JSON object
// per line on the Lambda's stdout, which CloudWatch Logs turns into metrics (no
// PutMetricData calls, no extra permissions beyond logging).
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// Namespace is the CloudWatch namespace of SmartScale's metrics.
const Namespace = "SmartScale"

// Metric names.
const (
	Invocations     = "AutoscalerInvocations"
	ScaleUpEvents   = "ScaleUpEvents"
	ScaleDownEvents = "ScaleDownEvents"
	ScalingFailures = "ScalingFailures"
	NodeJoinLatency = "NodeJoinLatency"
	ExecutionTime   = "LambdaExecutionTime"
)

// Metric is one metric of a line: a unit and one or more values.
type Metric struct {
	Name   string
	Unit   string // Count, Seconds, Milliseconds
	Values []float64
}

// Dim is one dimension.
type Dim struct{ Name, Value string }

// Writer writes EMF lines.
type Writer struct {
	mu        sync.Mutex
	w         io.Writer
	Namespace string
}

// New returns a writer to w (os.Stdout in the Lambda).
func New(w io.Writer) *Writer { return &Writer{w: w, Namespace: Namespace} }

// Emit writes one line with the metrics under the dimension set dims.
func (w *Writer) Emit(at time.Time, dims []Dim, ms ...Metric) error {
	if len(ms) == 0 {
		return nil
	}
	type metricDef struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	type directive struct {
		Namespace  string      `json:"Namespace"`
		Dimensions [][]string  `json:"Dimensions"`
		Metrics    []metricDef `json:"Metrics"`
	}
	doc := map[string]any{}
	names := []string{}
	for _, d := range dims {
		doc[d.Name] = d.Value
		names = append(names, d.Name)
	}
	dir := directive{Namespace: w.Namespace, Dimensions: [][]string{names}}
	for _, m := range ms {
		dir.Metrics = append(dir.Metrics, metricDef{Name: m.Name, Unit: m.Unit})
		if len(m.Values) == 1 {
			doc[m.Name] = m.Values[0]
		} else {
			doc[m.Name] = m.Values
		}
	}
	doc["_aws"] = map[string]any{
		"Timestamp":         at.UnixMilli(),
		"CloudWatchMetrics": []directive{dir},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding EMF line: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(append(b, '\n'))
	return err
}

// Tick writes the metrics of one tick's record: AutoscalerInvocations and
// LambdaExecutionTime always; ScaleUpEvents by reason (the decision's triggers, e.g.
// "cpu_high" or "cpu_high+pending_pods"), ScaleDownEvents, ScalingFailures by error_type
// (the failed act's error kind, or "tick" when the tick itself failed) and NodeJoinLatency
// (seconds from launch to Ready of each worker that joined) when they happened.
func (w *Writer) Tick(cluster string, rec engine.Record, elapsed time.Duration) error {
	at := rec.Time
	if at.IsZero() {
		at = time.Now()
	}
	c := Dim{"cluster", cluster}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(w.Emit(at, []Dim{c},
		Metric{Name: Invocations, Unit: "Count", Values: []float64{1}},
		Metric{Name: ExecutionTime, Unit: "Milliseconds", Values: []float64{float64(elapsed.Microseconds()) / 1000}}))

	ups, downs := 0, 0
	for _, ev := range rec.Events {
		switch ev.Kind {
		case engine.EventScaleUp:
			ups++
		case engine.EventScaleDown:
			downs++
		}
	}
	if ups > 0 {
		add(w.Emit(at, []Dim{c, {"reason", Reason(rec.Decision)}}, Metric{Name: ScaleUpEvents, Unit: "Count", Values: []float64{float64(ups)}}))
	}
	if downs > 0 {
		add(w.Emit(at, []Dim{c}, Metric{Name: ScaleDownEvents, Unit: "Count", Values: []float64{float64(downs)}}))
	}
	failures := map[string]int{}
	var joins []float64
	for _, a := range rec.Acted {
		if a.Result == "failed" {
			failures[ErrorType(a)]++
		}
		if a.JoinSeconds > 0 {
			joins = append(joins, a.JoinSeconds)
		}
	}
	if rec.Error != "" {
		failures["tick"]++
	}
	types := make([]string, 0, len(failures))
	for t := range failures {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		add(w.Emit(at, []Dim{c, {"error_type", t}}, Metric{Name: ScalingFailures, Unit: "Count", Values: []float64{float64(failures[t])}}))
	}
	if len(joins) > 0 {
		add(w.Emit(at, []Dim{c}, Metric{Name: NodeJoinLatency, Unit: "Seconds", Values: joins}))
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Reason is the ScaleUpEvents dimension of a decision: its triggers joined with "+".
func Reason(d engine.Decision) string {
	if len(d.Triggers) == 0 {
		return "reconcile"
	}
	return strings.Join(d.Triggers, "+")
}

// ErrorType is the ScalingFailures dimension of a failed act.
func ErrorType(a engine.Act) string {
	if a.ErrorKind != "" {
		return a.ErrorKind
	}
	return a.Kind + "_failed"
}
