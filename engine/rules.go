package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Rules are the rules beyond the product brief's. Every one is off in the brief preset (the
// default), so a brief policy decides exactly as the brief says; the responsive preset turns
// them on. docs/algorithm.md gives the reasoning for each.
type Rules struct {
	// ScaleUpSizing is how a scale-up is sized: SizingMetrics (the brief: ScaleUpStep, up to
	// ScaleUpMaxStep when CPU, memory or pending pods say one node is clearly not enough) or
	// SizingPods (the pods that need room are packed first-fit-decreasing onto the node shape
	// of the offering to launch, less the room of the workers still launching).
	ScaleUpSizing string
	// ScaleUpOnUnschedulable: pods the scheduler could not place (listed by the Cluster port)
	// trigger a scale-up at once, without waiting for them to be pending a whole window.
	ScaleUpOnUnschedulable bool
	// ScaleUpOnDemand (HPA-aware): the replicas the HPAs want, grown by the share of requests
	// the app turned away (a saturated app's HPA sees only the load it serves), trigger a
	// scale-up when they do not fit on the Ready and launching workers.
	ScaleUpOnDemand bool
	// PredictHorizon > 0 turns on the predictive trigger: the request rate predicted this far
	// ahead (predict_linear over PredictWindow) grows the demand; the horizon should be the
	// launch-to-Ready time, so capacity is Ready when the demand arrives.
	PredictHorizon time.Duration
	PredictWindow  time.Duration
	// HeadroomPods keeps room for this many more app pods than the demand, Ready or launching.
	HeadroomPods int
	// NodeReserve is what a node of a type with no Ready worker to learn from keeps for the
	// kubelet and its DaemonSet pods: its allocatable is the type's capacity less this.
	NodeReserveCPUm      int
	NodeReserveMemoryMiB int
	// ScaleDownRequestedPercent > 0 turns on the requests-based scale-down: workers are
	// removed while the schedulable workers' requested CPU and memory, over ScaleDownSustain
	// and with those workers gone, stay under this share, and their pods fit on the others.
	ScaleDownRequestedPercent float64
	// ScaleDownMaxStep bounds the workers one requests-based scale-down removes at once
	// (each is its own operation, drained beside the others).
	ScaleDownMaxStep int
	// ScaleUpOnUsage: the brief's CPU and memory triggers (on in both presets).
	ScaleUpOnUsage bool
	// AlertTicks: ticks also come when Prometheus alerts for a scale-up condition fire
	// (Alertmanager -> SNS -> the Lambda), besides the schedule; the simulator models them.
	AlertTicks bool
	// AlertTickMinInterval: an alert tick within this of the last one does nothing.
	AlertTickMinInterval time.Duration
}

// Scale-up sizing modes.
const (
	SizingMetrics = "metrics"
	SizingPods    = "pods"
)

// Preset names.
const (
	PresetBrief      = "brief"
	PresetResponsive = "responsive"
)

// PresetNames lists the shipped presets, the default first.
func PresetNames() []string { return []string{PresetBrief, PresetResponsive} }

// briefRules are the brief's: none of the rules beyond it.
func briefRules() Rules {
	return Rules{ScaleUpSizing: SizingMetrics, ScaleUpOnUsage: true, ScaleDownMaxStep: 1, AlertTickMinInterval: 30 * time.Second,
		NodeReserveCPUm: 100, NodeReserveMemoryMiB: 600, PredictWindow: 3 * time.Minute}
}

