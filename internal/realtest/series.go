package realtest

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// CPUModes are node-exporter's modes of node_cpu_seconds_total, with the share of busy time
// each non-idle mode gets in the generated series (user and system dominate, the rest sit
// near zero, as on a real node).
var CPUModes = []struct {
	Mode  string
	Share float64
}{
	{"user", 0.70}, {"system", 0.20}, {"iowait", 0.04}, {"softirq", 0.03},
	{"irq", 0.01}, {"steal", 0.01}, {"nice", 0.01},
}

// Cluster describes the node-exporter and kube-state-metrics series of a small cluster, for
// backfilling a real Prometheus. Functions take the offset from Start.
type Cluster struct {
	Start    time.Time
	Duration time.Duration
	Step     time.Duration                   // scrape interval; default 15s
	Nodes    []string                        // node names; the first is the control plane
	CPUs     int                             // per node; default 2
	Busy     func(off time.Duration) float64 // busy fraction of every CPU, 0..1
	MemUsed  func(off time.Duration) float64 // used memory fraction, 0..1
	Pending  func(off time.Duration) int     // pending pods
	// ExporterStop, when set, ends the node-exporter series at this offset (stale data).
	ExporterStop time.Duration
}

// OpenMetrics renders the series as OpenMetrics text with timestamps in seconds, ending
// with "# EOF".
func (c Cluster) OpenMetrics() string {
	step := c.Step
	if step <= 0 {
		step = 15 * time.Second
	}
	cpus := c.CPUs
	if cpus <= 0 {
		cpus = 2
	}
	var b strings.Builder
	n := int(c.Duration/step) + 1
	expEnd := n
	if c.ExporterStop > 0 {
		expEnd = min(n, int(c.ExporterStop/step)+1)
	}
	ts := func(i int) string { return fmt.Sprintf("%d", c.Start.Add(time.Duration(i)*step).Unix()) }

	b.WriteString("# TYPE node_cpu_seconds counter\n")
	modes := append([]string{"idle"}, func() []string {
		var m []string
		for _, cm := range CPUModes {
			m = append(m, cm.Mode)
		}
		return m
	}()...)
	sort.Strings(modes)
	for ni, node := range c.Nodes {
		for cpu := 0; cpu < cpus; cpu++ {
			for _, mode := range modes {
				v := 1000.0 * float64(ni+cpu+1)
				for i := 0; i < expEnd; i++ {
					if i > 0 {
						busy := c.Busy(time.Duration(i) * step)
						v += step.Seconds() * share(mode, busy)
					}
					fmt.Fprintf(&b, "node_cpu_seconds_total{cpu=\"%d\",instance=\"%s:9100\",job=\"node-exporter\",mode=\"%s\"} %.3f %s\n", cpu, node, mode, v, ts(i))
				}
			}
		}
	}
	const total = 4 << 30
	b.WriteString("# TYPE node_memory_MemTotal_bytes gauge\n")
	for _, node := range c.Nodes {
		for i := 0; i < expEnd; i++ {
			fmt.Fprintf(&b, "node_memory_MemTotal_bytes{instance=\"%s:9100\",job=\"node-exporter\"} %d %s\n", node, total, ts(i))
		}
	}
	b.WriteString("# TYPE node_memory_MemAvailable_bytes gauge\n")
	for _, node := range c.Nodes {
		for i := 0; i < expEnd; i++ {
			used := c.MemUsed(time.Duration(i) * step)
			fmt.Fprintf(&b, "node_memory_MemAvailable_bytes{instance=\"%s:9100\",job=\"node-exporter\"} %.0f %s\n", node, total*(1-used), ts(i))
		}
	}
	b.WriteString("# TYPE kube_node_info gauge\n")
	for _, node := range c.Nodes {
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "kube_node_info{job=\"kube-state-metrics\",node=\"%s\"} 1 %s\n", node, ts(i))
		}
	}
	// Four pods whose phase flips between Running and Pending as Pending(off) asks.
	b.WriteString("# TYPE kube_pod_status_phase gauge\n")
	const pods = 4
	for p := 0; p < pods; p++ {
		for _, phase := range []string{"Pending", "Running"} {
			for i := 0; i < n; i++ {
				pending := c.Pending(time.Duration(i)*step) > p
				v := 0
				if (phase == "Pending") == pending {
					v = 1
				}
				fmt.Fprintf(&b, "kube_pod_status_phase{job=\"kube-state-metrics\",namespace=\"default\",phase=\"%s\",pod=\"web-%d\"} %d %s\n", phase, p, v, ts(i))
			}
		}
	}
	b.WriteString("# EOF\n")
	return b.String()
}

func share(mode string, busy float64) float64 {
	if mode == "idle" {
		return 1 - busy
	}
	for _, cm := range CPUModes {
		if cm.Mode == mode {
			return busy * cm.Share
		}
	}
	return 0
}

// Const returns a function with the same value at every offset.
func Const[T any](v T) func(time.Duration) T { return func(time.Duration) T { return v } }

// Busy is the runtime tests' standard hour from start: a control plane and two workers with
// 2 CPUs each, CPU 20% busy for 30 minutes then 78%, memory 40% used, 2 pods pending from
// minute 40.
func Busy(start time.Time) Cluster {
	return Cluster{
		Start: start, Duration: time.Hour, Nodes: []string{"master", "worker-1", "worker-2"},
		Busy: func(off time.Duration) float64 {
			if off < 30*time.Minute {
				return 0.20
			}
			return 0.78
		},
		MemUsed: Const(0.40),
		Pending: func(off time.Duration) int {
			if off < 40*time.Minute {
				return 0
			}
			return 2
		},
	}
}
