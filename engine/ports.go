package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The ports the Step needs. Each world (simulator, production) provides adapters; every
// adapter states `var _ engine.X = (*impl)(nil)`.

// Metrics evaluates one instant PromQL query at a given time. It returns the single value the
// query reduces to, or a *MetricError saying why there is none. An empty vector is an error
// (MetricEmpty), never zero.
type Metrics interface {
	Query(ctx context.Context, query string, at time.Time) (Sample, error)
}

// Sample is one scalar answer of the Metrics port.
type Sample struct {
	Value    float64
	Time     time.Time // the sample's own timestamp (the evaluation time for instant queries)
	Warnings []string  // Prometheus warnings: the answer may be partial
}

// Cloud launches, lists and terminates the managed worker instances.
type Cloud interface {
	// Launch starts req.Count instances of one offering. It is idempotent on req.Token
	// (EC2's ClientToken): a retry with the same token returns the same instances.
	Launch(ctx context.Context, req LaunchRequest) ([]Instance, error)
	// Instances lists the managed workers with their state. Instances terminated recently
	// may be listed too, with state terminated (EC2 keeps them about an hour): they are gone,
	// where an instance not listed at all may be one DescribeInstances does not show yet.
	Instances(ctx context.Context) ([]Instance, error)
	// Terminate terminates managed workers. Unmanaged IDs must be refused.
	Terminate(ctx context.Context, ids []string) error
}

// Cluster reads nodes and drains them.
type Cluster interface {
	// Nodes lists every node, control plane included.
	Nodes(ctx context.Context) ([]Node, error)
	Cordon(ctx context.Context, node string) error
	Uncordon(ctx context.Context, node string) error
	// Drain evicts what it can of the node's pods (honouring PodDisruptionBudgets, skipping
	// DaemonSets) within the call and reports what is left. It is called once per tick
	// until Done or the policy's DrainTimeout.
	Drain(ctx context.Context, node string) (DrainStatus, error)
	// Delete removes the node object after its instance is terminated.
	Delete(ctx context.Context, node string) error
	// Resources lists the pods the scheduler could not place, with their requests, and
	// each node's allocatable resources and the requests bound to it. Observe asks for it
	// only when the policy sizes scale-ups by need.
	Resources(ctx context.Context) (ClusterResources, error)
}

// StateStore keeps the autoscaler's state and its lease lock.
type StateStore interface {
	// Load reads the state without taking the lock (dry runs, explain).
	Load(ctx context.Context) (State, error)
	// Acquire takes the lease when there is no holder or the lease has expired, bumps the
	// fence and returns the state. When someone else holds it: ErrLockHeld.
	Acquire(ctx context.Context, holder string, now time.Time, lease time.Duration) (Lease, State, error)
	// Save writes the state only if the lease's fence is still the newest: else ErrFenced.
	Save(ctx context.Context, lease Lease, st State) error
	// Release gives the lease up if lease is still the holder's: else ErrFenced.
	Release(ctx context.Context, lease Lease) error
	// Renew asserts that lease is still the newest (same holder and fence) and extends it
	// to until, in one conditional write: else ErrFenced. The Step calls it right before
	// every side effect outside the store (launch, cordon, drain, uncordon, terminate,
	// node deletion), so an invocation that lost its lease while paused cannot act when it
	// resumes.
	Renew(ctx context.Context, lease Lease, until time.Time) (Lease, error)
}

// Notifier sends scaling events (SNS -> Slack in production). Its failures never change a
// decision.
type Notifier interface {
	Notify(ctx context.Context, ev Event) error
}

// Lease is a held lock.
type Lease struct {
	Holder  string    `json:"holder"`
	Fence   int64     `json:"fence"`
	Expires time.Time `json:"expires"`
}

// Offering is one place a worker can be launched: an instance type in a subnet/zone.
type Offering struct {
	InstanceType string `json:"instance_type,omitempty"`
	Zone         string `json:"zone,omitempty"`
	Subnet       string `json:"subnet,omitempty"`
}

// Key names the offering for backoff bookkeeping.
func (o Offering) Key() string { return o.InstanceType + "/" + o.Zone + "/" + o.Subnet }

// LaunchRequest asks the cloud for Count instances of Offering.
type LaunchRequest struct {
	Token       string // idempotency token (EC2 ClientToken)
	OperationID string // tagged on the instances
	Count       int
	Offering    Offering
}

// InstanceState is a cloud instance's lifecycle state.
type InstanceState string

const (
	InstancePending    InstanceState = "pending"
	InstanceRunning    InstanceState = "running"
	InstanceStopping   InstanceState = "shutting-down"
	InstanceTerminated InstanceState = "terminated"
)

// Instance is one managed worker instance.
type Instance struct {
	ID          string        `json:"id"`
	State       InstanceState `json:"state"`
	LaunchedAt  time.Time     `json:"launched_at"`
	OperationID string        `json:"operation_id,omitempty"`
	Offering    Offering      `json:"offering"`
}

