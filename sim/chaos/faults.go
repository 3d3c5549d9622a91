package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/cloud"
	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/world"
)

// setup installs the world-side faults and the invariant checks. It runs before the first
// event and before the autoscaler is built.
func (h *Harness) setup(w *world.World) {
	h.w, h.pol = w, w.Cfg.Policy
	h.chk = newChecker(h)
	h.installStore()
	h.installCloud()
	h.installCluster()
	h.installWindows()
	w.Metrics = &promPort{inner: w.Metrics, h: h, names: readingsByQuery(h.pol)}
	w.State.OnWrite = h.chk.onWrite
	w.AfterStep = h.chk.afterStep
}

func (h *Harness) installStore() {
	h.w.State.Fault = func(op string) (error, bool) {
		if op == "acquire" {
			if _, ok := h.active(LockHeld); ok {
				h.inject(LockHeld)
				return engine.ErrLockHeld, false
			}
		}
		if _, ok := h.active(StoreThrottle); ok && h.chance(3) {
			h.inject(StoreThrottle)
			return &engine.CloudError{Kind: engine.KindThrottled, Code: "ProvisionedThroughputExceededException",
				Err: fmt.Errorf("dynamodb %s throttled", op)}, false
		}
		if _, ok := h.active(StoreLostResponse); ok && op != "load" && h.chance(3) {
			h.inject(StoreLostResponse)
			return fmt.Errorf("dynamodb %s: %w", op, errLostResponse), true
		}
		return nil, false
	}
}

var errLostResponse = errors.New("request timed out after the write was applied (response lost)")

func (h *Harness) installCloud() {
	c := h.w.Cloud
	c.LaunchFault = func(req engine.LaunchRequest) (error, bool) {
		if f, ok := h.active(EC2Capacity); ok && req.Offering == pick(world.Offerings, f.Param) {
			h.inject(EC2Capacity)
			return &engine.CloudError{Kind: engine.KindCapacity, Code: "InsufficientInstanceCapacity", Offering: req.Offering,
				Err: errors.New("we currently do not have sufficient capacity in the requested availability zone")}, false
		}
		if f, ok := h.active(EC2Unsupported); ok && req.Offering == pick(world.Offerings, f.Param) {
			h.inject(EC2Unsupported)
			return &engine.CloudError{Kind: engine.KindUnsupported, Code: "Unsupported", Offering: req.Offering,
				Err: errors.New("the requested configuration is currently not supported")}, false
		}
		if f, ok := h.active(EC2Quota); ok {
			h.inject(EC2Quota)
			code := "InstanceLimitExceeded"
			if f.Param%2 == 1 {
				code = "VcpuLimitExceeded"
			}
			return &engine.CloudError{Kind: engine.KindQuota, Code: code, Offering: req.Offering,
				Err: errors.New("you have requested more instances than your current limit allows")}, false
		}
		if _, ok := h.active(EC2Throttle); ok && h.chance(2) {
			h.inject(EC2Throttle)
			return throttled("RunInstances"), false
		}
		if _, ok := h.active(EC2LaunchThenFail); ok {
			h.inject(EC2LaunchThenFail)
			return &engine.CloudError{Kind: engine.KindOther, Code: "InternalError",
				Err: errors.New("RunInstances: connection reset after the request was accepted")}, true
		}
		return nil, false
	}
	c.TerminateFault = func([]string) error {
		if _, ok := h.active(EC2Throttle); ok && h.chance(2) {
			h.inject(EC2Throttle)
			return throttled("TerminateInstances")
		}
		return nil
	}
	c.ListFault = func(list []engine.Instance) ([]engine.Instance, error) {
		if _, ok := h.active(EC2Throttle); ok && h.chance(4) {
			h.inject(EC2Throttle)
			return nil, throttled("DescribeInstances")
		}
		if f, ok := h.active(EC2DescribeLag); ok {
			lag := time.Duration(60+f.Param%120) * time.Second
			now := h.w.Loop.Now()
			out := list[:0:0]
			for _, in := range list {
				if now.Sub(in.LaunchedAt) < lag {
					h.inject(EC2DescribeLag)
					continue
				}
				out = append(out, in)
			}
			return out, nil
		}
		return list, nil
	}
	neverJoin := map[string]bool{}
	c.BootDelay = func(in *cloud.Instance, drawn time.Duration) time.Duration {
		if _, ok := h.active(NodeNeverReady); ok {
			h.inject(NodeNeverReady)
			neverJoin[in.ID] = true
		}
		if f, ok := h.active(SlowBoot); ok {
			h.inject(SlowBoot)
			return drawn * time.Duration(3+f.Param%5)
		}
		return drawn
	}
	onRunning := c.OnRunning
	c.OnRunning = func(in *cloud.Instance) {
		if neverJoin[in.ID] {
			return // the K3s agent never joins: running, billed, no node
		}
		if onRunning != nil {
			onRunning(in)
		}
	}
}

func throttled(call string) error {
	return &engine.CloudError{Kind: engine.KindThrottled, Code: "RequestLimitExceeded", Err: fmt.Errorf("%s: request limit exceeded", call)}
}

func pick[T any](xs []T, p uint32) T { return xs[int(p)%len(xs)] }

func (h *Harness) installCluster() {
	cl := h.w.Cluster
	cl.EvictFault = func(p *cluster.Pod) bool {
		if _, ok := h.active(PDB429); ok {
			h.inject(PDB429)
			return true
		}
		h.chk.checkEviction(p)
		return false
	}
}

