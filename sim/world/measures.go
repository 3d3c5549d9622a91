package world

import (
	"math"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/cluster"
)

// Row is one simulated minute of the timeline.
type Row struct {
	Time             time.Time
	OfferedRPS       float64
	ServedRPS        float64
	DroppedRPS       float64
	DemandNodes      int // workers the offered load needs (HPA target, packed by requests)
	ReadyWorkers     int
	LaunchingWorkers int
	DrainingWorkers  int
	ReadyPods        int
	PendingPods      int // pods no node has room for
	CPUPercent       float64
	MemoryPercent    float64
	P95Ms            float64
	CostUSD          float64 // cumulative
	SLOViolated      bool
	Action           engine.Action // of the tick in this minute, if any
	Delta            int
	Reason           string
}

// Result is the outcome of a run.
type Result struct {
	Summary  Summary
	Timeline []Row
	Records  []engine.Record
	Events   []engine.Event
}

// Latency percentiles in ms.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// Summary holds the run's measures. It has no wall-clock figures, so it is byte-identical
// for the same seed and inputs.
type Summary struct {
	Scenario                    string         `json:"scenario"`
	Policy                      string         `json:"policy"`
	Seed                        uint64         `json:"seed"`
	SimulatedSeconds            float64        `json:"simulated_seconds"`
	CostUSD                     float64        `json:"cost_usd"`
	WorkerCostUSD               float64        `json:"worker_cost_usd"`
	MasterCostUSD               float64        `json:"master_cost_usd"`
	CostPerMonthUSD             float64        `json:"cost_per_month_usd"`
	NodeHours                   float64        `json:"node_hours"`
	PendingPodSeconds           float64        `json:"pending_pod_seconds"`
	UnderprovisionedNodeSeconds float64        `json:"underprovisioned_node_seconds"`
	Latency                     Latency        `json:"latency_ms"`
	SLOViolationMinutes         int            `json:"slo_violation_minutes"`
	TotalRequests               float64        `json:"total_requests"`
	DroppedRequests             float64        `json:"dropped_requests"`
	ScaleUps                    int            `json:"scale_ups"`
	ScaleDowns                  int            `json:"scale_downs"`
	Flaps                       int            `json:"flaps"`
	MaxWorkers                  int            `json:"max_workers"`
	MinWorkers                  int            `json:"min_workers"`
	Ticks                       int            `json:"ticks"`
	AlertTicks                  int            `json:"alert_ticks,omitempty"` // ticks alerts asked for (alert_ticks)
	Decisions                   map[string]int `json:"decisions"`
	TickErrors                  int            `json:"tick_errors"`
	Evictions                   int            `json:"evictions"`
	EvictionsBlocked            int            `json:"evictions_blocked"`
	// FaultsInjected and InvariantViolations are set by chaos runs only (sim/chaos):
	// faults fired per kind, and the invariants broken ([] when all hold).
	FaultsInjected      map[string]int `json:"faults_injected,omitzero"`
	InvariantViolations []string       `json:"invariant_violations,omitzero"`
}

type measures struct {
	rows                     []Row
	records                  []engine.Record
	minuteHist, totalHist    cluster.Histogram
	mOffered, mServed, mDrop float64
	mSteps                   int
	mTick                    *engine.Record
	offered, dropped         float64
	pendingPodSec, underSec  float64
	sloMinutes               int
	maxW, minW               int
	tickErrors               int
	alertTicks               int
	decisions                map[string]int
}

func (m *measures) init(w *World) {
	m.minW = math.MaxInt
	m.decisions = map[string]int{}
	m.observeWorkers(w)
}

// Workers counts the managed workers: instances pending or running (ready + launching).
func (w *World) Workers() int {
	n := 0
	for _, in := range w.Cloud.All() {
		if in.Managed && (in.State == engine.InstancePending || in.State == engine.InstanceRunning) {
			n++
		}
	}
	return n
}

// ReadyWorkers counts Ready worker nodes that take pods.
func (w *World) ReadyWorkers() (ready, draining int) {
	for _, n := range w.Cluster.AllNodes() {
		if n.ControlPlane || n.Gone {
			continue
		}
		if n.Unschedulable {
			draining++
		} else if n.Ready {
			ready++
		}
	}
	return ready, draining
}

func (m *measures) observeWorkers(w *World) {
	n := w.Workers()
	m.maxW, m.minW = max(m.maxW, n), min(m.minW, n)
}

func (m *measures) step(w *World, res cluster.StepResult, rate float64) {
	secs := ScrapeInterval.Seconds()
	m.mOffered += res.Offered
	m.mServed += res.Served
	m.mDrop += res.Dropped
	m.mSteps++
	m.offered += res.Offered
	m.dropped += res.Dropped
	m.pendingPodSec += float64(w.Cluster.Unschedulable()) * secs
	ready, _ := w.ReadyWorkers()
	if d := cluster.DemandNodes(w.Sim, rate); d > ready {
		m.underSec += float64(d-ready) * secs
	}
	m.observeWorkers(w)
}

