package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Reading is the answer to one query: a finite value, or the problem that stands in its way.
type Reading struct {
	Value   float64       // meaningful only when Problem is ProblemNone
	Problem MetricProblem // ProblemNone when the value is usable
	Detail  string        // the error text behind Problem
	At      time.Time     // the sample's timestamp
}

// OK reports whether the reading has a usable value.
func (r Reading) OK() bool { return r.Problem == ProblemNone }

type readingJSON struct {
	Value   *float64      `json:"value,omitempty"`
	Problem MetricProblem `json:"problem,omitempty"`
	Detail  string        `json:"detail,omitempty"`
	At      time.Time     `json:"at,omitzero"`
}

// MarshalJSON writes {"value": v, "at": t} for a usable reading, and
// {"problem": "nan", "detail": "..."} otherwise (JSON has no NaN).
func (r Reading) MarshalJSON() ([]byte, error) {
	j := readingJSON{Problem: r.Problem, Detail: r.Detail, At: r.At.UTC()}
	if r.OK() {
		v := roundFigure(r.Value)
		j.Value = &v
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Reading) UnmarshalJSON(b []byte) error {
	var j readingJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Reading{Problem: j.Problem, Detail: j.Detail, At: j.At}
	if j.Value != nil {
		r.Value = *j.Value
	} else if j.Problem == ProblemNone {
		r.Problem = ProblemMissing
	}
	return nil
}

// roundFigure keeps JSON outputs short and stable: 6 significant decimals.
func roundFigure(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 6, 64), 64)
	return f
}

// Readings are the answers to the policy's queries.
type Readings struct {
	CPU        Reading `json:"cpu"`
	CPUHighMin Reading `json:"cpu_high_min"`
	CPULowMax  Reading `json:"cpu_low_max"`
	Memory     Reading `json:"memory"`
	Pending    Reading `json:"pending"`
	PendingMin Reading `json:"pending_min"`
	Nodes      Reading `json:"nodes"`
	MetricAge  Reading `json:"metric_age"`

	// The rules' readings: zero (and left out of the JSON) when the policy does not ask them.
	HPADesired         Reading `json:"hpa_desired,omitzero"`
	RequestRate        Reading `json:"request_rate,omitzero"`
	ServedRate         Reading `json:"served_rate,omitzero"`
	BusyCores          Reading `json:"busy_cores,omitzero"`
	BusyCoresPredicted Reading `json:"busy_cores_predicted,omitzero"`
	RequestedCPUMax    Reading `json:"requested_cpu_max,omitzero"`
	RequestedMemoryMax Reading `json:"requested_memory_max,omitzero"`
}

func (r *Readings) field(name string) *Reading {
	switch name {
	case ReadingCPU:
		return &r.CPU
	case ReadingCPUHighMin:
		return &r.CPUHighMin
	case ReadingCPULowMax:
		return &r.CPULowMax
	case ReadingMemory:
		return &r.Memory
	case ReadingPending:
		return &r.Pending
	case ReadingPendingMin:
		return &r.PendingMin
	case ReadingNodes:
		return &r.Nodes
	case ReadingMetricAge:
		return &r.MetricAge
	case ReadingHPADesired:
		return &r.HPADesired
	case ReadingRequestRate:
		return &r.RequestRate
	case ReadingServedRate:
		return &r.ServedRate
	case ReadingBusyCores:
		return &r.BusyCores
	case ReadingBusyCoresPredicted:
		return &r.BusyCoresPredicted
	case ReadingRequestedCPUMax:
		return &r.RequestedCPUMax
	case ReadingRequestedMemoryMax:
		return &r.RequestedMemoryMax
	}
	return nil
}

// Get returns a reading by name.
func (r Readings) Get(name string) Reading {
	if f := r.field(name); f != nil {
		return *f
	}
	return Reading{Problem: ProblemMissing}
}

// Invalid lists the names of the brief's readings without a usable value, in query order.
func (r Readings) Invalid() []string { return r.InvalidOf(QueryNames()) }

// InvalidOf lists the names among names whose readings have no usable value.
func (r Readings) InvalidOf(names []string) []string {
	var out []string
	for _, n := range names {
		if !r.Get(n).OK() {
			out = append(out, n)
		}
	}
	return out
}

// Observation is everything Decide looks at.
type Observation struct {
	Time     time.Time `json:"time"`
	Readings Readings  `json:"readings"`
	// Invalid names the readings that were missing or invalid (also visible per reading).
	Invalid []string `json:"invalid,omitempty"`
	// RegisteredWorkers is count(kube_node_info) minus the control-plane nodes.
	RegisteredWorkers int `json:"registered_workers"`
	// Launching counts managed instances not yet registered as nodes.
	Launching int `json:"launching"`
	// WorkersKnown is false when the worker count could not be established.
	WorkersKnown bool `json:"workers_known"`
	// Nodes and Instances come from the cluster and cloud ports (empty in explain mode).
	Nodes     []Node     `json:"nodes,omitempty"`
	Instances []Instance `json:"instances,omitempty"`
	// Resources is the cluster's resource picture (Cluster.Resources), asked only by a
	// policy that sizes by pods; ResourcesError says why it is missing when it was asked.
	Resources      *ClusterResources `json:"resources,omitempty"`
	ResourcesError string            `json:"resources_error,omitempty"`
	// NextOffering is where a scale-up would launch (the first offering not backing off):
	// pod sizing packs onto its instance type. Set by the Step only for such a policy.
	NextOffering Offering `json:"next_offering,omitzero"`
}