// Node is one Kubernetes node.
type Node struct {
	Name          string    `json:"name"`
	InstanceID    string    `json:"instance_id,omitempty"`
	Ready         bool      `json:"ready"`
	Unschedulable bool      `json:"unschedulable,omitempty"`
	ControlPlane  bool      `json:"control_plane,omitempty"`
	Pods          int       `json:"pods"`                    // pods a drain would evict (DaemonSets excluded)
	CriticalPods  int       `json:"critical_pods,omitempty"` // kube-system pods that forbid removing the node
	CreatedAt     time.Time `json:"created_at"`
}

// DrainStatus is the result of one Drain call.
type DrainStatus struct {
	Done      bool `json:"done"`               // no evictable pod left
	Remaining int  `json:"remaining"`          // pods still on the node
	Blocked   int  `json:"blocked,omitempty"`  // evictions refused by a PodDisruptionBudget (429)
	Evicted   int  `json:"evicted,omitempty"`  // evictions accepted by this call
	Critical  bool `json:"critical,omitempty"` // a critical kube-system pod forbids the drain
}

// Event is one notification.
type Event struct {
	Kind     EventKind `json:"kind"`
	Time     time.Time `json:"time"`
	Message  string    `json:"message"` // the brief's wording, e.g. "Added 2 nodes (CPU: 78%) → Total: 5 nodes"
	Decision Decision  `json:"decision"`
	Error    string    `json:"error,omitempty"`
}

// EventKind is the kind of a notification; the Slack forwarder picks the emoji from it.
type EventKind string

const (
	EventScaleUp   EventKind = "scale_up"
	EventScaleDown EventKind = "scale_down"
	EventFailure   EventKind = "failure"
	EventWarning   EventKind = "warning"
)

// Errors of the ports.
var (
	ErrLockHeld = errors.New("lock held by another invocation")
	ErrFenced   = errors.New("fenced out: a newer lease holder exists")
)

// ErrorKind classifies cloud and cluster errors.
type ErrorKind string

const (
	KindCapacity    ErrorKind = "insufficient_capacity" // this offering has no capacity now: back off, try another
	KindQuota       ErrorKind = "quota"                 // account limit: no offering will work until raised
	KindThrottled   ErrorKind = "throttled"             // API rate limit: retry next tick
	KindUnsupported ErrorKind = "unsupported"           // offering not available here: back off long
	KindNotFound    ErrorKind = "not_found"             // instance or node already gone
	KindOther       ErrorKind = "other"
)

// CloudError is a typed cloud (or cluster) error.
type CloudError struct {
	Kind     ErrorKind
	Code     string // provider's code, e.g. InsufficientInstanceCapacity
	Offering Offering
	Err      error
}

func (e *CloudError) Error() string {
	msg := string(e.Kind)
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Offering != (Offering{}) {
		msg += " for " + e.Offering.Key()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *CloudError) Unwrap() error { return e.Err }

// Transient reports whether retrying later may succeed without a configuration change.
func (e *CloudError) Transient() bool {
	return e.Kind == KindCapacity || e.Kind == KindThrottled
}

// KindOf returns the kind of a *CloudError in err's chain, or KindOther.
func KindOf(err error) ErrorKind {
	var ce *CloudError
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return KindOther
}

// IsCapacity, IsQuota, IsThrottled, IsUnsupported and IsNotFound test a typed cloud error.
func IsCapacity(err error) bool    { return KindOf(err) == KindCapacity }
func IsQuota(err error) bool       { return KindOf(err) == KindQuota }
func IsThrottled(err error) bool   { return KindOf(err) == KindThrottled }
func IsUnsupported(err error) bool { return KindOf(err) == KindUnsupported }
func IsNotFound(err error) bool    { return KindOf(err) == KindNotFound }

// MetricProblem says why a reading has no usable value.
type MetricProblem string

const (
	ProblemNone     MetricProblem = ""
	ProblemMissing  MetricProblem = "missing"  // not asked or not answered (e.g. no Metrics port)
	ProblemEmpty    MetricProblem = "empty"    // empty vector: no series in the lookback
	ProblemNaN      MetricProblem = "nan"      // NaN value
	ProblemInf      MetricProblem = "inf"      // +Inf or -Inf
	ProblemStale    MetricProblem = "stale"    // the newest scrape is older than MaxMetricAge
	ProblemPartial  MetricProblem = "partial"  // Prometheus answered with warnings
	ProblemMultiple MetricProblem = "multiple" // more than one series where one was expected
	ProblemHTTP     MetricProblem = "http"     // 4xx/5xx or a malformed answer
	ProblemTimeout  MetricProblem = "timeout"
	ProblemError    MetricProblem = "error" // anything else
)

// MetricError is the typed error of the Metrics port.
type MetricError struct {
	Problem MetricProblem
	Query   string
	Err     error
}

func (e *MetricError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Problem, e.Err)
	}
	return string(e.Problem)
}

func (e *MetricError) Unwrap() error { return e.Err }

// ProblemOf returns the problem of a *MetricError in err's chain, or ProblemError.
func ProblemOf(err error) MetricProblem {
	var me *MetricError
	if errors.As(err, &me) {
		return me.Problem
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ProblemTimeout
	}
	return ProblemError
}
