package engine

import "time"

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
}

// Free is the room left on the node.
func (n NodeResources) Free() Resources { return n.Allocatable.Sub(n.Requested) }

// ClusterResources is the cluster's resource picture for need-based sizing.
type ClusterResources struct {
	Pending []PendingPod    `json:"pending"`
	Nodes   []NodeResources `json:"nodes"`
}
