// Package scenarios holds the k6-style load scenarios and their loader.
//
// A scenario file is a k6 options file: its "scenarios" entry (one, with a
// ramping-arrival-rate or constant-arrival-rate executor and k6 "stages") is the load
// profile, so `k6 run --config scenarios/flash-sale.json scenarios/load-test.js` drives a
// real cluster with the same profile. The simulator-only settings sit beside it under
// "smartscale", which k6 ignores.
package scenarios

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/smartscale/smartscale/engine"
)

//go:embed *.json
var builtin embed.FS

// Scenario is a loaded, validated scenario.
type Scenario struct {
	Name        string
	Description string
	Executor    string // k6 executor: ramping-arrival-rate or constant-arrival-rate
	StartRate   float64
	Stages      []Stage
	Sim         Sim
}

// Stage is one k6 stage: the arrival rate moves linearly to Target over Duration.
type Stage struct {
	Duration time.Duration
	Target   float64 // requests per second
}

// Sim is the simulator-only part of a scenario.
type Sim struct {
	Node           Node         `json:"node"`
	ControlPlane   ControlPlane `json:"control_plane"`
	InitialWorkers int          `json:"initial_workers"`
	App            App          `json:"app"`
	HPA            HPA          `json:"hpa"`
	SLO            SLO          `json:"slo"`
	Cloud          Cloud        `json:"cloud"`
	NoiseFraction  float64      `json:"noise_fraction"` // relative jitter of the arrival rate
}

// Node describes a worker instance type.
type Node struct {
	InstanceType      string  `json:"instance_type"`
	CPUMillicores     int     `json:"cpu_millicores"` // capacity (vCPU x 1000)
	MemoryMiB         int     `json:"memory_mib"`     // capacity
	AllocatableCPUm   int     `json:"allocatable_cpu_millicores"`
	AllocatableMemMiB int     `json:"allocatable_memory_mib"`
	SystemCPUm        int     `json:"system_cpu_millicores"` // DaemonSet/system requests per node
	SystemMemMiB      int     `json:"system_memory_mib"`
	SystemCPUUsePct   float64 `json:"system_cpu_use_percent"` // idle node's busy share (kubelet, k3s agent, exporters)
	SystemMemUseMiB   int     `json:"system_memory_use_mib"`  // OS + k3s agent + DaemonSets
	PricePerHourUSD   float64 `json:"price_per_hour_usd"`     // 0: from the price table
	CPUCores          int     `json:"-"`
}

// ControlPlane describes the K3s master (always on, tainted against app pods).
type ControlPlane struct {
	InstanceType    string  `json:"instance_type"`
	CPUMillicores   int     `json:"cpu_millicores"`
	MemoryMiB       int     `json:"memory_mib"`
	CPUUsePct       float64 `json:"cpu_use_percent"`
	MemoryUseMiB    int     `json:"memory_use_mib"`
	PricePerHourUSD float64 `json:"price_per_hour_usd"`
}

// App is the demo Deployment.
type App struct {
	CPUMsPerRequest   float64 `json:"cpu_ms_per_request"` // CPU time one request costs
	BaseLatencyMs     float64 `json:"base_latency_ms"`    // network and framework latency
	CPURequestm       int     `json:"cpu_request_millicores"`
	CPULimitm         int     `json:"cpu_limit_millicores"`
	MemoryRequestMiB  int     `json:"memory_request_mib"`
	MemoryBaseMiB     float64 `json:"memory_base_mib"`    // a pod's resident memory when idle
	MemoryPerRPSMiB   float64 `json:"memory_per_rps_mib"` // extra resident memory per request/s
	MinReplicas       int     `json:"min_replicas"`
	MaxReplicas       int     `json:"max_replicas"`
	StartSeconds      float64 `json:"start_seconds"` // scheduled -> Ready
	TerminationGraceS float64 `json:"termination_grace_seconds"`
	PDBMaxUnavailable int     `json:"pdb_max_unavailable"`
}

// HPA is the HorizontalPodAutoscaler of the demo Deployment.
type HPA struct {
	TargetCPUPercent       float64       `json:"target_cpu_percent"`
	Tolerance              float64       `json:"tolerance"`
	SyncPeriod             time.Duration `json:"-"`
	ScaleDownStabilization time.Duration `json:"-"`
	SyncPeriodRaw          string        `json:"sync_period"`
	StabilizationRaw       string        `json:"scale_down_stabilization"`
}

