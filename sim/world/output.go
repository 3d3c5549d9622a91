package world

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// TimelineHeader is the header of timeline.csv.
var TimelineHeader = []string{"time", "offered_rps", "served_rps", "dropped_rps", "demand_nodes", "ready_workers",
	"launching_workers", "draining_workers", "ready_pods", "pending_pods", "cpu_percent", "memory_percent",
	"p95_ms", "cost_usd", "slo_violated", "action", "delta", "reason"}

// WriteTimeline writes the timeline as CSV.
func WriteTimeline(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(TimelineHeader); err != nil {
		return err
	}
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	for _, r := range rows {
		rec := []string{r.Time.UTC().Format(time.RFC3339), f(r.OfferedRPS, 2), f(r.ServedRPS, 2), f(r.DroppedRPS, 2),
			strconv.Itoa(r.DemandNodes), strconv.Itoa(r.ReadyWorkers), strconv.Itoa(r.LaunchingWorkers),
			strconv.Itoa(r.DrainingWorkers), strconv.Itoa(r.ReadyPods), strconv.Itoa(r.PendingPods),
			f(r.CPUPercent, 2), f(r.MemoryPercent, 2), f(r.P95Ms, 1), f(r.CostUSD, 6),
			strconv.FormatBool(r.SLOViolated), string(r.Action), strconv.Itoa(r.Delta), r.Reason}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteDecisions writes one JSON object per tick (decisions.jsonl).
func WriteDecisions(w io.Writer, recs []engine.Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range recs {
		if err := enc.Encode(decisionLine(recs[i])); err != nil {
			return fmt.Errorf("tick %d: %w", i+1, err)
		}
	}
	return bw.Flush()
}

// decisionLine is the decisions.jsonl shape: the tick's time, its observation, its decision
// and what was acted on, plus lock and state for the curious.
type decisionLineT struct {
	Time        string             `json:"time"`
	Trigger     string             `json:"trigger,omitempty"` // schedule or alert:NAMES (alert_ticks)
	Observation engine.Observation `json:"observation"`
	Decision    engine.Decision    `json:"decision"`
	Acted       []engine.Act       `json:"acted"`
	Lock        string             `json:"lock"`
	State       engine.State       `json:"state"`
	DecideState *engine.State      `json:"decide_state,omitempty"`
	BusyOp      string             `json:"busy_operation,omitempty"`
	Events      []engine.Event     `json:"events,omitempty"`
	Error       string             `json:"error,omitempty"`
}

func decisionLine(r engine.Record) decisionLineT {
	return decisionLineT{Time: r.Time.UTC().Format(time.RFC3339), Trigger: r.Trigger, Observation: r.Observation, Decision: r.Decision,
		Acted: r.Acted, Lock: r.Lock, State: r.State, DecideState: r.DecideState, BusyOp: r.BusyOperation,
		Events: r.Events, Error: r.Error}
}

// WriteSummary writes summary.json.
func WriteSummary(w io.Writer, s Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
