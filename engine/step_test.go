package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/store"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fakeMetrics answers each reading by name.
type fakeMetrics struct {
	p      engine.Policy
	values map[string]float64
	errs   map[string]error
}

func (m *fakeMetrics) Query(_ context.Context, q string, at time.Time) (engine.Sample, error) {
	for _, n := range engine.QueryNames() {
		if m.p.Expand(n) == q {
			if err := m.errs[n]; err != nil {
				return engine.Sample{}, err
			}
			return engine.Sample{Value: m.values[n], Time: at}, nil
		}
	}
	return engine.Sample{}, fmt.Errorf("unexpected query %q", q)
}

// fakeCloud records calls; instances register as nodes only when the test says so.
type fakeCloud struct {
	insts     []engine.Instance
	tokens    map[string][]engine.Instance
	launchErr map[string]error // by offering zone
	calls     []string
	n         int
	hideNew   bool  // DescribeInstances lags: new instances are not listed
	termErr   error // returned by Terminate while set
}

func (c *fakeCloud) Launch(_ context.Context, req engine.LaunchRequest) ([]engine.Instance, error) {
	c.calls = append(c.calls, "launch "+req.Token)
	if got, ok := c.tokens[req.Token]; ok {
		return got, nil
	}
	if err := c.launchErr[req.Offering.Zone]; err != nil {
		return nil, err
	}
	var out []engine.Instance
	for range req.Count {
		c.n++
		in := engine.Instance{ID: fmt.Sprintf("i-new%d", c.n), State: engine.InstancePending, LaunchedAt: t0, OperationID: req.OperationID, Offering: req.Offering}
		out = append(out, in)
		if !c.hideNew {
			c.insts = append(c.insts, in)
		}
	}
	if c.tokens == nil {
		c.tokens = map[string][]engine.Instance{}
	}
	c.tokens[req.Token] = out
	return out, nil
}

func (c *fakeCloud) Instances(context.Context) ([]engine.Instance, error) {
	return slices.Clone(c.insts), nil
}

func (c *fakeCloud) Terminate(_ context.Context, ids []string) error {
	c.calls = append(c.calls, "terminate "+strings.Join(ids, ","))
	if c.termErr != nil {
		return c.termErr
	}
	c.insts = slices.DeleteFunc(c.insts, func(in engine.Instance) bool { return slices.Contains(ids, in.ID) })
	return nil
}

type fakeCluster struct {
	nodes   []engine.Node
	res     engine.ClusterResources
	drains  []engine.DrainStatus // returned in order; the last repeats
	calls   []string
	drained int
	// uncordonErr is returned by Uncordon while set
	uncordonErr error
}

func (c *fakeCluster) Nodes(context.Context) ([]engine.Node, error) {
	return slices.Clone(c.nodes), nil
}
func (c *fakeCluster) set(name string, f func(*engine.Node)) error {
	for i := range c.nodes {
		if c.nodes[i].Name == name {
			f(&c.nodes[i])
			return nil
		}
	}
	return &engine.CloudError{Kind: engine.KindNotFound}
}
func (c *fakeCluster) Cordon(_ context.Context, n string) error {
	c.calls = append(c.calls, "cordon "+n)
	return c.set(n, func(x *engine.Node) { x.Unschedulable = true })
}
func (c *fakeCluster) Uncordon(_ context.Context, n string) error {
	c.calls = append(c.calls, "uncordon "+n)
	if c.uncordonErr != nil {
		return c.uncordonErr
	}
	return c.set(n, func(x *engine.Node) { x.Unschedulable = false })
}
func (c *fakeCluster) Drain(_ context.Context, n string) (engine.DrainStatus, error) {
	c.calls = append(c.calls, "drain "+n)
	st := c.drains[min(c.drained, len(c.drains)-1)]
	c.drained++
	return st, nil
}
func (c *fakeCluster) Resources(context.Context) (engine.ClusterResources, error) {
	return c.res, nil
}
func (c *fakeCluster) Delete(_ context.Context, n string) error {
	c.calls = append(c.calls, "delete "+n)
	c.nodes = slices.DeleteFunc(c.nodes, func(x engine.Node) bool { return x.Name == n })
	return nil
}

