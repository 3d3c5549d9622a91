// Package fakes holds small in-memory implementations of the engine's ports for the
// runtime's tests and benchmarks (no network): fixed metric readings, a cloud with
// ClientToken idempotency and a cluster whose drains finish at once.
package fakes

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// Metrics answers the policy's queries with fixed values by reading name.
type Metrics struct {
	byQuery map[string]float64
	Errs    map[string]error // by reading name
	names   map[string]string
}

var _ engine.Metrics = (*Metrics)(nil)

// NewMetrics answers p's queries with values (by reading name, e.g. engine.ReadingCPU).
func NewMetrics(p engine.Policy, values map[string]float64) *Metrics {
	m := &Metrics{byQuery: map[string]float64{}, Errs: map[string]error{}, names: map[string]string{}}
	for _, n := range engine.QueryNames() {
		q := p.Expand(n)
		m.names[q] = n
		if v, ok := values[n]; ok {
			m.byQuery[q] = v
		}
	}
	return m
}

// Query implements engine.Metrics.
func (m *Metrics) Query(_ context.Context, q string, at time.Time) (engine.Sample, error) {
	if err := m.Errs[m.names[q]]; err != nil {
		return engine.Sample{}, err
	}
	v, ok := m.byQuery[q]
	if !ok {
		return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemEmpty, Query: q}
	}
	return engine.Sample{Value: v, Time: at}, nil
}

// Cloud is an in-memory EC2.
type Cloud struct {
	mu        sync.Mutex
	Insts     []engine.Instance
	tokens    map[string][]string
	seq       int
	Launches  int // RunInstances calls that created instances
	Calls     []engine.LaunchRequest
	Now       func() time.Time
	LaunchErr error
	// BeforeLaunch, when set, runs at the start of Launch (tests block on it).
	BeforeLaunch func()
}

var _ engine.Cloud = (*Cloud)(nil)

// Launch implements engine.Cloud with ClientToken idempotency.
func (c *Cloud) Launch(_ context.Context, req engine.LaunchRequest) ([]engine.Instance, error) {
	if c.BeforeLaunch != nil {
		c.BeforeLaunch()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Calls = append(c.Calls, req)
	if c.LaunchErr != nil {
		return nil, c.LaunchErr
	}
	if c.tokens == nil {
		c.tokens = map[string][]string{}
	}
	if ids, ok := c.tokens[req.Token]; ok {
		var out []engine.Instance
		for _, in := range c.Insts {
			if slices.Contains(ids, in.ID) {
				out = append(out, in)
			}
		}
		return out, nil
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	var out []engine.Instance
	for range req.Count {
		c.seq++
		in := engine.Instance{ID: fmt.Sprintf("i-%017x", c.seq), State: engine.InstancePending, LaunchedAt: now,
			OperationID: req.OperationID, Offering: req.Offering}
		c.Insts = append(c.Insts, in)
		c.tokens[req.Token] = append(c.tokens[req.Token], in.ID)
		out = append(out, in)
	}
	c.Launches++
	return out, nil
}

// Instances implements engine.Cloud.
func (c *Cloud) Instances(context.Context) ([]engine.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []engine.Instance
	for _, in := range c.Insts {
		if in.State != engine.InstanceTerminated {
			out = append(out, in)
		}
	}
	return out, nil
}

// Terminate implements engine.Cloud.
func (c *Cloud) Terminate(_ context.Context, ids []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		i := slices.IndexFunc(c.Insts, func(in engine.Instance) bool { return in.ID == id })
		if i < 0 {
			return &engine.CloudError{Kind: engine.KindNotFound, Code: "InvalidInstanceID.NotFound", Err: fmt.Errorf("%s", id)}
		}
		c.Insts[i].State = engine.InstanceTerminated
	}
	return nil
}

// Count returns the instances not terminated.
func (c *Cloud) Count() int {
	insts, _ := c.Instances(context.Background())
	return len(insts)
}

// Cluster is an in-memory Kubernetes whose drains finish at once.
type Cluster struct {
	mu   sync.Mutex
	List []engine.Node
	// Res is what Resources returns.
	Res engine.ClusterResources
}

var _ engine.Cluster = (*Cluster)(nil)

// Nodes implements engine.Cluster.
func (c *Cluster) Nodes(context.Context) ([]engine.Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.List), nil
}