// Capacity is the worker count the bounds and cooldowns apply to: registered workers plus
// instances still launching.
func (o Observation) Capacity() int { return o.RegisteredWorkers + o.Launching }

// Query evaluates every query of the policy at now through m and classifies each answer.
// It never fails: problems become readings with a Problem.
func Query(ctx context.Context, m Metrics, p Policy, now time.Time) Readings {
	var rs Readings
	names := p.ReadingNames()
	for _, name := range names {
		*rs.field(name) = queryOne(ctx, m, p, name, now)
	}
	if age := rs.MetricAge; age.OK() && age.Value > p.MaxMetricAge.Seconds() {
		detail := fmt.Sprintf("newest node-exporter sample is %.0fs old (max %v)", age.Value, p.MaxMetricAge)
		for _, name := range names {
			if f := rs.field(name); f.OK() && name != ReadingNodes {
				f.Problem, f.Detail = ProblemStale, detail
			}
		}
	}
	return rs
}

func queryOne(ctx context.Context, m Metrics, p Policy, name string, now time.Time) Reading {
	if m == nil {
		return Reading{Problem: ProblemMissing, Detail: "no metrics source"}
	}
	s, err := m.Query(ctx, p.Expand(name), now)
	switch {
	case err != nil:
		return Reading{Problem: ProblemOf(err), Detail: err.Error()}
	case math.IsNaN(s.Value):
		return Reading{Problem: ProblemNaN, Detail: "query returned NaN", At: s.Time}
	case math.IsInf(s.Value, 0):
		return Reading{Problem: ProblemInf, Detail: "query returned Inf", At: s.Time}
	case len(s.Warnings) > 0:
		return Reading{Value: s.Value, Problem: ProblemPartial, Detail: fmt.Sprintf("warnings: %q", s.Warnings), At: s.Time}
	}
	return Reading{Value: s.Value, At: s.Time}
}

// Observe builds the observation of one tick. Readings come from the Metrics port; nodes and
// instances from the Cluster and Cloud ports when given (nil in explain mode). Errors of the
// cluster or cloud port are returned: without them the worker count is unknown.
func Observe(ctx context.Context, p Policy, m Metrics, cloud Cloud, cluster Cluster, now time.Time) (Observation, error) {
	obs := Observation{Time: now.UTC(), Readings: Query(ctx, m, p, now)}
	obs.Invalid = obs.Readings.InvalidOf(p.ReadingNames())
	if cluster != nil {
		nodes, err := cluster.Nodes(ctx)
		if err != nil {
			return obs, fmt.Errorf("listing nodes: %w", err)
		}
		slices.SortFunc(nodes, func(a, b Node) int { return cmpString(a.Name, b.Name) })
		obs.Nodes = nodes
		if p.SizesByPods() {
			// without it the pod rules stand aside for this tick (a reading of its own)
			if res, err := cluster.Resources(ctx); err != nil {
				obs.ResourcesError = err.Error()
			} else {
				res.sort()
				obs.Resources = &res
			}
		}
	}
	if cloud != nil {
		insts, err := cloud.Instances(ctx)
		if err != nil {
			return obs, fmt.Errorf("listing instances: %w", err)
		}
		slices.SortFunc(insts, func(a, b Instance) int { return cmpString(a.ID, b.ID) })
		obs.Instances = insts
	}
	obs.countWorkers(p, cluster != nil)
	return obs, nil
}

// countWorkers sets RegisteredWorkers and Launching: count(kube_node_info) minus the control
// plane when that reading is usable, else the cluster port's node list; plus the managed
// instances that have no node yet.
func (o *Observation) countWorkers(p Policy, haveCluster bool) {
	registered := map[string]bool{}
	for _, n := range o.Nodes {
		if n.InstanceID != "" {
			registered[n.InstanceID] = true
		}
	}
	switch {
	case o.Readings.Nodes.Problem == ProblemNone || o.Readings.Nodes.Problem == ProblemStale:
		// count(kube_node_info) comes from kube-state-metrics, not node-exporter: a stale
		// node-exporter does not make it wrong.
		o.RegisteredWorkers = max(0, int(math.Round(o.Readings.Nodes.Value))-p.ControlPlaneNodes)
		o.WorkersKnown = true
	case haveCluster:
		for _, n := range o.Nodes {
			if !n.ControlPlane {
				o.RegisteredWorkers++
			}
		}
		o.WorkersKnown = true
	}
	o.Launching = 0
	for _, in := range o.Instances {
		if (in.State == InstancePending || in.State == InstanceRunning) && !registered[in.ID] {
			o.Launching++
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