type fakeNotifier struct {
	events []engine.Event
	err    error
}

func (n *fakeNotifier) Notify(_ context.Context, ev engine.Event) error {
	n.events = append(n.events, ev)
	return n.err
}

type rig struct {
	step    *engine.Step
	metrics *fakeMetrics
	cloud   *fakeCloud
	cluster *fakeCluster
	store   *store.Store
	notes   *fakeNotifier
}

// newRig: 4 managed workers plus the master, calm readings.
func newRig() *rig {
	p := engine.DefaultPolicy()
	r := &rig{
		metrics: &fakeMetrics{p: p, values: map[string]float64{"cpu": 45, "cpu_high_min": 40, "cpu_low_max": 50, "memory": 45,
			"pending": 0, "pending_min": 0, "nodes": 5, "metric_age": 10}},
		cloud:   &fakeCloud{},
		cluster: &fakeCluster{drains: []engine.DrainStatus{{Done: true}}},
		store:   store.New(),
		notes:   &fakeNotifier{},
	}
	r.cluster.nodes = append(r.cluster.nodes, engine.Node{Name: "master", Ready: true, ControlPlane: true})
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("i-w%d", i)
		r.cloud.insts = append(r.cloud.insts, engine.Instance{ID: id, State: engine.InstanceRunning, LaunchedAt: t0.Add(-time.Hour)})
		r.cluster.nodes = append(r.cluster.nodes, engine.Node{Name: fmt.Sprintf("w%d", i), InstanceID: id, Ready: true, Pods: i, CreatedAt: t0.Add(-time.Hour)})
	}
	r.step = &engine.Step{ClusterID: "test", Policy: p, Metrics: r.metrics, Cloud: r.cloud, Cluster: r.cluster, Store: r.store, Notifier: r.notes,
		Offerings: []engine.Offering{{InstanceType: "t3.medium", Zone: "a"}, {InstanceType: "t3.medium", Zone: "b"}}}
	return r
}

func (r *rig) busy() {
	r.metrics.values["cpu_high_min"], r.metrics.values["cpu"], r.metrics.values["pending_min"] = 80, 85, 2
}
func (r *rig) quiet() {
	r.metrics.values["cpu_high_min"], r.metrics.values["cpu"], r.metrics.values["cpu_low_max"], r.metrics.values["memory"] = 5, 8, 10, 20
}

func (r *rig) tick(t *testing.T, at time.Time) engine.Record {
	t.Helper()
	rec, err := r.step.Run(context.Background(), at, "h-"+at.Format("150405"))
	if err != nil {
		t.Fatalf("tick at %v: %v", at, err)
	}
	return rec
}

func TestStepScaleUpWritesIntentBeforeLaunching(t *testing.T) {
	r := newRig()
	r.busy()
	var order []string
	r.store.OnWrite = func(_ engine.Lease, st engine.State) {
		op := "none"
		if st.Operation != nil {
			op = string(st.Operation.Phase)
		}
		order = append(order, fmt.Sprintf("save(%s) after %d launches", op, len(r.cloud.calls)))
	}
	rec := r.tick(t, t0)
	if rec.Decision.Action != engine.ActionScaleUp || rec.Decision.Delta != 2 {
		t.Fatalf("decision %+v", rec.Decision)
	}
	want := []string{"save(launching) after 0 launches", "save(joining) after 1 launches"}
	if !slices.Equal(order, want) {
		t.Errorf("writes %v, want %v", order, want)
	}
	st, _ := r.store.Load(context.Background())
	if !st.LastScaleUp.Equal(t0) || st.Workers != 6 || st.Operation == nil || len(st.Operation.Instances) != 2 {
		t.Errorf("state after scale-up: %+v op %+v", st, st.Operation)
	}
	if len(r.notes.events) != 1 || r.notes.events[0].Message != "Added 2 nodes (CPU: 85%) → Total: 6 nodes" {
		t.Errorf("events %+v", r.notes.events)
	}
	if h, _, _ := r.store.Holder(); h != "" {
		t.Errorf("lock still held by %q", h)
	}
}

