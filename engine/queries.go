package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Queries are the PromQL expressions the engine asks, one per reading. They are data:
// a policy file may override any of them. "Sustained for D" is asked of Prometheus with a
// min/max over a subquery window, so a stateless Lambda and the simulator ask the same
// question. Two variables are expanded before a query is sent: $up_window (the policy's
// ScaleUpSustain) and $down_window (ScaleDownSustain), both as Prometheus durations.
type Queries struct {
	CPU        string // cluster CPU busy %, now
	CPUHighMin string // minimum CPU % over $up_window: above the threshold means "sustained high"
	CPULowMax  string // maximum CPU % over $down_window: below the threshold means "sustained low"
	Memory     string // cluster memory used %, now
	Pending    string // pending pods, now
	PendingMin string // minimum pending pods over $up_window: >= 1 means "pending throughout"
	Nodes      string // registered nodes, control plane included
	MetricAge  string // seconds since the newest node-exporter sample
}

// BriefCPUQuery is the product brief's CPU query. It averages every non-idle mode series
// (user, system, iowait, irq, softirq, steal, nice, ...), most of which sit near zero, so it
// reads several times below the true busy share. Kept only so a test can show that.
const BriefCPUQuery = `avg(rate(node_cpu_seconds_total{mode!="idle"}[5m])) * 100`

// cpuBusy is the busy share of all CPUs: one minus the idle share, averaged over every CPU.
const cpuBusy = `100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m])))`

// DefaultQueries returns the queries of the default policy.
func DefaultQueries() Queries {
	return Queries{
		CPU:        cpuBusy,
		CPUHighMin: `min_over_time((` + cpuBusy + `)[$up_window:15s])`,
		CPULowMax:  `max_over_time((` + cpuBusy + `)[$down_window:15s])`,
		Memory:     `100 * (1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes))`,
		Pending:    `sum(kube_pod_status_phase{phase="Pending"})`,
		PendingMin: `min_over_time(sum(kube_pod_status_phase{phase="Pending"})[$up_window:15s])`,
		Nodes:      `count(kube_node_info)`,
		MetricAge:  `time() - max(timestamp(node_memory_MemAvailable_bytes))`,
	}
}

// Reading names, in the order they are queried and shown.
const (
	ReadingCPU        = "cpu"
	ReadingCPUHighMin = "cpu_high_min"
	ReadingCPULowMax  = "cpu_low_max"
	ReadingMemory     = "memory"
	ReadingPending    = "pending"
	ReadingPendingMin = "pending_min"
	ReadingNodes      = "nodes"
	ReadingMetricAge  = "metric_age"
)

// QueryNames lists the reading names in query order.
func QueryNames() []string {
	return []string{ReadingCPU, ReadingCPUHighMin, ReadingCPULowMax, ReadingMemory,
		ReadingPending, ReadingPendingMin, ReadingNodes, ReadingMetricAge}
}

func (q *Queries) field(name string) *string {
	switch name {
	case ReadingCPU:
		return &q.CPU
	case ReadingCPUHighMin:
		return &q.CPUHighMin
	case ReadingCPULowMax:
		return &q.CPULowMax
	case ReadingMemory:
		return &q.Memory
	case ReadingPending:
		return &q.Pending
	case ReadingPendingMin:
		return &q.PendingMin
	case ReadingNodes:
		return &q.Nodes
	case ReadingMetricAge:
		return &q.MetricAge
	}
	return nil
}

// Get returns the raw (unexpanded) query of a reading.
func (q Queries) Get(name string) string {
	if f := q.field(name); f != nil {
		return *f
	}
	return ""
}

// Set overrides one query by reading name.
func (q *Queries) Set(name, expr string) error {
	f := q.field(name)
	if f == nil {
		return fmt.Errorf("unknown query %q (known: %s)", name, strings.Join(QueryNames(), ", "))
	}
	if strings.TrimSpace(expr) == "" {
		return errors.New("empty query")
	}
	*f = expr
	return nil
}

func (q Queries) validate() error {
	var errs []error
	for _, n := range QueryNames() {
		if strings.TrimSpace(q.Get(n)) == "" {
			errs = append(errs, fmt.Errorf("queries.%s is empty", n))
		}
	}
	return errors.Join(errs...)
}

// Expand returns the query of a reading with $up_window and $down_window replaced.
func (p Policy) Expand(name string) string {
	return strings.NewReplacer(
		"$up_window", promDuration(p.ScaleUpSustain),
		"$down_window", promDuration(p.ScaleDownSustain),
	).Replace(p.Queries.Get(name))
}

// promDuration formats d the way PromQL writes durations ("3m", "90s", "1h30m").
func promDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	units := []struct {
		n string
		d time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}}
	for _, u := range units {
		if d >= u.d {
			fmt.Fprintf(&b, "%d%s", d/u.d, u.n)
			d %= u.d
		}
	}
	return b.String()
}

// knownReading reports whether name is a reading name.
func knownReading(name string) bool { return slices.Contains(QueryNames(), name) }