// SLO is what counts as a violated minute.
type SLO struct {
	P95Ms          float64 `json:"p95_ms"`
	MaxDropPercent float64 `json:"max_drop_percent"`
}

// Cloud holds the EC2 model's latency distributions (log-normal, by median and p90).
type Cloud struct {
	BootMedianS  float64 `json:"boot_median_seconds"` // RunInstances -> running
	BootP90S     float64 `json:"boot_p90_seconds"`
	JoinMedianS  float64 `json:"join_median_seconds"` // running -> node registered (K3s agent up)
	JoinP90S     float64 `json:"join_p90_seconds"`
	ReadyDelayS  float64 `json:"ready_delay_seconds"` // registered -> Ready (CNI up)
	ShutdownS    float64 `json:"shutdown_seconds"`    // TerminateInstances -> terminated (billing stops)
	MaxInstances int     `json:"max_instances"`       // account quota for managed workers
	// SpotInterruptionScale multiplies the spot market's interruption and rebalance rates,
	// SpotShortageScale its zone shortages' (sim/cloud/spot.json); 0 means 1.
	SpotInterruptionScale float64 `json:"spot_interruption_scale,omitempty"`
	SpotShortageScale     float64 `json:"spot_shortage_scale,omitempty"`
}

// Duration is the scenario's length: the sum of its stages.
func (s Scenario) Duration() time.Duration {
	var d time.Duration
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// RateAt is the offered arrival rate (requests/s) at offset t from the start, k6-style:
// linear within each stage from the previous target to this stage's target.
func (s Scenario) RateAt(t time.Duration) float64 {
	from := s.StartRate
	var at time.Duration
	for _, st := range s.Stages {
		if t < at+st.Duration {
			f := float64(t-at) / float64(st.Duration)
			return from + (st.Target-from)*f
		}
		at += st.Duration
		from = st.Target
	}
	return from
}

// PeakRate is the highest target of the scenario.
func (s Scenario) PeakRate() float64 {
	p := s.StartRate
	for _, st := range s.Stages {
		p = max(p, st.Target)
	}
	return p
}

// file is the JSON form.
type file struct {
	Description string                `json:"description"`
	Scenarios   map[string]k6Scenario `json:"scenarios"`
	SmartScale  json.RawMessage       `json:"smartscale"`
	// k6 options the simulator does not use but must accept.
	Thresholds         json.RawMessage `json:"thresholds"`
	DiscardResponseBod json.RawMessage `json:"discardResponseBodies"`
	NoConnectionReuse  json.RawMessage `json:"noConnectionReuse"`
	UserAgent          json.RawMessage `json:"userAgent"`
	SummaryTrendStats  json.RawMessage `json:"summaryTrendStats"`
	Tags               json.RawMessage `json:"tags"`
}

type k6Scenario struct {
	Executor        string          `json:"executor"`
	StartRate       *float64        `json:"startRate"`
	Rate            *float64        `json:"rate"`
	Duration        string          `json:"duration"`
	TimeUnit        string          `json:"timeUnit"`
	PreAllocatedVUs int             `json:"preAllocatedVUs"`
	MaxVUs          int             `json:"maxVUs"`
	Stages          []k6Stage       `json:"stages"`
	Exec            string          `json:"exec"`
	Env             json.RawMessage `json:"env"`
	Tags            json.RawMessage `json:"tags"`
	GracefulStop    string          `json:"gracefulStop"`
	StartTime       string          `json:"startTime"`
}

type k6Stage struct {
	Duration string   `json:"duration"`
	Target   *float64 `json:"target"`
}

// Names lists the built-in scenarios, sorted.
func Names() []string {
	ents, _ := fs.ReadDir(builtin, ".")
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			out = append(out, strings.TrimSuffix(e.Name(), ".json"))
		}
	}
	slices.Sort(out)
	return out
}