func TestStepLockHeldIsACleanExit(t *testing.T) {
	r := newRig()
	r.busy()
	if _, _, err := r.store.Acquire(context.Background(), "other", t0, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	rec := r.tick(t, t0.Add(time.Minute))
	if rec.Lock != engine.LockHeld || len(r.cloud.calls) != 0 || len(rec.Acted) != 0 {
		t.Fatalf("lock %s, cloud calls %v, acted %v", rec.Lock, r.cloud.calls, rec.Acted)
	}
	// after the lease the lock is free again
	if rec := r.tick(t, t0.Add(3*time.Minute)); rec.Lock != engine.LockAcquired {
		t.Fatalf("lock %s after the lease expired", rec.Lock)
	}
}

func TestStepCrashAfterLaunchIsReconciledWithoutDuplicates(t *testing.T) {
	r := newRig()
	r.busy()
	saves := 0
	r.step.Hook = func(point string) error {
		if point == "save" {
			saves++
			if saves == 2 { // the save after RunInstances: die here
				return errors.New("killed")
			}
		}
		return nil
	}
	if _, err := r.step.Run(context.Background(), t0, "h1"); !errors.Is(err, engine.ErrAborted) {
		t.Fatalf("err %v, want ErrAborted", err)
	}
	r.step.Hook = nil
	// the lock is stuck until the lease expires; then the intent is reconciled
	if rec := r.tick(t, t0.Add(2*time.Minute)); rec.Lock != engine.LockHeld {
		t.Fatalf("lock %s within the lease", rec.Lock)
	}
	rec := r.tick(t, t0.Add(4*time.Minute))
	if rec.Lock != engine.LockAcquired {
		t.Fatalf("lock %s after the lease", rec.Lock)
	}
	if len(r.cloud.insts) != 6 {
		t.Errorf("%d instances, want 6 (4 + 2, no duplicates): calls %v", len(r.cloud.insts), r.cloud.calls)
	}
	if r.cloud.calls[0] != r.cloud.calls[1] {
		t.Errorf("retry used another token: %v", r.cloud.calls)
	}
	st, _ := r.store.Load(context.Background())
	if st.Operation == nil || st.Operation.Phase != engine.PhaseJoining || !st.LastScaleUp.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("state %+v", st)
	}
}

func TestStepCapacityBacksOffAndTriesTheNextOffering(t *testing.T) {
	r := newRig()
	r.busy()
	r.cloud.launchErr = map[string]error{"a": &engine.CloudError{Kind: engine.KindCapacity, Code: "InsufficientInstanceCapacity"}}
	rec := r.tick(t, t0)
	if len(rec.Acted) != 2 || rec.Acted[0].Result != "failed" || rec.Acted[1].Result != "ok" || rec.Acted[1].Offering != "t3.medium/b/" {
		t.Fatalf("acted %+v", rec.Acted)
	}
	st, _ := r.store.Load(context.Background())
	if until := st.Backoff["t3.medium/a/"]; !until.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("backoff %v", st.Backoff)
	}
	// within the backoff the failing offering is not tried again
	r.step.Policy.ScaleUpCooldown = time.Minute
	rec = r.tick(t, t0.Add(2*time.Minute))
	if rec.Decision.Action != engine.ActionScaleUp || len(rec.Acted) == 0 {
		t.Fatalf("second tick %+v acted %+v", rec.Decision, rec.Acted)
	}
	for _, a := range rec.Acted {
		if a.Kind == "launch" && a.Offering != "t3.medium/b/" {
			t.Errorf("offering %s tried inside its backoff", a.Offering)
		}
	}
}