// installWindows schedules the faults that happen at a moment rather than on a call.
func (h *Harness) installWindows() {
	w := h.w
	for _, f := range h.Schedule {
		start, end := world.Epoch.Add(f.At), world.Epoch.Add(f.End())
		switch f.Kind {
		case SpotInterruption:
			w.Loop.At(start, func() {
				var cands []*cloud.Instance
				for _, in := range w.Cloud.All() {
					if in.Managed && in.State == engine.InstanceRunning {
						cands = append(cands, in)
					}
				}
				if len(cands) == 0 {
					return
				}
				victim := cands[h.rng.IntN(len(cands))].ID
				w.Loop.At(end, func() {
					if in, ok := w.Cloud.Get(victim); ok && in.State == engine.InstanceRunning {
						h.inject(SpotInterruption)
						w.Cloud.Interrupt(victim)
						h.chk.disturbed()
					}
				})
			})
		case PodIgnoresSIGTERM:
			w.Loop.At(start, func() {
				w.Cluster.PodsIgnoreSIGTERM = true
				for _, p := range w.Cluster.Pods() {
					if !p.IgnoreSIGTERM {
						p.IgnoreSIGTERM = true
						h.inject(PodIgnoresSIGTERM)
					}
				}
			})
			w.Loop.At(end, func() { w.Cluster.PodsIgnoreSIGTERM = false })
		case NodesNotReady:
			var hit []string
			w.Loop.At(start, func() {
				var ready []string
				for _, n := range w.Cluster.AllNodes() {
					if !n.ControlPlane && n.Ready && !n.Gone {
						ready = append(ready, n.Name)
					}
				}
				h.rng.Shuffle(len(ready), func(i, j int) { ready[i], ready[j] = ready[j], ready[i] })
				hit = ready[:(len(ready)+1)/2]
				for _, n := range hit {
					h.inject(NodesNotReady)
					w.Cluster.SetNodeReady(n, false)
				}
			})
			w.Loop.At(end, func() {
				for _, n := range hit {
					w.Cluster.SetNodeReady(n, true)
				}
			})
		default:
			h.installSpotWindow(f)  // spot.go
			h.installAlertWindow(f) // alerts.go
		}
	}
}

// promPort is the Metrics port with the Prometheus faults.
type promPort struct {
	inner engine.Metrics
	h     *Harness
	names map[string]string // expanded query -> reading name
}

var _ engine.Metrics = (*promPort)(nil)

var promKinds = []string{PromEmpty, PromNaN, PromStale, Prom5xx, Prom422, PromTimeout, PromPartial}

func readingsByQuery(p engine.Policy) map[string]string {
	m := map[string]string{}
	for _, n := range engine.QueryNames() {
		m[p.Expand(n)] = n
	}
	return m
}

// hits reports whether a fault's Param selects the reading: a non-empty subset of the
// readings (all of them for stale data).
func hits(f Fault, reading string) bool {
	if f.Kind == PromStale {
		return true
	}
	mask := f.Param%255 + 1
	for i, n := range engine.QueryNames() {
		if n == reading {
			return mask&(1<<i) != 0
		}
	}
	return false
}

func (m *promPort) Query(ctx context.Context, q string, at time.Time) (engine.Sample, error) {
	name := m.names[q]
	for _, kind := range promKinds {
		f, ok := m.h.active(kind)
		if !ok || !hits(f, name) {
			continue
		}
		m.h.inject(kind)
		if inv := m.h.cur; inv != nil {
			inv.promFaulted = true
		}
		merr := func(p engine.MetricProblem, err error) error {
			return &engine.MetricError{Problem: p, Query: q, Err: err}
		}
		switch kind {
		case PromEmpty:
			return engine.Sample{}, merr(engine.ProblemEmpty, errors.New("empty vector: no series in the lookback"))
		case PromNaN:
			v := math.NaN()
			if f.Param%2 == 1 {
				v = math.Inf(1)
			}
			return engine.Sample{Value: v, Time: at}, nil
		case PromStale:
			age := m.h.pol.MaxMetricAge + time.Duration(30+f.Param%600)*time.Second
			s, err := m.inner.Query(ctx, q, at.Add(-age))
			if err == nil && name == engine.ReadingMetricAge {
				s.Value += age.Seconds()
			}
			return s, err
		case Prom5xx:
			return engine.Sample{}, merr(engine.ProblemHTTP, errors.New("server error 503: service unavailable"))
		case Prom422:
			return engine.Sample{}, merr(engine.ProblemHTTP, errors.New("422 unprocessable entity: query processing would load too many samples into memory"))
		case PromTimeout:
			return engine.Sample{}, fmt.Errorf("prometheus query: %w", context.DeadlineExceeded)
		case PromPartial:
			s, err := m.inner.Query(ctx, q, at)
			s.Warnings = append(s.Warnings, "partial response: 1 of 2 Prometheus replicas did not answer")
			return s, err
		}
	}
	return m.inner.Query(ctx, q, at)
}

// notifyPort is the Notifier port with SNS / Slack down.
type notifyPort struct {
	inner engine.Notifier
	h     *Harness
}

func (n *notifyPort) Notify(ctx context.Context, ev engine.Event) error {
	err := n.inner.Notify(ctx, ev) // the world keeps the events for its measures either way
	if _, ok := n.h.active(NotifyDown); ok {
		n.h.inject(NotifyDown)
		return errors.New("sns publish: 503 service unavailable")
	}
	return err
}