// Load returns a built-in scenario by name, or reads the file at nameOrPath.
func Load(nameOrPath string) (Scenario, error) {
	if data, err := builtin.ReadFile(nameOrPath + ".json"); err == nil {
		return Parse(nameOrPath, data)
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !strings.ContainsAny(nameOrPath, "/.") {
			return Scenario{}, fmt.Errorf("unknown scenario %q: built-in scenarios are %s (or give a file path)", nameOrPath, strings.Join(Names(), ", "))
		}
		return Scenario{}, fmt.Errorf("reading scenario: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(nameOrPath), filepath.Ext(nameOrPath))
	sc, err := Parse(name, data)
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", nameOrPath, err)
	}
	return sc, nil
}

// Parse decodes and validates a scenario file's bytes. Errors name the field and problem.
func Parse(name string, data []byte) (Scenario, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return Scenario{}, engine.JSONError(data, err)
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	sc := Scenario{Name: name, Description: f.Description, Sim: DefaultSim()}
	if len(f.Scenarios) != 1 {
		bad("scenarios: want exactly one k6 scenario, got %d", len(f.Scenarios))
	}
	for key, k := range f.Scenarios {
		field := "scenarios." + key
		sc.Executor = k.Executor
		if k.TimeUnit != "" && k.TimeUnit != "1s" {
			bad("%s.timeUnit: only \"1s\" is supported (rates are requests per second), got %q", field, k.TimeUnit)
		}
		switch k.Executor {
		case "ramping-arrival-rate":
			if k.StartRate == nil {
				bad("%s.startRate: missing", field)
			} else {
				sc.StartRate = *k.StartRate
			}
			if len(k.Stages) == 0 {
				bad("%s.stages: at least one stage is needed", field)
			}
			for i, st := range k.Stages {
				sf := fmt.Sprintf("%s.stages[%d]", field, i)
				d, err := parseDuration(st.Duration)
				if err != nil {
					bad("%s.duration: %v", sf, err)
				} else if d <= 0 {
					bad("%s.duration: must be positive, got %q", sf, st.Duration)
				}
				if st.Target == nil {
					bad("%s.target: missing", sf)
					continue
				}
				sc.Stages = append(sc.Stages, Stage{Duration: d, Target: *st.Target})
			}
		case "constant-arrival-rate":
			if k.Rate == nil {
				bad("%s.rate: missing", field)
			}
			d, err := parseDuration(k.Duration)
			if err != nil {
				bad("%s.duration: %v", field, err)
			}
			if k.Rate != nil && err == nil {
				sc.StartRate = *k.Rate
				sc.Stages = []Stage{{Duration: d, Target: *k.Rate}}
			}
		case "":
			bad("%s.executor: missing (ramping-arrival-rate or constant-arrival-rate)", field)
		default:
			bad("%s.executor: %q is not supported (ramping-arrival-rate or constant-arrival-rate)", field, k.Executor)
		}
	}
	if len(f.SmartScale) > 0 {
		sd := json.NewDecoder(bytes.NewReader(f.SmartScale))
		sd.DisallowUnknownFields()
		if err := sd.Decode(&sc.Sim); err != nil {
			errs = append(errs, fmt.Errorf("smartscale: %w", engine.JSONError(f.SmartScale, err)))
		}
	}
	errs = append(errs, sc.validate()...)
	if err := errors.Join(errs...); err != nil {
		return Scenario{}, err
	}
	return sc, nil
}

// parseDuration accepts k6 durations: Go durations plus a "d" unit ("1d", "1d2h").
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("missing")
	}
	var days time.Duration
	if i := strings.Index(s, "d"); i > 0 {
		var n int
		if _, err := fmt.Sscanf(s[:i], "%d", &n); err != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. \"90s\", \"5m\", \"1h30m\")", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. \"90s\", \"5m\", \"1h30m\")", s)
	}
	return days + d, nil
}