func TestStepQuotaFailsCleanly(t *testing.T) {
	r := newRig()
	r.busy()
	quota := &engine.CloudError{Kind: engine.KindQuota, Code: "VcpuLimitExceeded"}
	r.cloud.launchErr = map[string]error{"a": quota, "b": quota}
	rec := r.tick(t, t0)
	if len(rec.Acted) != 1 {
		t.Fatalf("quota must stop at the first offering: %+v", rec.Acted)
	}
	st, _ := r.store.Load(context.Background())
	if st.Operation != nil || !st.LastScaleUp.IsZero() {
		t.Errorf("failed launch left state %+v", st)
	}
	if len(r.notes.events) != 1 || r.notes.events[0].Kind != engine.EventFailure || r.notes.events[0].Message != "Scale-up failed: EC2 quota exceeded" {
		t.Errorf("events %+v", r.notes.events)
	}
}

func TestStepScaleDownDrainsThenTerminates(t *testing.T) {
	r := newRig()
	r.quiet()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 2, Evicted: 1}, {Done: true}}
	rec := r.tick(t, t0)
	if rec.Decision.Action != engine.ActionScaleDown || rec.Decision.Node != "w1" {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if !slices.Equal(r.cluster.calls, []string{"cordon w1", "drain w1"}) || len(r.cloud.calls) != 0 {
		t.Fatalf("cluster %v cloud %v", r.cluster.calls, r.cloud.calls)
	}
	rec = r.tick(t, t0.Add(2*time.Minute))
	if rec.Decision.Action != engine.ActionBusy {
		t.Errorf("second tick decision %+v", rec.Decision)
	}
	if !slices.Equal(r.cloud.calls, []string{"terminate i-w1"}) || !slices.Contains(r.cluster.calls, "delete w1") {
		t.Fatalf("cluster %v cloud %v", r.cluster.calls, r.cloud.calls)
	}
	st, _ := r.store.Load(context.Background())
	if st.Operation != nil || !st.LastScaleDown.Equal(t0) || st.Workers != 3 {
		t.Errorf("state %+v", st)
	}
	if n := len(r.notes.events); n != 1 || r.notes.events[0].Message != "Removed 1 node (CPU: 8%) → Total: 3 nodes" {
		t.Errorf("events %+v", r.notes.events)
	}
}

func TestStepDrainTimeoutUncordonsAndNeverTerminates(t *testing.T) {
	r := newRig()
	r.quiet()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 3, Blocked: 3}}
	r.tick(t, t0)
	for i := 1; i <= 3; i++ {
		r.tick(t, t0.Add(time.Duration(i)*2*time.Minute))
	}
	if len(r.cloud.calls) != 0 {
		t.Fatalf("terminated after a failed drain: %v", r.cloud.calls)
	}
	if last := r.cluster.calls[len(r.cluster.calls)-1]; last != "uncordon w1" {
		t.Fatalf("calls %v", r.cluster.calls)
	}
	st, _ := r.store.Load(context.Background())
	if st.Operation != nil {
		t.Errorf("operation left: %+v", st.Operation)
	}
	if len(r.notes.events) != 1 || r.notes.events[0].Kind != engine.EventFailure || !strings.Contains(r.notes.events[0].Message, "PodDisruptionBudget") {
		t.Errorf("events %+v", r.notes.events)
	}
}

func TestStepScaleUpAbortsADrain(t *testing.T) {
	r := newRig()
	r.quiet()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 3}}
	r.tick(t, t0)
	r.busy()
	r.metrics.values["cpu_low_max"] = 90
	rec := r.tick(t, t0.Add(2*time.Minute))
	if rec.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if !slices.Contains(r.cluster.calls, "uncordon w1") || len(r.cloud.insts) != 6 {
		t.Fatalf("cluster %v, %d instances", r.cluster.calls, len(r.cloud.insts))
	}
}

