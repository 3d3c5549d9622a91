package engine

import (
	"cmp"
	"slices"
	"time"
)

// Resources is an amount of the resources the Kubernetes scheduler places pods by: CPU in
// millicores, memory in bytes, and a pod count (a node's allocatable "pods").
type Resources struct {
	MilliCPU int64 `json:"milli_cpu"`
	Memory   int64 `json:"memory_bytes"`
	Pods     int64 `json:"pods,omitempty"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU + o.MilliCPU, Memory: r.Memory + o.Memory, Pods: r.Pods + o.Pods}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU - o.MilliCPU, Memory: r.Memory - o.Memory, Pods: r.Pods - o.Pods}
}

// Fits reports whether o fits in r. A zero Pods in r sets no pod limit.
func (r Resources) Fits(o Resources) bool {
	return o.MilliCPU <= r.MilliCPU && o.Memory <= r.Memory && (r.Pods == 0 || o.Pods <= r.Pods)
}

// IsZero reports whether every amount is zero.
func (r Resources) IsZero() bool { return r == Resources{} }

// PendingPod is a pod the scheduler could not place: phase Pending with the condition
// PodScheduled=False, reason Unschedulable.
type PendingPod struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Requests  Resources `json:"requests"` // what the scheduler places it by (Pods is 1)
	Since     time.Time `json:"since"`    // when it was found unschedulable (or created)
}

// NodeResources is one node's room: what it can hold and what is placed on it already.
type NodeResources struct {
	Node         string    `json:"node"`
	InstanceType string    `json:"instance_type,omitempty"` // label node.kubernetes.io/instance-type
	Allocatable  Resources `json:"allocatable"`
	// Requested sums the requests of every pod bound to the node that has not finished,
	// DaemonSet and mirror pods included.
	Requested Resources `json:"requested"`
	// DaemonSet is the part of Requested that every node of this kind carries whatever the
	// workload: DaemonSet and mirror (static) pods. A new node has Allocatable - DaemonSet
	// free for the workload.
	DaemonSet Resources `json:"daemonset"`
	// Pods are the pods a drain would move (neither DaemonSet nor mirror pods), counted by
	// their requests: what must fit elsewhere before the node can go.
	Pods []PodShape `json:"pods,omitempty"`
}

// PodShape is a number of pods with the same requests.
type PodShape struct {
	Requests Resources `json:"requests"`
	Count    int       `json:"count"`
}

// AddPod counts one more movable pod of requests r.
func (n *NodeResources) AddPod(r Resources) {
	for i := range n.Pods {
		if n.Pods[i].Requests == r {
			n.Pods[i].Count++
			return
		}
	}
	n.Pods = append(n.Pods, PodShape{Requests: r, Count: 1})
}

// Free is the room left on the node.
func (n NodeResources) Free() Resources { return n.Allocatable.Sub(n.Requested) }

// ClusterResources is the cluster's resource picture for need-based sizing.
type ClusterResources struct {
	Pending []PendingPod    `json:"pending"`
	Nodes   []NodeResources `json:"nodes"`
}

// Node returns the resources of the named node.
func (c *ClusterResources) Node(name string) (NodeResources, bool) {
	for _, n := range c.Nodes {
		if n.Node == name {
			return n, true
		}
	}
	return NodeResources{}, false
}

// sort orders every list so the same cluster gives the same record.
func (c *ClusterResources) sort() {
	slices.SortFunc(c.Pending, func(a, b PendingPod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(c.Nodes, func(a, b NodeResources) int { return cmp.Compare(a.Node, b.Node) })
	for i := range c.Nodes {
		slices.SortFunc(c.Nodes[i].Pods, func(a, b PodShape) int { return a.Requests.compare(b.Requests) })
	}
}

// compare orders resources by CPU, then memory, then pods.
func (r Resources) compare(o Resources) int {
	return cmp.Or(cmp.Compare(r.MilliCPU, o.MilliCPU), cmp.Compare(r.Memory, o.Memory), cmp.Compare(r.Pods, o.Pods))
}