func (sc *Scenario) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	nonNeg := func(field string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad("%s: must be a finite number >= 0, got %v", field, v)
		}
	}
	nonNeg("startRate", sc.StartRate)
	for i, st := range sc.Stages {
		nonNeg(fmt.Sprintf("stages[%d].target", i), st.Target)
	}
	if d := sc.Duration(); d > 31*24*time.Hour {
		bad("stages: total duration %v exceeds the 31-day limit", d)
	}
	s := &sc.Sim
	pos := func(field string, v float64) {
		if math.IsNaN(v) || v <= 0 {
			bad("smartscale.%s: must be > 0, got %v", field, v)
		}
	}
	pos("node.cpu_millicores", float64(s.Node.CPUMillicores))
	pos("node.memory_mib", float64(s.Node.MemoryMiB))
	pos("node.allocatable_cpu_millicores", float64(s.Node.AllocatableCPUm))
	pos("node.allocatable_memory_mib", float64(s.Node.AllocatableMemMiB))
	if s.Node.AllocatableCPUm > s.Node.CPUMillicores {
		bad("smartscale.node.allocatable_cpu_millicores (%d) exceeds cpu_millicores (%d)", s.Node.AllocatableCPUm, s.Node.CPUMillicores)
	}
	if s.Node.CPUMillicores%1000 != 0 {
		bad("smartscale.node.cpu_millicores: must be whole vCPUs (a multiple of 1000), got %d", s.Node.CPUMillicores)
	}
	pos("control_plane.cpu_millicores", float64(s.ControlPlane.CPUMillicores))
	pos("control_plane.memory_mib", float64(s.ControlPlane.MemoryMiB))
	pos("app.cpu_ms_per_request", s.App.CPUMsPerRequest)
	pos("app.cpu_request_millicores", float64(s.App.CPURequestm))
	pos("app.memory_request_mib", float64(s.App.MemoryRequestMiB))
	if s.App.CPULimitm < s.App.CPURequestm {
		bad("smartscale.app.cpu_limit_millicores (%d) must be >= cpu_request_millicores (%d)", s.App.CPULimitm, s.App.CPURequestm)
	}
	if free := s.Node.AllocatableCPUm - s.Node.SystemCPUm; free < s.App.CPURequestm {
		bad("smartscale.app.cpu_request_millicores (%d) does not fit on a node (%dm free after system pods)", s.App.CPURequestm, free)
	}
	if s.App.MinReplicas < 1 || s.App.MaxReplicas < s.App.MinReplicas {
		bad("smartscale.app: want 1 <= min_replicas (%d) <= max_replicas (%d)", s.App.MinReplicas, s.App.MaxReplicas)
	}
	if s.App.PDBMaxUnavailable < 1 {
		bad("smartscale.app.pdb_max_unavailable: must be >= 1, got %d", s.App.PDBMaxUnavailable)
	}
	if s.InitialWorkers < 0 || s.InitialWorkers > 100 {
		bad("smartscale.initial_workers: must be in [0, 100], got %d", s.InitialWorkers)
	}
	if s.HPA.TargetCPUPercent <= 0 || s.HPA.TargetCPUPercent > 100 {
		bad("smartscale.hpa.target_cpu_percent: must be in (0, 100], got %v", s.HPA.TargetCPUPercent)
	}
	if s.HPA.Tolerance < 0 || s.HPA.Tolerance >= 1 {
		bad("smartscale.hpa.tolerance: must be in [0, 1), got %v", s.HPA.Tolerance)
	}
	if d, err := parseDuration(s.HPA.SyncPeriodRaw); err != nil || d < time.Second {
		bad("smartscale.hpa.sync_period: want a duration >= 1s, got %q", s.HPA.SyncPeriodRaw)
	} else {
		s.HPA.SyncPeriod = d
	}
	if d, err := parseDuration(s.HPA.StabilizationRaw); err != nil {
		bad("smartscale.hpa.scale_down_stabilization: want a duration, got %q", s.HPA.StabilizationRaw)
	} else {
		s.HPA.ScaleDownStabilization = d
	}
	pos("slo.p95_ms", s.SLO.P95Ms)
	nonNeg("smartscale.slo.max_drop_percent", s.SLO.MaxDropPercent)
	pos("cloud.boot_median_seconds", s.Cloud.BootMedianS)
	pos("cloud.join_median_seconds", s.Cloud.JoinMedianS)
	if s.Cloud.BootP90S < s.Cloud.BootMedianS || s.Cloud.JoinP90S < s.Cloud.JoinMedianS {
		bad("smartscale.cloud: p90 latencies must be >= their medians")
	}
	nonNeg("smartscale.cloud.spot_interruption_scale", s.Cloud.SpotInterruptionScale)
	nonNeg("smartscale.cloud.spot_shortage_scale", s.Cloud.SpotShortageScale)
	if s.NoiseFraction < 0 || s.NoiseFraction > 0.5 {
		bad("smartscale.noise_fraction: must be in [0, 0.5], got %v", s.NoiseFraction)
	}
	s.Node.CPUCores = s.Node.CPUMillicores / 1000
	return errs
}