func TestStepTerminatesWorkersThatNeverRegister(t *testing.T) {
	r := newRig()
	r.cloud.insts = append(r.cloud.insts, engine.Instance{ID: "i-stuck", State: engine.InstanceRunning, LaunchedAt: t0.Add(-11 * time.Minute)},
		engine.Instance{ID: "i-young", State: engine.InstanceRunning, LaunchedAt: t0.Add(-3 * time.Minute)})
	r.tick(t, t0)
	if !slices.Equal(r.cloud.calls, []string{"terminate i-stuck"}) {
		t.Fatalf("calls %v", r.cloud.calls)
	}
}

func TestStepJoinTimeoutTerminatesTheOperationsLaggards(t *testing.T) {
	r := newRig()
	r.busy()
	r.tick(t, t0)
	// one of the two registers and becomes Ready, the other never does
	r.cluster.nodes = append(r.cluster.nodes, engine.Node{Name: "n1", InstanceID: "i-new1", Ready: true})
	r.metrics.values["nodes"] = 6
	r.metrics.values["cpu_high_min"], r.metrics.values["pending_min"] = 40, 0
	rec := r.tick(t, t0.Add(2*time.Minute))
	if len(rec.Acted) != 1 || rec.Acted[0].Kind != "joined" || rec.Acted[0].JoinSeconds != 120 {
		t.Fatalf("acted %+v", rec.Acted)
	}
	r.tick(t, t0.Add(11*time.Minute))
	if !slices.Contains(r.cloud.calls, "terminate i-new2") {
		t.Fatalf("laggard not terminated: %v", r.cloud.calls)
	}
}

func TestStepDescribeLagStillCountsLaunches(t *testing.T) {
	r := newRig()
	r.cloud.hideNew = true
	r.busy()
	r.tick(t, t0)
	// 5 minutes later load is still high; DescribeInstances still shows nothing new
	rec := r.tick(t, t0.Add(5*time.Minute))
	if rec.Observation.Launching != 2 || rec.Decision.Workers != 6 {
		t.Fatalf("launching %d workers %d: lagging instances must count", rec.Observation.Launching, rec.Decision.Workers)
	}
}

func TestStepDryRunWritesNothing(t *testing.T) {
	r := newRig()
	r.busy()
	r.step.DryRun = true
	rec := r.tick(t, t0)
	if rec.Lock != engine.LockDryRun || len(r.cloud.calls) != 0 || r.store.Writes != 0 || len(r.notes.events) != 0 {
		t.Fatalf("dry run acted: lock %s calls %v writes %d events %v", rec.Lock, r.cloud.calls, r.store.Writes, r.notes.events)
	}
	if len(rec.Acted) != 1 || rec.Acted[0].Result != "dry_run" || rec.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("record %+v", rec)
	}
}