func (c *Cluster) set(name string, f func(*engine.Node)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.List {
		if c.List[i].Name == name {
			f(&c.List[i])
			return nil
		}
	}
	return &engine.CloudError{Kind: engine.KindNotFound, Err: fmt.Errorf("node %s", name)}
}

// Cordon implements engine.Cluster.
func (c *Cluster) Cordon(_ context.Context, n string) error {
	return c.set(n, func(x *engine.Node) { x.Unschedulable = true })
}

// Uncordon implements engine.Cluster.
func (c *Cluster) Uncordon(_ context.Context, n string) error {
	return c.set(n, func(x *engine.Node) { x.Unschedulable = false })
}

// Drain implements engine.Cluster.
func (c *Cluster) Drain(_ context.Context, n string) (engine.DrainStatus, error) {
	var evicted int
	err := c.set(n, func(x *engine.Node) { evicted, x.Pods = x.Pods, 0 })
	return engine.DrainStatus{Done: err == nil, Evicted: evicted}, err
}

// Delete implements engine.Cluster.
func (c *Cluster) Delete(_ context.Context, n string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.List = slices.DeleteFunc(c.List, func(x engine.Node) bool { return x.Name == n })
	return nil
}

// Resources implements engine.Cluster.
func (c *Cluster) Resources(context.Context) (engine.ClusterResources, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return engine.ClusterResources{Pending: slices.Clone(c.Res.Pending), Nodes: slices.Clone(c.Res.Nodes)}, nil
}

// Workers returns a control plane and n Ready workers registered for the given instances.
func Workers(at time.Time, ids ...string) []engine.Node {
	nodes := []engine.Node{{Name: "master", Ready: true, ControlPlane: true, CreatedAt: at}}
	for i, id := range ids {
		nodes = append(nodes, engine.Node{Name: fmt.Sprintf("worker-%d", i+1), InstanceID: id, Ready: true, Pods: 3 + i, CreatedAt: at})
	}
	return nodes
}

// Store is an in-memory engine.StateStore with the same lease semantics as the DynamoDB one.
type Store struct {
	mu      sync.Mutex
	St      engine.State
	holder  string
	fence   int64
	expires time.Time
}

var _ engine.StateStore = (*Store)(nil)

// Load implements engine.StateStore.
func (s *Store) Load(context.Context) (engine.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.St.Clone(), nil
}

// Acquire implements engine.StateStore.
func (s *Store) Acquire(_ context.Context, holder string, now time.Time, lease time.Duration) (engine.Lease, engine.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holder != "" && !s.expires.Before(now) {
		return engine.Lease{}, engine.State{}, engine.ErrLockHeld
	}
	s.fence++
	s.holder, s.expires = holder, now.Add(lease)
	return engine.Lease{Holder: holder, Fence: s.fence, Expires: s.expires}, s.St.Clone(), nil
}

// Save implements engine.StateStore.
func (s *Store) Save(_ context.Context, l engine.Lease, st engine.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.Holder != s.holder || l.Fence != s.fence {
		return engine.ErrFenced
	}
	s.St = st.Clone()
	return nil
}

// Renew implements engine.StateStore.
func (s *Store) Renew(_ context.Context, l engine.Lease, until time.Time) (engine.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.Holder != s.holder || l.Fence != s.fence {
		return engine.Lease{}, engine.ErrFenced
	}
	s.expires, l.Expires = until, until
	return l, nil
}

// Release implements engine.StateStore.
func (s *Store) Release(_ context.Context, l engine.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.Holder != s.holder || l.Fence != s.fence {
		return engine.ErrFenced
	}
	s.holder = ""
	return nil
}
