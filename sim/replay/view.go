package replay

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/smartscale/smartscale/engine"
)

// Lookback is Prometheus' default lookback: a series without a sample this long is gone.
const Lookback = 5 * time.Minute

// View is the cluster and cloud as a recording shows them: the nodes of kube_node_info at
// a given time. It gives the engine's Cluster and Cloud ports read-only, so that Decide
// can name the node a scale-down would remove. Pods per node are not recorded (0).
type View struct {
	nodes []viewNode
}

type viewNode struct {
	name, instance, ip string
	controlPlane       bool
	first              int64
	ts                 []int64 // sample times
}

// NewView builds the view of a recording. Control-plane nodes are those named like one
// ("master", "control-plane", "controlplane") or, when no name says so, the
// controlPlaneNodes nodes seen first. A node's instance is the last part of its
// provider_id (aws:///us-east-1a/i-0abc -> i-0abc), or "node/<name>" when it has none.
func NewView(r *Recording, controlPlaneNodes int) *View {
	v := &View{}
	byName := map[string]int{}
	for _, s := range r.Series {
		if s.Labels.Get(labels.MetricName) != MetricNodeInfo || len(s.Samples) == 0 {
			continue
		}
		name := s.Labels.Get("node")
		if name == "" {
			continue
		}
		i, ok := byName[name]
		if !ok {
			i = len(v.nodes)
			byName[name] = i
			inst := s.Labels.Get("provider_id")
			if k := strings.LastIndex(inst, "/"); k >= 0 {
				inst = inst[k+1:]
			}
			if inst == "" {
				inst = "node/" + name
			}
			v.nodes = append(v.nodes, viewNode{name: name, instance: inst, ip: s.Labels.Get("internal_ip"), first: s.Samples[0].T})
		}
		n := &v.nodes[i]
		n.first = min(n.first, s.Samples[0].T)
		for _, smp := range s.Samples {
			n.ts = append(n.ts, smp.T)
		}
		slices.Sort(n.ts)
	}
	named := false
	for i := range v.nodes {
		if looksControlPlane(v.nodes[i].name) {
			v.nodes[i].controlPlane, named = true, true
		}
	}
	if !named {
		order := make([]int, len(v.nodes))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int {
			if v.nodes[a].first != v.nodes[b].first {
				return int(v.nodes[a].first - v.nodes[b].first)
			}
			return strings.Compare(v.nodes[a].name, v.nodes[b].name)
		})
		for _, i := range order[:min(controlPlaneNodes, len(order))] {
			v.nodes[i].controlPlane = true
		}
	}
	slices.SortFunc(v.nodes, func(a, b viewNode) int { return strings.Compare(a.name, b.name) })
	return v
}

func looksControlPlane(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "master") || strings.Contains(n, "control-plane") || strings.Contains(n, "controlplane")
}

// present reports whether the node had a kube_node_info sample in the lookback before t.
func (n *viewNode) present(t int64) bool {
	i, _ := slices.BinarySearch(n.ts, t+1) // first sample after t
	return i > 0 && n.ts[i-1] > t-Lookback.Milliseconds()
}

// ControlPlane reports whether the node called name is a control-plane node.
func (v *View) ControlPlane(name string) bool {
	for _, n := range v.nodes {
		if n.name == name {
			return n.controlPlane
		}
	}
	return false
}

// NodeOf returns the node whose name, internal IP or instance host is host ("10.0.1.12",
// "ip-10-0-1-12"), for matching node-exporter's instance label to kube_node_info.
func (v *View) NodeOf(host string) (string, bool) {
	for _, n := range v.nodes {
		if host == n.name || host == n.ip && n.ip != "" {
			return n.name, true
		}
	}
	return "", false
}

// Workers counts the worker nodes present at t.
func (v *View) Workers(t time.Time) int {
	c := 0
	for i := range v.nodes {
		if !v.nodes[i].controlPlane && v.nodes[i].present(t.UnixMilli()) {
			c++
		}
	}
	return c
}

// At returns the Cloud and Cluster ports as the recording shows them at t.
func (v *View) At(t time.Time) (engine.Cloud, engine.Cluster) {
	s := &snapshot{}
	for i := range v.nodes {
		n := &v.nodes[i]
		if !n.present(t.UnixMilli()) {
			continue
		}
		created := time.UnixMilli(n.first).UTC()
		s.nodes = append(s.nodes, engine.Node{Name: n.name, InstanceID: n.instance, Ready: true,
			ControlPlane: n.controlPlane, CreatedAt: created})
		if !n.controlPlane {
			s.instances = append(s.instances, engine.Instance{ID: n.instance, State: engine.InstanceRunning, LaunchedAt: created})
		}
	}
	return s, s
}

// ErrReadOnly is returned by the view's acting methods: a replay never acts.
var ErrReadOnly = errors.New("replay: the recorded cluster is read-only")

// snapshot is the view at one time; it implements the Cloud and Cluster ports read-only.
type snapshot struct {
	nodes     []engine.Node
	instances []engine.Instance
}

var (
	_ engine.Cloud   = (*snapshot)(nil)
	_ engine.Cluster = (*snapshot)(nil)
)

func (s *snapshot) Nodes(context.Context) ([]engine.Node, error) { return slices.Clone(s.nodes), nil }
func (s *snapshot) Instances(context.Context) ([]engine.Instance, error) {
	return slices.Clone(s.instances), nil
}
func (s *snapshot) Launch(context.Context, engine.LaunchRequest) ([]engine.Instance, error) {
	return nil, ErrReadOnly
}
func (s *snapshot) Terminate(context.Context, []string) error { return ErrReadOnly }
func (s *snapshot) Cordon(context.Context, string) error      { return ErrReadOnly }
func (s *snapshot) Uncordon(context.Context, string) error    { return ErrReadOnly }
func (s *snapshot) Drain(context.Context, string) (engine.DrainStatus, error) {
	return engine.DrainStatus{}, ErrReadOnly
}
func (s *snapshot) Delete(context.Context, string) error { return ErrReadOnly }

// ErrNoPodRequests is the view's answer to Resources: a recording of the engine's series
// holds no pod requests, so need-based sizing falls back to the metric rules.
var ErrNoPodRequests = errors.New("replay: the recording has no pod requests or node allocatable")

func (s *snapshot) Resources(context.Context) (engine.ClusterResources, error) {
	return engine.ClusterResources{}, ErrNoPodRequests
}
