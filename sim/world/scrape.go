package world

import (
	"strconv"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/smartscale/smartscale/sim/cluster"
	"github.com/smartscale/smartscale/sim/metrics"
)

// exporters writes what node-exporter and kube-state-metrics would expose, with their
// series names and labels, into the store at each 15 s scrape.
type exporters struct {
	store *metrics.Store
	nodes map[*cluster.Node]*nodeRefs
	pods  map[*cluster.Pod]*podRefs
	rules *ruleSeries // nil unless the policy reads the rules' series (scrape_rules.go)
	n     uint64      // scrapes so far
}

type nodeRefs struct {
	cpu          [][cluster.NumModes]metrics.Ref
	memAvailable metrics.Ref
	memTotal     metrics.Ref
	info         metrics.Ref
}

type podRefs struct {
	phase [5]metrics.Ref
	seen  uint64 // the scrape that last listed the pod
}

var podPhases = [5]string{"Pending", "Running", "Succeeded", "Failed", "Unknown"}

func newExporters(s *metrics.Store) *exporters {
	return &exporters{store: s, nodes: map[*cluster.Node]*nodeRefs{}, pods: map[*cluster.Pod]*podRefs{}}
}

func (e *exporters) nodeRefs(n *cluster.Node, zone string) *nodeRefs {
	if r, ok := e.nodes[n]; ok {
		return r
	}
	inst := n.IP + ":9100"
	r := &nodeRefs{cpu: make([][cluster.NumModes]metrics.Ref, n.Cores)}
	for c := range n.Cores {
		for m, mode := range cluster.Modes {
			r.cpu[c][m] = e.store.Ref(labels.FromStrings("__name__", "node_cpu_seconds_total",
				"cpu", strconv.Itoa(c), "instance", inst, "job", "node-exporter", "mode", mode, "node", n.Name))
		}
	}
	r.memAvailable = e.store.Ref(labels.FromStrings("__name__", "node_memory_MemAvailable_bytes", "instance", inst, "job", "node-exporter", "node", n.Name))
	r.memTotal = e.store.Ref(labels.FromStrings("__name__", "node_memory_MemTotal_bytes", "instance", inst, "job", "node-exporter", "node", n.Name))
	provider := ""
	if n.InstanceID != "" {
		provider = "aws:///" + zone + "/" + n.InstanceID
	}
	r.info = e.store.Ref(labels.FromStrings("__name__", "kube_node_info", "internal_ip", n.IP, "job", "kube-state-metrics",
		"node", n.Name, "provider_id", provider))
	e.nodes[n] = r
	return r
}

func (e *exporters) podRefs(p *cluster.Pod) *podRefs {
	if r, ok := e.pods[p]; ok {
		return r
	}
	r := &podRefs{}
	for i, ph := range podPhases {
		r.phase[i] = e.store.Ref(labels.FromStrings("__name__", "kube_pod_status_phase", "job", "kube-state-metrics",
			"namespace", "default", "phase", ph, "pod", p.Name))
	}
	e.pods[p] = r
	return r
}

// scrape appends one sample per series at tMillis. Nodes whose instance is gone no longer
// answer node-exporter scrapes; kube-state-metrics still lists them until the node object
// is deleted. Series that vanish get staleness markers.
func (e *exporters) scrape(c *cluster.Cluster, tMillis int64, zoneOf func(instanceID string) string) error {
	e.store.BeginScrape()
	for _, n := range c.AllNodes() {
		r := e.nodeRefs(n, zoneOf(n.InstanceID))
		if !n.Gone {
			for ci := range n.CPUSeconds {
				for m := range cluster.NumModes {
					if err := e.store.AppendRef(r.cpu[ci][m], tMillis, n.CPUSeconds[ci][m]); err != nil {
						return err
					}
				}
			}
			total := n.MemTotalMiB * (1 << 20)
			if err := e.store.AppendRef(r.memTotal, tMillis, total); err != nil {
				return err
			}
			if err := e.store.AppendRef(r.memAvailable, tMillis, max(0, total-n.MemUsedMiB*(1<<20))); err != nil {
				return err
			}
		}
		if err := e.store.AppendRef(r.info, tMillis, 1); err != nil {
			return err
		}
	}
	e.n++
	for _, p := range c.Pods() {
		r := e.podRefs(p)
		r.seen = e.n
		phase := p.Phase()
		for i, ph := range podPhases {
			v := 0.0
			if ph == phase {
				v = 1
			}
			if err := e.store.AppendRef(r.phase[i], tMillis, v); err != nil {
				return err
			}
		}
	}
	for p, r := range e.pods {
		if r.seen != e.n {
			delete(e.pods, p)
		}
	}
	if e.rules != nil {
		if err := e.rules.scrape(c, tMillis); err != nil {
			return err
		}
	}
	e.store.EndScrape(tMillis)
	return nil
}