func TestStepFencedOutStopsActing(t *testing.T) {
	r := newRig()
	r.busy()
	r.step.Hook = func(point string) error {
		if point == "launch" {
			// another invocation takes the lock over (our lease expired while paused)
			if _, _, err := r.store.Acquire(context.Background(), "thief", t0.Add(time.Hour), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	}
	// the intent write succeeded before the pause; the lease renewal before RunInstances
	// is fenced, so nothing is launched
	_, err := r.step.Run(context.Background(), t0, "h1")
	if !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("err %v, want ErrFenced", err)
	}
	if r.store.Rejected == 0 {
		t.Error("no write was rejected")
	}
	if len(r.cloud.calls) != 0 {
		t.Errorf("a fenced-out holder launched: %v", r.cloud.calls)
	}
}

// A holder that lost its lease while paused before a cordon or a terminate (side effects
// EC2 and Kubernetes cannot fence) learns it from the renewal right before the call.
func TestStepResumedHolderIsFencedBeforeEverySideEffect(t *testing.T) {
	for _, point := range []string{"cordon", "drain", "terminate"} {
		t.Run(point, func(t *testing.T) {
			r := newRig()
			r.quiet()
			r.step.Hook = func(p string) error {
				if p == point {
					if _, _, err := r.store.Acquire(context.Background(), "thief", t0.Add(time.Hour), time.Minute); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			}
			before := len(r.cluster.calls)
			_, err := r.step.Run(context.Background(), t0, "h1")
			if !errors.Is(err, engine.ErrFenced) {
				t.Fatalf("err %v, want ErrFenced", err)
			}
			calls := r.cluster.calls[before:]
			for _, c := range append(calls, r.cloud.calls...) {
				if strings.HasPrefix(c, point) {
					t.Fatalf("the fenced-out holder did a %s: %v %v", point, calls, r.cloud.calls)
				}
			}
		})
	}
}

func TestStepRenewExtendsTheLease(t *testing.T) {
	r := newRig()
	r.quiet()
	clock := t0
	r.step.Clock = func() time.Time { clock = clock.Add(40 * time.Second); return clock }
	r.step.Hook = func(p string) error {
		if p == "drain" {
			if _, _, exp := r.store.Holder(); !exp.After(t0.Add(3 * time.Minute)) {
				t.Errorf("lease expires %v after a renewal at %v", exp, clock)
			}
		}
		return nil
	}
	r.tick(t, t0)
}

// A scale-up needed while a drained node's terminate fails does not drop the scale-down:
// the node finishes beside the new operation (retried with backoff), is not counted as
// capacity, and no new scale-down starts meanwhile.
func TestStepScaleUpDuringFailedTerminateFinishesTheScaleDown(t *testing.T) {
	r := newRig()
	r.quiet()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 1}, {Done: true}}
	r.tick(t, t0) // cordon + drain w1
	r.cloud.termErr = &engine.CloudError{Kind: engine.KindThrottled, Code: "RequestLimitExceeded", Err: errors.New("slow down")}
	r.busy()
	r.metrics.values["cpu_low_max"] = 90
	rec := r.tick(t, t0.Add(2*time.Minute))
	if rec.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if rec.Observation.RegisteredWorkers != 4 {
		t.Errorf("registered workers %d: the drained node is billed until it is gone and counts against max", rec.Observation.RegisteredWorkers)
	}
	var aside bool
	for _, a := range rec.Acted {
		aside = aside || (a.Kind == "set_aside" && a.Node == "w1")
	}
	if !aside {
		t.Errorf("the record does not say the scale-down was set aside: %+v", rec.Acted)
	}
	st, _ := r.store.Load(context.Background())
	if st.Operation == nil || st.Operation.Kind != engine.OpScaleUp || len(st.Finishing) != 1 || st.Finishing[0].Node != "w1" {
		t.Fatalf("state: op %+v finishing %+v", st.Operation, st.Finishing)
	}
	if got := st.Finishing[0].RetryAt; !got.Equal(t0.Add(2*time.Minute + 30*time.Second)) {
		t.Errorf("retry at %v, want 30 s after the failure", got)
	}
	// quiet again: the terminate is retried and succeeds; no new scale-down at that tick
	r.cloud.termErr = nil
	r.quiet()
	r.cluster.nodes = append(r.cluster.nodes, engine.Node{Name: "n1", InstanceID: "i-new1", Ready: true}, engine.Node{Name: "n2", InstanceID: "i-new2", Ready: true})
	rec = r.tick(t, t0.Add(4*time.Minute))
	if !slices.Contains(r.cloud.calls, "terminate i-w1") || !slices.Contains(r.cluster.calls, "delete w1") {
		t.Fatalf("calls %v %v", r.cloud.calls, r.cluster.calls)
	}
	if rec.Decision.Action == engine.ActionScaleDown {
		t.Errorf("a scale-down started at the tick that finished the last one: %+v", rec.Decision)
	}
	st, _ = r.store.Load(context.Background())
	if len(st.Finishing) != 0 {
		t.Errorf("finishing left: %+v", st.Finishing)
	}
}

