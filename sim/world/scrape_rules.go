package world

import (
	"github.com/prometheus/prometheus/model/labels"

	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/metrics"
)

// ruleSeries are the series the rules beyond the brief read, with kube-state-metrics' and
// the demo app's names and labels: the HPA's desired and current replicas, every pod's
// container requests (with its node), every node's allocatable resources, whether it is
// cordoned and its role, and the app's http_requests_total by answer code. The world writes
// them only for a policy that reads them (the brief's runs stay as fast as before).
type ruleSeries struct {
	store *metrics.Store
	sim   simShapes
	nodes map[*cluster.Node]*ruleNodeRefs
	pods  map[*cluster.Pod]*rulePodRefs
	hpa   [2]metrics.Ref // desired, current
}

// simShapes are the requests the series state (millicores and MiB).
type simShapes struct {
	appCPUm, appMemMiB, sysCPUm, sysMemMiB int
}

type ruleNodeRefs struct {
	allocCPU, allocMem, allocPods metrics.Ref
	unschedulable, role           metrics.Ref
	sysCPU, sysMem                metrics.Ref // the node's DaemonSet pods' requests
	hasRole                       bool
}

type rulePodRefs struct {
	node             *cluster.Node // the node the request series are labelled with
	reqCPU, reqMem   metrics.Ref
	served, rejected metrics.Ref
	unschedulable    metrics.Ref
}

func newRuleSeries(s *metrics.Store, sh simShapes) *ruleSeries {
	return &ruleSeries{store: s, sim: sh, nodes: map[*cluster.Node]*ruleNodeRefs{}, pods: map[*cluster.Pod]*rulePodRefs{},
		hpa: [2]metrics.Ref{
			s.Ref(ksm("kube_horizontalpodautoscaler_status_desired_replicas", "namespace", "default", "horizontalpodautoscaler", "demo-app")),
			s.Ref(ksm("kube_horizontalpodautoscaler_status_current_replicas", "namespace", "default", "horizontalpodautoscaler", "demo-app")),
		}}
}

func ksm(name string, kv ...string) labels.Labels {
	return labels.FromStrings(append([]string{"__name__", name, "job", "kube-state-metrics"}, kv...)...)
}

func (rs *ruleSeries) nodeRefs(n *cluster.Node) *ruleNodeRefs {
	if r, ok := rs.nodes[n]; ok {
		return r
	}
	s := rs.store
	alloc := func(res, unit string) metrics.Ref {
		return s.Ref(ksm("kube_node_status_allocatable", "node", n.Name, "resource", res, "unit", unit))
	}
	req := func(res, unit string) metrics.Ref {
		return s.Ref(ksm("kube_pod_container_resource_requests", "container", "system", "namespace", "kube-system",
			"node", n.Name, "pod", "system-"+n.Name, "resource", res, "unit", unit))
	}
	r := &ruleNodeRefs{allocCPU: alloc("cpu", "core"), allocMem: alloc("memory", "byte"), allocPods: alloc("pods", "integer"),
		unschedulable: s.Ref(ksm("kube_node_spec_unschedulable", "node", n.Name))}
	if n.ControlPlane {
		r.role, r.hasRole = s.Ref(ksm("kube_node_role", "node", n.Name, "role", "control-plane")), true
	} else {
		r.sysCPU, r.sysMem = req("cpu", "core"), req("memory", "byte")
	}
	rs.nodes[n] = r
	return r
}

func (rs *ruleSeries) podRefs(p *cluster.Pod) *rulePodRefs {
	if r, ok := rs.pods[p]; ok && r.node == p.Node {
		return r
	}
	s := rs.store
	node := ""
	if p.Node != nil {
		node = p.Node.Name
	}
	req := func(res, unit string) metrics.Ref {
		return s.Ref(ksm("kube_pod_container_resource_requests", "container", "app", "namespace", "default",
			"node", node, "pod", p.Name, "resource", res, "unit", unit))
	}
	http := func(code string) metrics.Ref {
		return s.Ref(labels.FromStrings("__name__", "http_requests_total", "code", code, "job", "demo-app", "method", "get",
			"namespace", "default", "pod", p.Name, "route", "/work"))
	}
	r := &rulePodRefs{node: p.Node, reqCPU: req("cpu", "core"), reqMem: req("memory", "byte"), served: http("200"), rejected: http("503"),
		unschedulable: s.Ref(ksm("kube_pod_status_unschedulable", "namespace", "default", "pod", p.Name))}
	rs.pods[p] = r
	return r
}

// scrape appends one sample of each rule series at tMillis.
func (rs *ruleSeries) scrape(c *cluster.Cluster, tMillis int64) error {
	s := rs.store
	var errs []error
	put := func(r metrics.Ref, v float64) { errs = append(errs, s.AppendRef(r, tMillis, v)) }
	const mib = 1 << 20
	for _, n := range c.AllNodes() {
		r := rs.nodeRefs(n)
		put(r.allocCPU, float64(n.AllocCPUm)/1000)
		put(r.allocMem, float64(n.AllocMemMiB)*mib)
		put(r.allocPods, 110)
		cordoned := 0.0
		if n.Unschedulable {
			cordoned = 1
		}
		put(r.unschedulable, cordoned)
		if r.hasRole {
			put(r.role, 1)
		} else if !n.Gone {
			put(r.sysCPU, float64(rs.sim.sysCPUm)/1000)
			put(r.sysMem, float64(rs.sim.sysMemMiB)*mib)
		}
	}
	live := map[*cluster.Pod]bool{}
	current := 0
	for _, p := range c.Pods() {
		live[p] = true
		if p.Terminating {
			continue
		}
		current++
		r := rs.podRefs(p)
		put(r.reqCPU, float64(rs.sim.appCPUm)/1000)
		put(r.reqMem, float64(rs.sim.appMemMiB)*mib)
		if p.Node == nil { // kube-state-metrics lists a pod whose PodScheduled is False
			put(r.unschedulable, 1)
		}
		if p.Started { // the app serves /metrics once its container runs
			put(r.served, p.Served)
			put(r.rejected, p.Dropped)
		}
	}
	for p := range rs.pods {
		if !live[p] {
			delete(rs.pods, p)
		}
	}
	put(rs.hpa[0], float64(c.Replicas()))
	put(rs.hpa[1], float64(current))
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