// PresetPolicy returns a shipped preset by name.
func PresetPolicy(name string) (Policy, error) {
	switch name {
	case PresetBrief:
		return DefaultPolicy(), nil
	case PresetResponsive:
		return ResponsivePolicy(), nil
	}
	return Policy{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
}

// ResponsivePolicy is the brief's bounds and thresholds with the rules that let it beat a
// cluster-autoscaler: scale-ups sized by the pods that need room and triggered as soon as pods
// cannot be placed or the demand will not fit, and scale-downs as soon as the requests fit on
// fewer workers. docs/algorithm.md ("Presets") says why each value.
func ResponsivePolicy() Policy {
	p := DefaultPolicy()
	p.Preset = PresetResponsive
	p.ScaleUpSizing = SizingPods
	p.ScaleUpOnUnschedulable = true
	p.ScaleUpOnDemand = true
	p.ScaleUpMaxStep = p.MaxWorkers
	p.ScaleUpCooldown = 0
	p.ScaleDownCooldown = 0
	p.ScaleDownRequestedPercent = 100
	p.ScaleDownSustain = 3 * time.Minute
	p.ScaleDownMaxStep = p.MaxWorkers / 2
	return p
}

// SizesByPods reports whether the policy needs the cluster's resource picture.
func (p Policy) SizesByPods() bool {
	return p.ScaleUpSizing == SizingPods || p.ScaleUpOnUnschedulable || p.ScaleUpOnDemand ||
		p.PredictHorizon > 0 || p.HeadroomPods > 0 || p.ScaleDownRequestedPercent > 0
}

func (r Rules) validate(p Policy) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.Contains([]string{SizingMetrics, SizingPods}, r.ScaleUpSizing) {
		bad("scale_up_sizing must be %q or %q, got %q", SizingMetrics, SizingPods, r.ScaleUpSizing)
	}
	if r.PredictHorizon < 0 || (r.PredictHorizon > 0 && r.PredictHorizon > 30*time.Minute) {
		bad("predict_horizon must be 0 (off) or up to 30m, got %v", r.PredictHorizon)
	}
	if r.PredictHorizon > 0 && r.PredictWindow < time.Minute {
		bad("predict_window must be >= 1m so predict_linear has enough samples (4 at a 15s scrape), got %v", r.PredictWindow)
	}
	if r.HeadroomPods < 0 {
		bad("headroom_pods must be >= 0, got %d", r.HeadroomPods)
	}
	if r.NodeReserveCPUm < 0 || r.NodeReserveMemoryMiB < 0 {
		bad("node_reserve_cpu_millicores and node_reserve_memory_mib must be >= 0")
	}
	if v := r.ScaleDownRequestedPercent; math.IsNaN(v) || v < 0 || v > 100 {
		bad("scale_down_requested_percent must be 0 (off) or in (0, 100], got %v", v)
	}
	if r.AlertTickMinInterval < 0 {
		bad("alert_tick_min_interval must be >= 0, got %v", r.AlertTickMinInterval)
	}
	if r.ScaleDownMaxStep < 1 {
		bad("scale_down_max_step must be >= 1, got %d", r.ScaleDownMaxStep)
	}
	if r.ScaleUpSizing == SizingMetrics && (r.ScaleUpOnUnschedulable || r.ScaleUpOnDemand || r.PredictHorizon > 0 || r.HeadroomPods > 0) {
		bad("scale_up_on_unschedulable, scale_up_on_demand, predict_horizon and headroom_pods size by pods: set scale_up_sizing to %q", SizingPods)
	}
	return errs
}

// rulesFile is the JSON form of the rules. Keys at the brief's values are left out when
// written, so a brief policy file reads as the brief's.
type rulesFile struct {
	ScaleUpSizing             *string  `json:"scale_up_sizing,omitempty"`
	ScaleUpOnUnschedulable    *bool    `json:"scale_up_on_unschedulable,omitempty"`
	ScaleUpOnDemand           *bool    `json:"scale_up_on_demand,omitempty"`
	ScaleUpOnUsage            *bool    `json:"scale_up_on_usage,omitempty"`
	PredictHorizon            *string  `json:"predict_horizon,omitempty"`
	PredictWindow             *string  `json:"predict_window,omitempty"`
	HeadroomPods              *int     `json:"headroom_pods,omitempty"`
	NodeReserveCPUm           *int     `json:"node_reserve_cpu_millicores,omitempty"`
	NodeReserveMemoryMiB      *int     `json:"node_reserve_memory_mib,omitempty"`
	ScaleDownRequestedPercent *float64 `json:"scale_down_requested_percent,omitempty"`
	ScaleDownMaxStep          *int     `json:"scale_down_max_step,omitempty"`
	AlertTicks                *bool    `json:"alert_ticks,omitempty"`
	AlertTickMinInterval      *string  `json:"alert_tick_min_interval,omitempty"`
}