func TestStepScaleUpWhileAScaleUpJoinsKeepsWatchingIt(t *testing.T) {
	r := newRig()
	r.step.Policy.ScaleUpCooldown = 0
	r.cloud.hideNew = true // the first launch's instances are not listed yet
	r.busy()
	r.tick(t, t0)
	rec := r.tick(t, t0.Add(2*time.Minute))
	if rec.Observation.Launching < 2 {
		t.Fatalf("launching %d: the first scale-up's lagging instances must count", rec.Observation.Launching)
	}
	st, _ := r.store.Load(context.Background())
	if rec.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("decision %+v, want a second scale-up (zero cooldown)", rec.Decision)
	}
	if len(st.Finishing) != 1 || len(st.Finishing[0].Instances) != 2 {
		t.Fatalf("the joining scale-up was dropped: op %+v finishing %+v", st.Operation, st.Finishing)
	}
	// the first scale-up's instances never register: they are timed out and terminated
	r.metrics.values["cpu_high_min"], r.metrics.values["pending_min"] = 40, 0
	r.tick(t, t0.Add(11*time.Minute))
	if !slices.Contains(r.cloud.calls, "terminate i-new1") || !slices.Contains(r.cloud.calls, "terminate i-new2") {
		t.Fatalf("the set-aside scale-up's laggards were not timed out: %v", r.cloud.calls)
	}
}

func TestStepFailedUncordonIsRetried(t *testing.T) {
	r := newRig()
	r.quiet()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 3, Blocked: 3}}
	r.cluster.uncordonErr = errors.New("apiserver unavailable")
	for i := 0; i <= 3; i++ {
		r.tick(t, t0.Add(time.Duration(i)*2*time.Minute))
	}
	st, _ := r.store.Load(context.Background())
	if st.Operation == nil || st.Operation.Phase != engine.PhaseUncordoning {
		t.Fatalf("a failed uncordon dropped the operation: %+v", st.Operation)
	}
	r.cluster.uncordonErr = nil
	r.tick(t, t0.Add(10*time.Minute))
	st, _ = r.store.Load(context.Background())
	if st.Operation != nil || r.cluster.nodes[1].Unschedulable {
		t.Fatalf("not given back: op %+v node %+v", st.Operation, r.cluster.nodes[1])
	}
	if len(r.cloud.calls) != 0 {
		t.Errorf("terminated after a failed drain: %v", r.cloud.calls)
	}
}

func TestStepDryRunScaleUpDoesNotUncordon(t *testing.T) {
	r := newRig()
	r.quiet()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 3}}
	r.tick(t, t0)
	r.busy()
	r.metrics.values["cpu_low_max"] = 90
	r.step.DryRun = true
	before := len(r.cluster.calls)
	rec := r.tick(t, t0.Add(2*time.Minute))
	if len(r.cluster.calls) != before {
		t.Fatalf("dry run called the cluster: %v", r.cluster.calls[before:])
	}
	if rec.Acted[0].Kind != "uncordon" || rec.Acted[0].Result != "dry_run" {
		t.Errorf("acted %+v", rec.Acted)
	}
}

func TestStepNotificationFailureChangesNothing(t *testing.T) {
	a, b := newRig(), newRig()
	a.busy()
	b.busy()
	b.notes.err = errors.New("slack down")
	ra, rb := a.tick(t, t0), b.tick(t, t0)
	sa, _ := a.store.Load(context.Background())
	sb, _ := b.store.Load(context.Background())
	if ra.Decision.Action != rb.Decision.Action || sa.Workers != sb.Workers || !sa.LastScaleUp.Equal(sb.LastScaleUp) {
		t.Fatalf("notification failure changed the outcome: %+v vs %+v", sa, sb)
	}
	if rb.NotifyError == "" || ra.NotifyError != "" {
		t.Errorf("notify errors %q %q", ra.NotifyError, rb.NotifyError)
	}
}

func TestStepSameTickTwiceChangesNothing(t *testing.T) {
	r := newRig()
	r.busy()
	r.tick(t, t0)
	n := len(r.cloud.insts)
	rec := r.tick(t, t0)
	if len(r.cloud.insts) != n || rec.Decision.Action != engine.ActionCooldown {
		t.Fatalf("second run acted: %d -> %d instances, decision %+v", n, len(r.cloud.insts), rec.Decision)
	}
}

