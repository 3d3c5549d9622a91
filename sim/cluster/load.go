package cluster

import "time"

// StepResult is what one load step did.
type StepResult struct {
	Offered, Served, Dropped float64 // requests in the step
}

// Step advances the load model by dt at an offered rate (requests/s): the Service spreads
// requests evenly over ready pods; a pod's service rate is the CPU it can get (its limit,
// or its share of a saturated node) over the per-request CPU cost; M/M/1 response times
// go into hist; what a saturated pod cannot serve is dropped. It updates pod CPU (for the
// HPA), node CPU and memory (for the exporters) and the CPU counters.
func (c *Cluster) Step(dt time.Duration, rate float64, cpJitter float64, hist *Histogram) StepResult {
	secs := dt.Seconds()
	res := StepResult{Offered: rate * secs}
	app := c.cfg.App
	s := app.CPUMsPerRequest / 1000 // core-seconds per request
	limit := float64(app.CPULimitm) / 1000

	readyOn := map[*Node]int{}
	ready := 0
	for _, p := range c.pods {
		p.CPU, p.RPS = 0, 0
		if p.Ready && !p.Terminating && p.Node != nil && p.Node.Ready {
			readyOn[p.Node]++
			ready++
		}
	}
	lambda := 0.0
	if ready == 0 {
		res.Dropped = res.Offered
	} else {
		lambda = rate / float64(ready)
	}

	for _, n := range c.nodes {
		if n.ControlPlane {
			n.BusyCores = float64(n.Cores) * min(1, max(0, c.cfg.ControlPlane.CPUUsePct/100+cpJitter))
			n.MemUsedMiB = float64(c.cfg.ControlPlane.MemoryUseMiB)
			n.tick(secs)
			continue
		}
		sys := float64(n.Cores) * c.cfg.Node.SystemCPUUsePct / 100
		n.BusyCores, n.MemUsedMiB = 0, 0
		if n.Gone {
			n.tick(secs)
			continue
		}
		n.BusyCores, n.MemUsedMiB = sys, float64(c.cfg.Node.SystemMemUseMiB)
		k := readyOn[n]
		served := 0.0
		if k > 0 {
			avail := float64(n.Cores) - sys
			demand := float64(k) * lambda * s
			var supply float64
			if demand <= avail {
				supply = min(limit, lambda*s+(avail-demand)/float64(k))
			} else {
				supply = min(limit, avail/float64(k))
			}
			mu := supply / s
			served = min(lambda, mu)
			res.Served += served * secs * float64(k)
			res.Dropped += (lambda - served) * secs * float64(k)
			hist.Add(served*secs*float64(k), app.BaseLatencyMs, podLatency(lambda, mu))
		}
		for _, p := range c.pods {
			if p.Node != n {
				continue
			}
			n.MemUsedMiB += app.MemoryBaseMiB
			if p.Ready && !p.Terminating && n.Ready {
				p.RPS, p.CPU = served, served*s
				p.Served += served * secs
				p.Dropped += (lambda - served) * secs
				n.BusyCores += p.CPU
				n.MemUsedMiB += app.MemoryPerRPSMiB * served
			}
		}
		n.BusyCores = min(n.BusyCores, float64(n.Cores))
		n.tick(secs)
	}
	return res
}

// tick advances the node's CPU counters by secs at its current busy share.
func (n *Node) tick(secs float64) {
	if len(n.CPUSeconds) != n.Cores {
		n.CPUSeconds = make([][NumModes]float64, n.Cores)
	}
	f := 0.0
	if n.Cores > 0 {
		f = n.BusyCores / float64(n.Cores)
	}
	for c := range n.CPUSeconds {
		n.CPUSeconds[c][0] += secs * (1 - f)
		for m := 1; m < NumModes; m++ {
			n.CPUSeconds[c][m] += secs * f * busyShare[m]
		}
	}
}

// SyncHPA runs one HPA sync on the last load step's pod CPU.
func (c *Cluster) SyncHPA(now time.Time) {
	req := float64(c.cfg.App.CPURequestm) / 1000
	var util []float64
	unready := 0
	for _, p := range c.pods {
		switch {
		case p.Terminating:
		case p.Ready && p.Node != nil && p.Node.Ready:
			util = append(util, p.CPU/req)
		default:
			unready++
		}
	}
	if d := c.HPA.Desired(now, c.replicas, util, unready); d != c.replicas {
		c.SetReplicas(d)
	}
}