func (f rulesFile) apply(r *Rules) []error {
	var errs []error
	dur := func(name string, dst *time.Duration, v *string) {
		if v == nil {
			return
		}
		d, err := time.ParseDuration(*v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration (use e.g. \"90s\", \"5m\")", name, *v))
			return
		}
		*dst = d
	}
	set(&r.ScaleUpSizing, f.ScaleUpSizing)
	set(&r.ScaleUpOnUnschedulable, f.ScaleUpOnUnschedulable)
	set(&r.ScaleUpOnDemand, f.ScaleUpOnDemand)
	set(&r.ScaleUpOnUsage, f.ScaleUpOnUsage)
	dur("predict_horizon", &r.PredictHorizon, f.PredictHorizon)
	dur("predict_window", &r.PredictWindow, f.PredictWindow)
	set(&r.HeadroomPods, f.HeadroomPods)
	set(&r.NodeReserveCPUm, f.NodeReserveCPUm)
	set(&r.NodeReserveMemoryMiB, f.NodeReserveMemoryMiB)
	set(&r.ScaleDownRequestedPercent, f.ScaleDownRequestedPercent)
	set(&r.ScaleDownMaxStep, f.ScaleDownMaxStep)
	set(&r.AlertTicks, f.AlertTicks)
	dur("alert_tick_min_interval", &r.AlertTickMinInterval, f.AlertTickMinInterval)
	return errs
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// file writes the keys that differ from b, the rules of the policy's preset.
func (r Rules) file(b Rules) rulesFile {
	var f rulesFile
	if r.ScaleUpSizing != b.ScaleUpSizing {
		f.ScaleUpSizing = &r.ScaleUpSizing
	}
	if r.ScaleUpOnUnschedulable != b.ScaleUpOnUnschedulable {
		f.ScaleUpOnUnschedulable = &r.ScaleUpOnUnschedulable
	}
	if r.ScaleUpOnDemand != b.ScaleUpOnDemand {
		f.ScaleUpOnDemand = &r.ScaleUpOnDemand
	}
	if r.ScaleUpOnUsage != b.ScaleUpOnUsage {
		f.ScaleUpOnUsage = &r.ScaleUpOnUsage
	}
	if r.PredictHorizon != b.PredictHorizon {
		v := r.PredictHorizon.String()
		f.PredictHorizon = &v
	}
	if r.PredictWindow != b.PredictWindow {
		v := r.PredictWindow.String()
		f.PredictWindow = &v
	}
	if r.HeadroomPods != b.HeadroomPods {
		f.HeadroomPods = &r.HeadroomPods
	}
	if r.NodeReserveCPUm != b.NodeReserveCPUm {
		f.NodeReserveCPUm = &r.NodeReserveCPUm
	}
	if r.NodeReserveMemoryMiB != b.NodeReserveMemoryMiB {
		f.NodeReserveMemoryMiB = &r.NodeReserveMemoryMiB
	}
	if r.ScaleDownRequestedPercent != b.ScaleDownRequestedPercent {
		f.ScaleDownRequestedPercent = &r.ScaleDownRequestedPercent
	}
	if r.ScaleDownMaxStep != b.ScaleDownMaxStep {
		f.ScaleDownMaxStep = &r.ScaleDownMaxStep
	}
	if r.AlertTicks != b.AlertTicks {
		f.AlertTicks = &r.AlertTicks
	}
	if r.AlertTickMinInterval != b.AlertTickMinInterval {
		v := r.AlertTickMinInterval.String()
		f.AlertTickMinInterval = &v
	}
	return f
}