func TestStepCouldNotObserve(t *testing.T) {
	r := newRig()
	r.step.Cluster = errCluster{r.cluster}
	rec, err := r.step.Run(context.Background(), t0, "h")
	if err == nil || rec.Decision.Action != engine.ActionNoData || r.store.Writes != 0 {
		t.Fatalf("err %v decision %+v writes %d", err, rec.Decision, r.store.Writes)
	}
}

type errCluster struct{ *fakeCluster }

func (errCluster) Nodes(context.Context) ([]engine.Node, error) {
	return nil, errors.New("apiserver unreachable")
}

// An instance of a scale-up that was interrupted before joining is listed as terminated
// (EC2 keeps terminated instances listed for a while): it is gone, not lagging, so it no
// longer counts as capacity and the operation stops waiting for it.
func TestStepInterruptedJoiningInstanceIsGone(t *testing.T) {
	r := newRig()
	r.busy()
	r.tick(t, t0)
	for i := range r.cloud.insts {
		if r.cloud.insts[i].ID == "i-new2" {
			r.cloud.insts[i].State = engine.InstanceTerminated
		}
	}
	r.metrics.values["cpu_high_min"], r.metrics.values["pending_min"] = 40, 0
	rec := r.tick(t, t0.Add(2*time.Minute))
	if rec.Observation.Launching != 1 || rec.Decision.Workers != 5 {
		t.Fatalf("launching %d workers %d: the interrupted instance must not count", rec.Observation.Launching, rec.Decision.Workers)
	}
	gone := false
	for _, a := range rec.Acted {
		gone = gone || (a.Kind == "gone" && a.Instances[0] == "i-new2")
	}
	if !gone {
		t.Fatalf("acted %+v, want i-new2 gone", rec.Acted)
	}
	st, _ := r.store.Load(context.Background())
	if st.Operation == nil || !slices.Equal(st.Operation.Instances, []string{"i-new1"}) {
		t.Fatalf("operation %+v, want it waiting for i-new1 only", st.Operation)
	}
}

func TestStepAlertTicks(t *testing.T) {
	r := newRig()
	r.busy()
	// alert ticks off in the policy: a notification does nothing
	rec, err := r.step.RunTriggered(context.Background(), t0, "a1", engine.TriggerAlertPrefix+engine.AlertPodsUnschedulable)
	if err != nil || rec.Lock != engine.LockSkipped || len(r.cloud.calls) != 0 {
		t.Fatalf("alert ticks off: lock %s err %v calls %v", rec.Lock, err, r.cloud.calls)
	}
	r.step.Policy.AlertTicks = true
	rec, err = r.step.RunTriggered(context.Background(), t0, "a2", engine.TriggerAlertPrefix+engine.AlertPodsUnschedulable)
	if err != nil || rec.Trigger != "alert:"+engine.AlertPodsUnschedulable || rec.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("alert tick: %+v %v", rec.Decision, err)
	}
	// a storm of notifications within alert_tick_min_interval is one tick
	for i, after := range []time.Duration{time.Second, 10 * time.Second, 29 * time.Second} {
		rec, _ := r.step.RunTriggered(context.Background(), t0.Add(after), fmt.Sprintf("s%d", i), "alert:X")
		if rec.Lock != engine.LockSkipped || !strings.Contains(rec.Decision.Reason, "alert_tick_min_interval") {
			t.Errorf("%v after: %s %q", after, rec.Lock, rec.Decision.Reason)
		}
	}
	rec, _ = r.step.RunTriggered(context.Background(), t0.Add(31*time.Second), "a3", "alert:X")
	if rec.Lock != engine.LockAcquired {
		t.Errorf("after the interval: lock %s", rec.Lock)
	}
	// a scheduled tick is never skipped, and records its trigger
	rec, _ = r.step.RunTriggered(context.Background(), t0.Add(40*time.Second), "t", engine.TriggerSchedule)
	if rec.Lock != engine.LockAcquired || rec.Trigger != engine.TriggerSchedule {
		t.Errorf("schedule: %s %q", rec.Lock, rec.Trigger)
	}
}
