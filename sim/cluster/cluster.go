// Package cluster is the simulated K3s cluster: nodes with allocatable CPU and memory,
// system pods, the demo Deployment with its HPA, a scheduler that leaves unplaceable pods
// Pending, PodDisruptionBudget-respecting drain, and the load and latency model. It
// implements engine.Cluster.
package cluster

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/event"
)

// Node is a simulated node.
type Node struct {
	Name          string
	InstanceID    string
	IP            string
	ControlPlane  bool
	Created       time.Time
	Ready         bool
	Unschedulable bool
	Gone          bool // its instance is terminated
	Cores         int
	MemTotalMiB   float64
	AllocCPUm     int
	AllocMemMiB   int

	// from the last load step
	BusyCores  float64
	MemUsedMiB float64
	// CPUSeconds are node_cpu_seconds_total counters per CPU and mode.
	CPUSeconds [][NumModes]float64
}

// Pod is a pod of the demo Deployment.
type Pod struct {
	Name          string
	Node          *Node // nil while unscheduled
	Created       time.Time
	Started       bool // containers started: phase Running
	Ready         bool
	Terminating   bool
	IgnoreSIGTERM bool
	CPU           float64 // cores used in the last load step
	RPS           float64 // requests/s served in the last load step
	// Served and Dropped count the requests the pod answered and turned away (the demo
	// app's http_requests_total by code 200 and 503).
	Served, Dropped float64
}

// Phase is the pod's Kubernetes phase.
func (p *Pod) Phase() string {
	if p.Started {
		return "Running"
	}
	return "Pending"
}

// CPU modes of node_cpu_seconds_total, and the share of busy time in each non-idle mode.
const NumModes = 8

var (
	Modes     = [NumModes]string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	busyShare = [NumModes]float64{0, 0.03, 0.02, 0.01, 0.04, 0.02, 0.20, 0.68}
)

// Cluster is the simulated cluster.
type Cluster struct {
	loop *event.Loop
	rng  *rand.Rand
	cfg  scenarios.Sim

	nodes    []*Node
	pods     []*Pod
	replicas int
	podSeq   int
	nodeSeq  int
	HPA      *HPA

	// Drain bookkeeping: a Drain call keeps evicting (retrying refusals every 5 s) for
	// DrainWindow of virtual time, like one bounded `kubectl drain` run inside a tick.
	drainUntil  map[string]time.Time
	DrainWindow time.Duration

	// Counters for measures and invariants.
	Evictions, EvictionsBlocked int
	PDBViolations               int
	TerminatedWithPods          int

	// EvictFault, when set, may refuse an eviction with 429 even when the PDB allows it.
	EvictFault func(pod *Pod) bool
	// PodsIgnoreSIGTERM makes new pods ignore SIGTERM (they exit after the grace period).
	PodsIgnoreSIGTERM bool
	// OnPodDeleted, when set, sees every pod removed from the cluster.
	OnPodDeleted func(pod *Pod)
}

var _ engine.Cluster = (*Cluster)(nil)

// New returns a cluster with its control-plane node and the Deployment at min replicas.
func New(loop *event.Loop, rng *rand.Rand, cfg scenarios.Sim) *Cluster {
	c := &Cluster{loop: loop, rng: rng, cfg: cfg, drainUntil: map[string]time.Time{}, DrainWindow: time.Minute,
		HPA: &HPA{TargetPercent: cfg.HPA.TargetCPUPercent, Tolerance: cfg.HPA.Tolerance,
			Min: cfg.App.MinReplicas, Max: cfg.App.MaxReplicas, Window: cfg.HPA.ScaleDownStabilization}}
	cp := c.newNode("", true)
	cp.Name, cp.Ready = "k3s-master", true
	cp.Cores, cp.MemTotalMiB = cfg.ControlPlane.CPUMillicores/1000, float64(cfg.ControlPlane.MemoryMiB)
	c.replicas = cfg.App.MinReplicas
	c.reconcile()
	return c
}

func (c *Cluster) newNode(instanceID string, controlPlane bool) *Node {
	c.nodeSeq++
	a, b := 1+c.nodeSeq/200, 10+c.nodeSeq%200
	n := &Node{Name: fmt.Sprintf("ip-10-0-%d-%d", a, b), IP: fmt.Sprintf("10.0.%d.%d", a, b),
		InstanceID: instanceID, ControlPlane: controlPlane, Created: c.loop.Now(),
		Cores: c.cfg.Node.CPUMillicores / 1000, MemTotalMiB: float64(c.cfg.Node.MemoryMiB),
		AllocCPUm: c.cfg.Node.AllocatableCPUm, AllocMemMiB: c.cfg.Node.AllocatableMemMiB}
	c.nodes = append(c.nodes, n)
	return n
}

