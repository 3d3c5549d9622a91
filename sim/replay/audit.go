package replay

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// Ticks returns the times an autoscaler ticking every interval, offset into the period
// like EventBridge's schedule (world.TickOffset), would fire between first+warmup and last:
// t = k*interval + offset (absolute UTC), so no tick sits on a 15 s or 30 s sample boundary.
func Ticks(first, last time.Time, interval, offset, warmup time.Duration) []time.Time {
	start := first.Add(warmup).Truncate(interval).Add(offset)
	for start.Before(first.Add(warmup)) {
		start = start.Add(interval)
	}
	var out []time.Time
	for t := start; !t.After(last); t = t.Add(interval) {
		out = append(out, t.UTC())
	}
	return out
}

// AuditConfig is one open-loop replay.
type AuditConfig struct {
	Policy  engine.Policy
	Metrics engine.Metrics // the recorded series (metrics.Querier over Recording.Store) or a live Prometheus
	View    *View          // nodes and instances as recorded; nil: none (no scale-down can name a node)
	Ticks   []time.Time
}

// Audit evaluates the engine's queries and Decide at every tick, without acting and without
// changing the series. An in-memory state keeps the cooldown bookkeeping of the decisions
// (a scale-up starts the scale-up cooldown, a scale-down the scale-down cooldown) as if they
// had been carried out. The records have the simulator's decisions.jsonl shape; Lock is
// "dry_run" and Acted lists what would have been done, with result "dry_run".
func Audit(ctx context.Context, cfg AuditConfig) ([]engine.Record, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	var st engine.State
	recs := make([]engine.Record, 0, len(cfg.Ticks))
	for _, now := range cfg.Ticks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var cloud engine.Cloud
		var cluster engine.Cluster
		if cfg.View != nil {
			cloud, cluster = cfg.View.At(now)
		}
		obs, err := engine.Observe(ctx, cfg.Policy, cfg.Metrics, cloud, cluster, now)
		if err != nil {
			return nil, fmt.Errorf("tick %s: %w", now.Format(time.RFC3339), err)
		}
		rec := engine.Record{Time: now.UTC(), Lock: engine.LockDryRun, Observation: obs, State: st.Clone(), Acted: []engine.Act{}}
		d := engine.Decide(now, cfg.Policy, obs, st)
		rec.Decision = d
		switch d.Action {
		case engine.ActionScaleUp:
			st.LastScaleUp, st.Workers = now.UTC(), d.Target
			rec.Acted = append(rec.Acted, engine.Act{Kind: "launch", Count: d.Delta, Result: "dry_run"})
		case engine.ActionScaleDown:
			st.LastScaleDown, st.Workers = now.UTC(), d.Target
			rec.Acted = append(rec.Acted, engine.Act{Kind: "cordon", Node: d.Node, Instances: []string{d.Instance}, Result: "dry_run"})
		}
		if d.Action == engine.ActionAtMax {
			st.AtMax = true
		} else if d.Action != engine.ActionCooldown && d.Action != engine.ActionBusy {
			st.AtMax = false
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// AuditSummary is the summary.json of an open-loop replay. It has no wall-clock figures.
type AuditSummary struct {
	Mode       string         `json:"mode"` // "open_loop"
	Recording  string         `json:"recording"`
	Policy     string         `json:"policy"`
	Series     int            `json:"series"`
	Samples    int            `json:"samples"`
	From       string         `json:"from"` // first tick
	To         string         `json:"to"`   // last tick
	Ticks      int            `json:"ticks"`
	Decisions  map[string]int `json:"decisions"`
	ScaleUps   int            `json:"scale_ups"`   // scale-ups it would have done
	ScaleDowns int            `json:"scale_downs"` // scale-downs it would have done
	NodesAdded int            `json:"nodes_added"`
	// NodesRemoved counts the workers the scale-downs would have removed.
	NodesRemoved int `json:"nodes_removed"`
	// Flaps counts a scale-up followed by a scale-down (or the reverse) within 10 minutes.
	Flaps int `json:"flaps"`
	// RecordedWorkersMin/Max are the worker counts the recording shows at the ticks.
	RecordedWorkersMin int    `json:"recorded_workers_min"`
	RecordedWorkersMax int    `json:"recorded_workers_max"`
	FirstScaleUp       string `json:"first_scale_up,omitempty"`
	FirstScaleDown     string `json:"first_scale_down,omitempty"`
}

// Summarize measures an open-loop replay.
func Summarize(recs []engine.Record, recording, policy string, r *Recording) AuditSummary {
	s := AuditSummary{Mode: "open_loop", Recording: recording, Policy: policy, Ticks: len(recs), Decisions: map[string]int{}}
	if r != nil {
		s.Series, s.Samples = len(r.Series), r.NumSamples()
	}
	var ups, downs []time.Time
	for i, rec := range recs {
		t := rec.Time.UTC().Format(time.RFC3339)
		if i == 0 {
			s.From = t
			s.RecordedWorkersMin = rec.Observation.Capacity()
		}
		s.To = t
		s.RecordedWorkersMin = min(s.RecordedWorkersMin, rec.Observation.Capacity())
		s.RecordedWorkersMax = max(s.RecordedWorkersMax, rec.Observation.Capacity())
		d := rec.Decision
		s.Decisions[string(d.Action)]++
		switch d.Action {
		case engine.ActionScaleUp:
			s.ScaleUps++
			s.NodesAdded += d.Delta
			ups = append(ups, rec.Time)
			if s.FirstScaleUp == "" {
				s.FirstScaleUp = t
			}
		case engine.ActionScaleDown:
			s.ScaleDowns++
			s.NodesRemoved -= d.Delta
			downs = append(downs, rec.Time)
			if s.FirstScaleDown == "" {
				s.FirstScaleDown = t
			}
		}
	}
	s.Flaps = world.Flaps(ups, downs, 10*time.Minute)
	return s
}

// WriteSummary writes summary.json.
func WriteSummary(w io.Writer, s any) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// AuditTimelineHeader is the header of an open-loop replay's timeline.csv: one row per tick.
var AuditTimelineHeader = []string{"time", "cpu_percent", "cpu_high_min", "cpu_low_max", "memory_percent",
	"pending", "pending_min", "nodes", "metric_age_s", "workers", "action", "delta", "target", "node", "reason"}

// WriteAuditTimeline writes one CSV row per tick: the readings (empty when unusable), the
// recorded workers, and the decision.
func WriteAuditTimeline(w io.Writer, recs []engine.Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(AuditTimelineHeader); err != nil {
		return err
	}
	val := func(r engine.Reading) string {
		if !r.OK() {
			return ""
		}
		return strconv.FormatFloat(r.Value, 'f', 2, 64)
	}
	for _, rec := range recs {
		rs, d := rec.Observation.Readings, rec.Decision
		row := []string{rec.Time.UTC().Format(time.RFC3339), val(rs.CPU), val(rs.CPUHighMin), val(rs.CPULowMax),
			val(rs.Memory), val(rs.Pending), val(rs.PendingMin), val(rs.Nodes), val(rs.MetricAge),
			strconv.Itoa(rec.Observation.Capacity()), string(d.Action), strconv.Itoa(d.Delta), strconv.Itoa(d.Target),
			d.Node, d.Reason}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