func (m *measures) tick(rec engine.Record, err error) {
	if err != nil {
		m.tickErrors++
	}
	m.records = append(m.records, rec)
	m.decisions[string(rec.Decision.Action)]++
	m.mTick = &m.records[len(m.records)-1]
}

func (m *measures) minute(w *World) {
	secs := float64(m.mSteps) * ScrapeInterval.Seconds()
	if secs == 0 {
		return
	}
	ready, draining := w.ReadyWorkers()
	row := Row{
		Time:       w.Loop.Now(),
		OfferedRPS: m.mOffered / secs, ServedRPS: m.mServed / secs, DroppedRPS: m.mDrop / secs,
		DemandNodes:  cluster.DemandNodes(w.Sim, w.Cfg.Scenario.RateAt(w.Loop.Now().Sub(Epoch))),
		ReadyWorkers: ready, DrainingWorkers: draining,
		LaunchingWorkers: max(0, w.Workers()-ready-draining),
		ReadyPods:        w.Cluster.ReadyPods(), PendingPods: w.Cluster.Unschedulable(),
		P95Ms: m.minuteHist.Quantile(0.95), CostUSD: w.Cost(),
	}
	var busy, cores, memUsed, memTotal float64
	for _, n := range w.Cluster.AllNodes() {
		if n.Gone {
			continue
		}
		busy += n.BusyCores
		cores += float64(n.Cores)
		memUsed += n.MemUsedMiB
		memTotal += n.MemTotalMiB
	}
	if cores > 0 {
		row.CPUPercent = 100 * busy / cores
	}
	if memTotal > 0 {
		row.MemoryPercent = 100 * memUsed / memTotal
	}
	dropPct := 0.0
	if m.mOffered > 0 {
		dropPct = 100 * m.mDrop / m.mOffered
	}
	row.SLOViolated = row.P95Ms > w.Sim.SLO.P95Ms || dropPct > w.Sim.SLO.MaxDropPercent
	if row.SLOViolated {
		m.sloMinutes++
	}
	if m.mTick != nil {
		row.Action, row.Delta, row.Reason = m.mTick.Decision.Action, m.mTick.Decision.Delta, m.mTick.Decision.Reason
	}
	m.rows = append(m.rows, row)
	m.totalHist.Merge(&m.minuteHist)
	m.minuteHist.Reset()
	m.mOffered, m.mServed, m.mDrop, m.mSteps, m.mTick = 0, 0, 0, 0, nil
}

func (m *measures) result(w *World) *Result {
	now := w.Loop.Now()
	simSecs := now.Sub(Epoch).Seconds()
	worker := w.Cloud.Cost(now)
	master := w.masterPrice * now.Sub(Epoch).Hours()
	s := Summary{
		Scenario: w.Cfg.Scenario.Name, Policy: w.Cfg.Name, Seed: w.Cfg.Seed,
		SimulatedSeconds: simSecs,
		CostUSD:          round6(worker + master), WorkerCostUSD: round6(worker), MasterCostUSD: round6(master),
		NodeHours:                   round6(w.Cloud.NodeSeconds(now) / 3600),
		PendingPodSeconds:           round6(m.pendingPodSec),
		UnderprovisionedNodeSeconds: round6(m.underSec),
		Latency: Latency{P50: round6(m.totalHist.Quantile(0.50)), P95: round6(m.totalHist.Quantile(0.95)),
			P99: round6(m.totalHist.Quantile(0.99))},
		SLOViolationMinutes: m.sloMinutes,
		TotalRequests:       math.Round(m.offered), DroppedRequests: math.Round(m.dropped),
		MaxWorkers: m.maxW, MinWorkers: m.minW,
		Ticks: len(m.records), Decisions: m.decisions, TickErrors: m.tickErrors,
		Evictions: w.Cluster.Evictions, EvictionsBlocked: w.Cluster.EvictionsBlocked,
	}
	if simSecs > 0 {
		s.CostPerMonthUSD = round6((worker + master) / simSecs * 30 * 86400)
	}
	var ups, downs []time.Time
	for _, ev := range w.Events {
		switch ev.Kind {
		case engine.EventScaleUp:
			s.ScaleUps++
			ups = append(ups, ev.Time)
		case engine.EventScaleDown:
			s.ScaleDowns++
			downs = append(downs, ev.Time)
		}
	}
	s.Flaps = Flaps(ups, downs, 10*time.Minute)
	s.AlertTicks = m.alertTicks
	return &Result{Summary: s, Timeline: m.rows, Records: m.records, Events: w.Events}
}

// Flaps counts scale-ups followed by a scale-down (or the reverse) within window.
func Flaps(ups, downs []time.Time, window time.Duration) int {
	type ev struct {
		t  time.Time
		up bool
	}
	var all []ev
	for _, t := range ups {
		all = append(all, ev{t, true})
	}
	for _, t := range downs {
		all = append(all, ev{t, false})
	}
	// insertion sort: few events, stable for equal times
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && all[j].t.Before(all[j-1].t); j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	n := 0
	for i := 1; i < len(all); i++ {
		if all[i].up != all[i-1].up && all[i].t.Sub(all[i-1].t) <= window {
			n++
		}
	}
	return n
}