// Register adds a worker node for an instance (the K3s agent joined). It turns Ready after
// readyDelay (0: Ready at once).
func (c *Cluster) Register(instanceID string, readyDelay time.Duration) *Node {
	n := c.newNode(instanceID, false)
	if readyDelay <= 0 {
		n.Ready = true
		c.schedule()
		return n
	}
	c.loop.After(readyDelay, func() {
		if !n.Gone && c.has(n) {
			n.Ready = true
			c.schedule()
		}
	})
	return n
}

func (c *Cluster) has(n *Node) bool { return slices.Contains(c.nodes, n) }

// NodeByInstance returns the node of an instance.
func (c *Cluster) NodeByInstance(id string) *Node {
	for _, n := range c.nodes {
		if n.InstanceID == id && id != "" {
			return n
		}
	}
	return nil
}

func (c *Cluster) node(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// InstanceGone marks the node of a terminated instance NotReady. Pods still on it stop
// serving at once; they are replaced after Kubernetes' 300 s not-ready toleration.
func (c *Cluster) InstanceGone(id string) {
	n := c.NodeByInstance(id)
	if n == nil {
		return
	}
	n.Gone, n.Ready = true, false
	for _, p := range c.pods {
		if p.Node == n {
			c.TerminatedWithPods++
			p.Ready = false
		}
	}
	c.loop.After(300*time.Second, func() { c.evictFrom(n) })
}

// SetNodeReady flips a node's Ready condition (chaos: nodes NotReady at once).
func (c *Cluster) SetNodeReady(name string, ready bool) {
	n := c.node(name)
	if n == nil || n.Gone {
		return
	}
	n.Ready = ready
	for _, p := range c.pods {
		if p.Node == n && p.Started && !p.Terminating {
			p.Ready = ready
		}
	}
	if ready {
		c.schedule()
	}
}

func (c *Cluster) evictFrom(n *Node) {
	for _, p := range slices.Clone(c.pods) {
		if p.Node == n && !n.Ready {
			c.remove(p)
		}
	}
	c.reconcile()
}

// Nodes implements engine.Cluster.
func (c *Cluster) Nodes(context.Context) ([]engine.Node, error) {
	out := make([]engine.Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		en := engine.Node{Name: n.Name, InstanceID: n.InstanceID, Ready: n.Ready, Unschedulable: n.Unschedulable,
			ControlPlane: n.ControlPlane, CreatedAt: n.Created}
		for _, p := range c.pods {
			if p.Node == n {
				en.Pods++
			}
		}
		out = append(out, en)
	}
	return out, nil
}

// Resources implements engine.Cluster: the pods no node had room for (the scheduler runs on
// every change, so an unbound pod is unschedulable) and each registered node's allocatable
// resources with the requests bound to it; the system pods' requests stand for the node's
// DaemonSet pods.
func (c *Cluster) Resources(context.Context) (engine.ClusterResources, error) {
	const mib = 1 << 20
	app := engine.Resources{MilliCPU: int64(c.cfg.App.CPURequestm), Memory: int64(c.cfg.App.MemoryRequestMiB) * mib, Pods: 1}
	var out engine.ClusterResources
	for _, p := range c.pods {
		if p.Node == nil && !p.Terminating {
			out.Pending = append(out.Pending, engine.PendingPod{Namespace: "default", Name: p.Name, Requests: app, Since: p.Created})
		}
	}
	for _, n := range c.nodes {
		if n.Gone {
			continue
		}
		nr := engine.NodeResources{Node: n.Name, InstanceType: c.cfg.Node.InstanceType,
			Allocatable: engine.Resources{MilliCPU: int64(n.AllocCPUm), Memory: int64(n.AllocMemMiB) * mib, Pods: maxPodsPerNode}}
		if n.ControlPlane {
			nr.InstanceType = c.cfg.ControlPlane.InstanceType
			nr.Allocatable = engine.Resources{MilliCPU: int64(c.cfg.ControlPlane.CPUMillicores), Memory: int64(c.cfg.ControlPlane.MemoryMiB) * mib, Pods: maxPodsPerNode}
		} else {
			nr.DaemonSet = engine.Resources{MilliCPU: int64(c.cfg.Node.SystemCPUm), Memory: int64(c.cfg.Node.SystemMemMiB) * mib, Pods: systemPodsPerNode}
		}
		nr.Requested = nr.DaemonSet
		for _, p := range c.pods {
			if p.Node == n {
				nr.Requested = nr.Requested.Add(app)
				nr.AddPod(app)
			}
		}
		out.Nodes = append(out.Nodes, nr)
	}
	return out, nil
}

// K3s' kubelet default pod limit, and the DaemonSet pods the simulated system requests
// stand for (node-exporter, the K3s service load balancer).
const (
	maxPodsPerNode    = 110
	systemPodsPerNode = 2
)

// AllNodes returns the registered nodes (read-only).
func (c *Cluster) AllNodes() []*Node { return c.nodes }

// Pods returns the live pods (read-only).
func (c *Cluster) Pods() []*Pod { return c.pods }

// Replicas is the Deployment's desired replica count.
func (c *Cluster) Replicas() int { return c.replicas }

func notFound(name string) error {
	return &engine.CloudError{Kind: engine.KindNotFound, Code: "NotFound", Err: fmt.Errorf("node %s", name)}
}

// Cordon implements engine.Cluster.
func (c *Cluster) Cordon(_ context.Context, name string) error {
	n := c.node(name)
	if n == nil {
		return notFound(name)
	}
	n.Unschedulable = true
	return nil
}

// Uncordon implements engine.Cluster.
func (c *Cluster) Uncordon(_ context.Context, name string) error {
	n := c.node(name)
	if n == nil {
		return notFound(name)
	}
	n.Unschedulable = false
	delete(c.drainUntil, name)
	c.schedule()
	return nil
}

// Delete implements engine.Cluster: the node object goes; pods still bound to it go too.
func (c *Cluster) Delete(_ context.Context, name string) error {
	n := c.node(name)
	if n == nil {
		return notFound(name)
	}
	for _, p := range slices.Clone(c.pods) {
		if p.Node == n {
			c.remove(p)
		}
	}
	c.nodes = slices.DeleteFunc(c.nodes, func(x *Node) bool { return x == n })
	delete(c.drainUntil, name)
	c.reconcile()
	return nil
}

// Drain implements engine.Cluster: evict what the PodDisruptionBudget allows now, keep
// retrying every 5 s for DrainWindow, and report what is left.
func (c *Cluster) Drain(_ context.Context, name string) (engine.DrainStatus, error) {
	n := c.node(name)
	if n == nil {
		return engine.DrainStatus{}, notFound(name)
	}
	if !n.Unschedulable {
		return engine.DrainStatus{}, fmt.Errorf("node %s is not cordoned", name)
	}
	st := c.evictPass(n)
	until := c.loop.Now().Add(c.DrainWindow)
	if old, ok := c.drainUntil[name]; !ok || old.Before(c.loop.Now()) {
		c.drainUntil[name] = until
		var retry func()
		retry = func() {
			if u, ok := c.drainUntil[name]; !ok || c.loop.Now().After(u) || c.node(name) == nil {
				return
			}
			c.evictPass(n)
			c.loop.After(5*time.Second, retry)
		}
		c.loop.After(5*time.Second, retry)
	} else {
		c.drainUntil[name] = until
	}
	return st, nil
}

// evictPass tries to evict every pod of the node once.
func (c *Cluster) evictPass(n *Node) engine.DrainStatus {
	var st engine.DrainStatus
	for _, p := range slices.Clone(c.pods) {
		if p.Node != n || p.Terminating {
			continue
		}
		if !c.pdbAllows() || (c.EvictFault != nil && c.EvictFault(p)) {
			st.Blocked++
			c.EvictionsBlocked++
			continue
		}
		c.Evictions++
		st.Evicted++
		c.terminate(p)
	}
	c.reconcile()
	for _, p := range c.pods {
		if p.Node == n {
			st.Remaining++
		}
	}
	st.Done = st.Remaining == 0
	return st
}

// healthy counts ready, non-terminating pods.
func (c *Cluster) healthy() int {
	h := 0
	for _, p := range c.pods {
		if p.Ready && !p.Terminating {
			h++
		}
	}
	return h
}

// pdbAllows: an eviction is allowed while healthy pods exceed replicas - maxUnavailable.
func (c *Cluster) pdbAllows() bool {
	return c.healthy()-1 >= c.replicas-c.cfg.App.PDBMaxUnavailable
}

// terminate starts a pod's graceful termination: it leaves the Service at once and is
// gone after it exits (2 s), or after the grace period when it ignores SIGTERM.
func (c *Cluster) terminate(p *Pod) {
	if p.Terminating {
		return
	}
	p.Terminating, p.Ready = true, false
	exit := 2 * time.Second
	if p.IgnoreSIGTERM {
		exit = event.Seconds(c.cfg.App.TerminationGraceS)
	}
	c.loop.After(exit, func() {
		c.remove(p)
		c.schedule()
	})
}

func (c *Cluster) remove(p *Pod) {
	i := slices.Index(c.pods, p)
	if i < 0 {
		return
	}
	c.pods = slices.Delete(c.pods, i, i+1)
	if c.OnPodDeleted != nil {
		c.OnPodDeleted(p)
	}
}

// SetReplicas sets the Deployment's replicas (the HPA does this) and reconciles.
func (c *Cluster) SetReplicas(n int) {
	c.replicas = n
	c.reconcile()
}

// reconcile is the ReplicaSet controller: create pending pods or delete extra ones
// (unscheduled first, then not ready, then on the node with most pods, then newest).
func (c *Cluster) reconcile() {
	live := 0
	for _, p := range c.pods {
		if !p.Terminating {
			live++
		}
	}
	for ; live < c.replicas; live++ {
		c.podSeq++
		c.pods = append(c.pods, &Pod{Name: fmt.Sprintf("demo-%05d", c.podSeq), Created: c.loop.Now(),
			IgnoreSIGTERM: c.PodsIgnoreSIGTERM})
	}
	if live > c.replicas {
		var cands []*Pod
		perNode := map[*Node]int{}
		for _, p := range c.pods {
			if !p.Terminating {
				cands = append(cands, p)
				perNode[p.Node]++
			}
		}
		rank := func(p *Pod) int {
			switch {
			case p.Node == nil:
				return 0
			case !p.Ready:
				return 1
			}
			return 2
		}
		slices.SortStableFunc(cands, func(a, b *Pod) int {
			if ra, rb := rank(a), rank(b); ra != rb {
				return ra - rb
			}
			if perNode[a.Node] != perNode[b.Node] {
				return perNode[b.Node] - perNode[a.Node]
			}
			return b.Created.Compare(a.Created)
		})
		for _, p := range cands[:live-c.replicas] {
			if p.Node == nil {
				c.remove(p)
			} else {
				c.terminate(p)
			}
		}
	}
	c.schedule()
}

// schedule places unscheduled pods on Ready, schedulable workers with room for their
// requests, least-requested node first; the rest stay Pending.
func (c *Cluster) schedule() {
	reqCPU, reqMem := c.cfg.App.CPURequestm, c.cfg.App.MemoryRequestMiB
	used := map[*Node][2]int{}
	for _, p := range c.pods {
		if p.Node != nil {
			u := used[p.Node]
			used[p.Node] = [2]int{u[0] + reqCPU, u[1] + reqMem}
		}
	}
	for _, p := range c.pods {
		if p.Node != nil || p.Terminating {
			continue
		}
		var best *Node
		bestFree := -1
		for _, n := range c.nodes {
			if n.ControlPlane || !n.Ready || n.Unschedulable || n.Gone {
				continue
			}
			u := used[n]
			freeCPU := n.AllocCPUm - c.cfg.Node.SystemCPUm - u[0]
			freeMem := n.AllocMemMiB - c.cfg.Node.SystemMemMiB - u[1]
			if freeCPU < reqCPU || freeMem < reqMem {
				continue
			}
			if freeCPU > bestFree {
				best, bestFree = n, freeCPU
			}
		}
		if best == nil {
			continue
		}
		p.Node = best
		u := used[best]
		used[best] = [2]int{u[0] + reqCPU, u[1] + reqMem}
		pod := p
		c.loop.After(event.Seconds(c.cfg.App.StartSeconds), func() {
			if slices.Contains(c.pods, pod) && !pod.Terminating && pod.Node != nil {
				pod.Started = true
				pod.Ready = pod.Node.Ready
			}
		})
	}
}

// Unschedulable counts pods that no node has room for.
func (c *Cluster) Unschedulable() int {
	n := 0
	for _, p := range c.pods {
		if p.Node == nil && !p.Terminating {
			n++
		}
	}
	return n
}

// PendingPhase counts pods in phase Pending (unscheduled or starting).
func (c *Cluster) PendingPhase() int {
	n := 0
	for _, p := range c.pods {
		if !p.Started && !p.Terminating {
			n++
		}
	}
	return n
}

// ReadyPods counts pods serving traffic.
func (c *Cluster) ReadyPods() int { return c.healthy() }

// PodsPerNode is how many app pods fit on an empty worker by requests.
func PodsPerNode(cfg scenarios.Sim) int {
	byCPU := (cfg.Node.AllocatableCPUm - cfg.Node.SystemCPUm) / cfg.App.CPURequestm
	byMem := (cfg.Node.AllocatableMemMiB - cfg.Node.SystemMemMiB) / cfg.App.MemoryRequestMiB
	return max(1, min(byCPU, byMem))
}

// DemandPods is the replicas the HPA would keep for an offered rate at its target.
func DemandPods(cfg scenarios.Sim, rps float64) int {
	perPod := float64(cfg.App.CPURequestm) / 1000 * cfg.HPA.TargetCPUPercent / 100 / (cfg.App.CPUMsPerRequest / 1000)
	n := int(math.Ceil(rps/perPod - 1e-9))
	return min(max(n, cfg.App.MinReplicas), cfg.App.MaxReplicas)
}

// DemandNodes is the workers the offered rate needs: the HPA's replicas at its target,
// packed by requests.
func DemandNodes(cfg scenarios.Sim, rps float64) int {
	per := PodsPerNode(cfg)
	return (DemandPods(cfg, rps) + per - 1) / per
}
