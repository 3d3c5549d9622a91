package engine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
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

	// Readings of the rules beyond the brief, asked only by a policy that uses them.
	HPADesired         string // replicas the HPAs want now
	RequestRate        string // requests/s offered to the app, every answer code
	ServedRate         string // requests/s the app answered without a 5xx
	BusyCores          string // CPU cores busy on every node, now
	BusyCoresPredicted string // BusyCores predicted $predict_horizon ahead over $predict_window
	RequestedCPUMax    string // max over $down_window of the schedulable workers' requested CPU %
	RequestedMemoryMax string // the same for memory
}

// BriefCPUQuery is the product brief's CPU query. It averages every non-idle mode series
// (user, system, iowait, irq, softirq, steal, nice, ...), most of which sit near zero, so it
// reads several times below the true busy share. Kept only so a test can show that.
const BriefCPUQuery = `avg(rate(node_cpu_seconds_total{mode!="idle"}[5m])) * 100`

// cpuBusy is the busy share of all CPUs: one minus the idle share, averaged over every CPU.
const cpuBusy = `100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m])))`

// schedulableWorkers keeps a node-labelled kube-state-metrics vector to the workers that
// take pods: not cordoned, not the control plane.
const schedulableWorkers = ` and on(node) (kube_node_spec_unschedulable == 0) unless on(node) kube_node_role{role=~"control-plane|master"}`

// requestedShare is the schedulable workers' requested share of a resource, in %: the
// requests of the pods bound to them (DaemonSet pods included) over their allocatable.
func requestedShare(resource string) string {
	return `100 * sum(kube_pod_container_resource_requests{resource="` + resource + `"}` + schedulableWorkers +
		`) / sum(kube_node_status_allocatable{resource="` + resource + `"}` + schedulableWorkers + `)`
}

// requestRate is the app's request rate from its http_requests_total counter (the demo app's
// and most HTTP libraries' name); served excludes 5xx answers (what a saturated app sheds).
//
// busyCores is the CPU the nodes spend, in cores: an aggregate that pod and node churn
// barely move (a new pod's request counter lags its first minute; a node's CPU counters are
// there from boot), so the predictive rule extrapolates it rather than the request rate.
const (
	busyCores   = `sum(rate(node_cpu_seconds_total{mode!="idle"}[1m]))`
	requestRate = `sum(rate(http_requests_total[1m]))`
	servedRate  = `sum(rate(http_requests_total{code!~"5.."}[1m]))`
)

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

		HPADesired:         `sum(kube_horizontalpodautoscaler_status_desired_replicas)`,
		RequestRate:        requestRate,
		ServedRate:         servedRate,
		BusyCores:          busyCores,
		BusyCoresPredicted: `predict_linear((` + busyCores + `)[$predict_window:15s], $predict_horizon_seconds)`,
		RequestedCPUMax:    `max_over_time((` + requestedShare("cpu") + `)[$down_window:15s])`,
		RequestedMemoryMax: `max_over_time((` + requestedShare("memory") + `)[$down_window:15s])`,
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

	ReadingHPADesired         = "hpa_desired"
	ReadingRequestRate        = "request_rate"
	ReadingServedRate         = "served_rate"
	ReadingBusyCores          = "busy_cores"
	ReadingBusyCoresPredicted = "busy_cores_predicted"
	ReadingRequestedCPUMax    = "requested_cpu_max"
	ReadingRequestedMemoryMax = "requested_memory_max"
)

// QueryNames lists the brief's reading names in query order: every policy asks them.
func QueryNames() []string {
	return []string{ReadingCPU, ReadingCPUHighMin, ReadingCPULowMax, ReadingMemory,
		ReadingPending, ReadingPendingMin, ReadingNodes, ReadingMetricAge}
}

// RuleQueryNames lists the readings of the rules beyond the brief, in query order; a policy
// asks only those its rules use (Policy.ReadingNames).
func RuleQueryNames() []string {
	return []string{ReadingHPADesired, ReadingRequestRate, ReadingServedRate, ReadingBusyCores, ReadingBusyCoresPredicted,
		ReadingRequestedCPUMax, ReadingRequestedMemoryMax}
}

// AllQueryNames lists every reading name: the brief's, then the rules'.
func AllQueryNames() []string { return append(QueryNames(), RuleQueryNames()...) }

// ReadingNames lists the readings the policy asks, in query order: the brief's and those of
// its enabled rules.
func (p Policy) ReadingNames() []string {
	names := QueryNames()
	if p.ScaleUpOnDemand || p.PredictHorizon > 0 {
		names = append(names, ReadingHPADesired, ReadingRequestRate, ReadingServedRate)
	}
	if p.PredictHorizon > 0 {
		names = append(names, ReadingBusyCores, ReadingBusyCoresPredicted)
	}
	if p.ScaleDownRequestedPercent > 0 {
		names = append(names, ReadingRequestedCPUMax, ReadingRequestedMemoryMax)
	}
	return names
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
	case ReadingHPADesired:
		return &q.HPADesired
	case ReadingRequestRate:
		return &q.RequestRate
	case ReadingServedRate:
		return &q.ServedRate
	case ReadingBusyCores:
		return &q.BusyCores
	case ReadingBusyCoresPredicted:
		return &q.BusyCoresPredicted
	case ReadingRequestedCPUMax:
		return &q.RequestedCPUMax
	case ReadingRequestedMemoryMax:
		return &q.RequestedMemoryMax
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
		return fmt.Errorf("unknown query %q (known: %s)", name, strings.Join(AllQueryNames(), ", "))
	}
	if strings.TrimSpace(expr) == "" {
		return errors.New("empty query")
	}
	*f = expr
	return nil
}

func (q Queries) validate(names []string) error {
	var errs []error
	for _, n := range names {
		if strings.TrimSpace(q.Get(n)) == "" {
			errs = append(errs, fmt.Errorf("queries.%s is empty", n))
		}
	}
	return errors.Join(errs...)
}

// Expand returns the query of a reading with its variables replaced: $up_window and
// $down_window (the sustain windows), $predict_window and $predict_horizon_seconds.
func (p Policy) Expand(name string) string {
	return strings.NewReplacer(
		"$up_window", promDuration(p.ScaleUpSustain),
		"$down_window", promDuration(p.ScaleDownSustain),
		"$predict_window", promDuration(p.PredictWindow),
		"$predict_horizon_seconds", strconv.FormatFloat(p.PredictHorizon.Seconds(), 'f', -1, 64),
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
func knownReading(name string) bool { return slices.Contains(AllQueryNames(), name) }
