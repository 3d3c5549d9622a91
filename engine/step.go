package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Step is the one reconcile step shared by the simulator and the production Lambda:
// observe, lock, reconcile unfinished operations, decide, act, record, release, notify.
// Dry-run skips acting (and every write) and nothing else.
type Step struct {
	ClusterID string
	Policy    Policy
	Metrics   Metrics
	Cloud     Cloud
	Cluster   Cluster
	Store     StateStore
	Notifier  Notifier // optional

	// Offerings are tried in order; an offering that failed for capacity or support reasons
	// is skipped until its backoff expires. Empty: one default offering.
	Offerings []Offering
	// Lease is the lock's lease; it must exceed the invocation's timeout. Default 3m.
	Lease time.Duration
	// CapacityBackoff: an offering out of capacity is not retried before this. Default 5m.
	CapacityBackoff time.Duration
	// UnsupportedBackoff: an offering reported unsupported is not retried before this. Default 6h.
	UnsupportedBackoff time.Duration
	DryRun             bool

	// Hook, when set, is called before each side effect with its name (e.g. "launch",
	// "save"). A non-nil error aborts the tick as if the process had died there. The chaos
	// harness uses it to kill invocations at a random step; production leaves it nil.
	Hook func(point string) error
	// Clock, when set, tells the time when the lease is renewed before a side effect (the
	// Lambda: the wall clock; the simulator: the virtual clock). Default: the tick's time.
	Clock func() time.Time
}

// Record is what one tick saw, decided and did: a line of decisions.jsonl in the simulator
// and the flight record the Lambda logs in production.
type Record struct {
	Time        time.Time   `json:"time"`
	Trigger     string      `json:"trigger,omitempty"` // schedule, or alert:NAME
	Holder      string      `json:"holder,omitempty"`
	Lock        string      `json:"lock"` // acquired, held, dry_run, not_acquired
	Fence       int64       `json:"fence,omitempty"`
	Observation Observation `json:"observation"`
	State       State       `json:"state"` // as read, before this tick
	// DecideState is the state Decide saw (after reconciling the previous tick's operation)
	// and BusyOperation the operation that made the tick busy: with the observation, they
	// are all a replay needs to re-decide the tick without knowing the reconcile rules.
	DecideState   *State   `json:"decide_state,omitempty"`
	BusyOperation string   `json:"busy_operation,omitempty"`
	Decision      Decision `json:"decision"`
	Acted         []Act    `json:"acted"`
	Events        []Event  `json:"events,omitempty"`
	NotifyError   string   `json:"notify_error,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// Act is one side effect of a tick (or, in dry-run, one that would have happened).
type Act struct {
	Kind      string   `json:"kind"` // launch, joined, gone, terminate, cordon, drain, uncordon, delete_node
	Operation string   `json:"operation,omitempty"`
	Instances []string `json:"instances,omitempty"`
	Node      string   `json:"node,omitempty"`
	Count     int      `json:"count,omitempty"`
	Offering  string   `json:"offering,omitempty"`
	Result    string   `json:"result"` // ok, dry_run, failed, in_progress
	Error     string   `json:"error,omitempty"`
	ErrorKind string   `json:"error_kind,omitempty"`
	// JoinSeconds is, for a worker that became Ready, the seconds from launch to Ready.
	JoinSeconds float64 `json:"join_seconds,omitempty"`
}

// Lock outcomes.
const (
	LockAcquired    = "acquired"
	LockHeld        = "held"
	LockDryRun      = "dry_run"
	LockNotAcquired = "not_acquired"
	LockSkipped     = "skipped" // an alert tick that did nothing (too soon, or alert ticks off)
)

// skipAlert says why an alert tick should do nothing, or "". It reads the state without the
// lock: a race lets two alert ticks through, which the lock and the same-instant guard make
// safe.
func (s *Step) skipAlert(ctx context.Context, now time.Time) string {
	if !s.Policy.AlertTicks {
		return "alert ticks are off in the policy (alert_ticks): the schedule ticks"
	}
	st, err := s.Store.Load(ctx)
	if err != nil {
		return "" // the tick itself will report the store
	}
	if last := st.LastAlertTick; !last.IsZero() && now.Sub(last) < s.Policy.AlertTickMinInterval && !now.Before(last) {
		return fmt.Sprintf("an alert tick ran %v ago (alert_tick_min_interval %v)", now.Sub(last).Round(time.Second), s.Policy.AlertTickMinInterval)
	}
	return ""
}

// ErrAborted is returned when the Hook killed the tick.
var ErrAborted = errors.New("tick aborted")

func (s *Step) lease() time.Duration { return orDefault(s.Lease, 3*time.Minute) }

func (s *Step) capBackoff() time.Duration { return orDefault(s.CapacityBackoff, 5*time.Minute) }

func (s *Step) unsupBackoff() time.Duration { return orDefault(s.UnsupportedBackoff, 6*time.Hour) }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Run performs one tick at now as holder. It returns the record in every case; the error is
// non-nil when the tick could not observe, lost its lease, or was aborted. A lock held by
// someone else is a clean exit (Lock "held", nil error).
func (s *Step) Run(ctx context.Context, now time.Time, holder string) (Record, error) {
	return s.RunTriggered(ctx, now, holder, "")
}

// Tick triggers: what asked for a tick.
const (
	TriggerSchedule    = "schedule" // the EventBridge schedule (every 2 minutes)
	TriggerAlertPrefix = "alert:"   // a Prometheus alert, through Alertmanager and SNS: alert:NAME
)

// RunTriggered is Run for a tick with its trigger recorded: TriggerSchedule, or
// TriggerAlertPrefix+NAME for a tick a Prometheus alert asked for ("" records none). An
// alert tick is an ordinary tick under the same lease and fence; one within the policy's
// alert_tick_min_interval of the last alert tick does nothing (a storm of notifications is
// one tick), and one when the policy's alert_ticks is off does nothing either.
func (s *Step) RunTriggered(ctx context.Context, now time.Time, holder, trigger string) (Record, error) {
	rec := Record{Time: now.UTC(), Holder: holder, Lock: LockNotAcquired, Acted: []Act{}, Trigger: trigger}
	if strings.HasPrefix(trigger, TriggerAlertPrefix) {
		if why := s.skipAlert(ctx, now); why != "" {
			rec.Lock = LockSkipped
			rec.Decision = Decision{Action: ActionNone, Reason: why}
			return rec, nil
		}
	}
	obs, err := Observe(ctx, s.Policy, s.Metrics, s.Cloud, s.Cluster, now)
	rec.Observation = obs
	if err != nil {
		rec.Error = err.Error()
		rec.Decision = Decision{Action: ActionNoData, Reason: "could not observe: " + err.Error()}
		return rec, fmt.Errorf("observing: %w", err)
	}

	t := &tick{s: s, ctx: ctx, now: now, obs: obs, rec: &rec}
	if s.DryRun {
		st, err := s.Store.Load(ctx)
		if err != nil {
			rec.Error = err.Error()
			return rec, fmt.Errorf("loading state: %w", err)
		}
		rec.Lock, rec.State, t.st = LockDryRun, st.Clone(), st
	} else {
		lease, st, err := s.Store.Acquire(ctx, holder, now, s.lease())
		if errors.Is(err, ErrLockHeld) {
			rec.Lock = LockHeld
			rec.Decision = Decision{Action: ActionBusy, Reason: "lock held by another invocation", Workers: obs.Capacity(), Target: obs.Capacity()}
			return rec, nil
		}
		if err != nil {
			rec.Error = err.Error()
			return rec, fmt.Errorf("acquiring lock: %w", err)
		}
		rec.Lock, rec.Fence, rec.State = LockAcquired, lease.Fence, st.Clone()
		t.lease, t.st = lease, st
	}

	err = t.run()
	if err != nil {
		rec.Error = err.Error()
	}
	if !s.DryRun && !errors.Is(err, ErrFenced) && !errors.Is(err, ErrAborted) {
		if rerr := s.Store.Release(ctx, t.lease); rerr != nil && err == nil {
			err = fmt.Errorf("releasing lock: %w", rerr)
			rec.Error = err.Error()
		}
	}
	if !errors.Is(err, ErrAborted) {
		t.notify()
	}
	return rec, err
}

// tick is the working state of one Run.
type tick struct {
	s      *Step
	ctx    context.Context
	now    time.Time
	lease  Lease
	st     State
	obs    Observation
	rec    *Record
	events []Event
	// terminated holds the instances this tick terminated (removed from obs.Instances)
	terminated map[string]bool
}

func (t *tick) hook(point string) error {
	if t.s.Hook == nil {
		return nil
	}
	if err := t.s.Hook(point); err != nil {
		return fmt.Errorf("%w at %s: %v", ErrAborted, point, err)
	}
	return nil
}

// save writes the state under the fence.
func (t *tick) save() error {
	if t.s.DryRun {
		return nil
	}
	if err := t.hook("save"); err != nil {
		return err
	}
	if err := t.s.Store.Save(t.ctx, t.lease, t.st); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}

// guard runs right before every side effect outside the store: the Hook, then a renewal of
// the lease that fails with ErrFenced when a newer invocation took the lock over. A holder
// paused past its lease (a frozen Lambda) so learns it lost the lock before it acts.
func (t *tick) guard(point string) error {
	if err := t.hook(point); err != nil {
		return err
	}
	if t.s.DryRun {
		return nil
	}
	now := t.now
	if t.s.Clock != nil {
		now = t.s.Clock()
	}
	until := now.Add(t.s.lease())
	if until.Before(t.lease.Expires) {
		until = t.lease.Expires
	}
	l, err := t.s.Store.Renew(t.ctx, t.lease, until)
	if err != nil {
		return fmt.Errorf("renewing the lease before %s: %w", point, err)
	}
	t.lease = l
	return nil
}

func (t *tick) act(a Act) { t.rec.Acted = append(t.rec.Acted, a) }

func (t *tick) run() error {
	p := t.s.Policy
	busyOp := ""
	if strings.HasPrefix(t.rec.Trigger, TriggerAlertPrefix) {
		t.st.LastAlertTick = t.now
	}
	if !t.s.DryRun {
		var err error
		if busyOp, err = t.reconcile(); err != nil {
			return err
		}
		if err := t.sweepOrphans(); err != nil {
			return err
		}
	}
	t.adjustForLag()
	t.adjustForGone()
	if p.SizesByPods() {
		t.obs.NextOffering = t.nextOffering()
	}
	decided := t.st.Clone()
	t.rec.DecideState = &decided
	t.rec.BusyOperation = busyOp
	d := Decide(t.now, p, t.obs, t.st)
	if busyOp != "" && d.Action != ActionScaleUp {
		d = Decision{Action: ActionBusy, Reason: "finishing operation " + busyOp,
			Workers: d.Workers, Target: d.Workers, Triggers: d.Triggers}
	}
	t.rec.Decision = d
	t.rec.Observation = t.obs
	// Acting below edits t.obs's node and instance lists in place (slices.DeleteFunc): the
	// record keeps its own copies, as Decide saw them, so a flight record re-decides the same.
	t.rec.Observation.Nodes = slices.Clone(t.obs.Nodes)
	t.rec.Observation.Instances = slices.Clone(t.obs.Instances)

	if d.Action == ActionAtMax {
		if !t.st.AtMax {
			t.event(EventWarning, d, fmt.Sprintf("At max capacity (%d nodes), cannot scale further", p.MaxWorkers), "")
		}
		t.st.AtMax = true
	} else if d.Action != ActionCooldown && d.Action != ActionBusy {
		t.st.AtMax = false
	}

	switch d.Action {
	case ActionScaleUp:
		if err := t.scaleUp(d); err != nil {
			return err
		}
	case ActionScaleDown:
		if err := t.scaleDown(d); err != nil {
			return err
		}
	}
	return t.save()
}

// nextOffering is where a scale-up would launch now: the first offering not backing off.
func (t *tick) nextOffering() Offering {
	for _, off := range t.s.Offerings {
		if until, ok := t.st.Backoff[off.Key()]; !ok || !t.now.Before(until) {
			return off
		}
	}
	if len(t.s.Offerings) > 0 {
		return t.s.Offerings[0]
	}
	return Offering{}
}

// adjustForLag counts the instances of a recent scale-up that the cloud's list does not show
// yet (DescribeInstances lags RunInstances) as launching, so they are not asked for twice.
func (t *tick) adjustForLag() {
	seen := map[string]bool{}
	for _, in := range t.obs.Instances {
		seen[in.ID] = true
	}
	for _, n := range t.obs.Nodes {
		seen[n.InstanceID] = true
	}
	for _, op := range t.st.Open() {
		if op.Kind != OpScaleUp {
			continue
		}
		for _, id := range op.Instances {
			if !seen[id] {
				seen[id] = true
				t.obs.Launching++
			}
		}
	}
}

// adjustForGone counts the registered workers from the live node list, the same list
// Launching is counted from, leaving out NotReady nodes whose instance is not in the cloud's
// list of live managed workers. count(kube_node_info) lags the node list by up to a scrape
// (a node that just registered was counted neither as registered nor as launching, so a
// second worker was launched), and it keeps an interrupted or terminated instance's node
// object until someone deletes it (the fleet stayed below min for good).
func (t *tick) adjustForGone() {
	if t.s.Cloud == nil || t.s.Cluster == nil {
		return
	}
	alive, listed, gone := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for id := range t.terminated {
		listed[id], gone[id] = true, true
	}
	for _, in := range t.obs.Instances {
		listed[in.ID] = true
		switch in.State {
		case InstancePending, InstanceRunning:
			alive[in.ID] = true
		case InstanceStopping, InstanceTerminated:
			gone[in.ID] = true
		}
	}
	for _, op := range t.st.Open() {
		for _, id := range op.Instances {
			if !listed[id] { // hidden by DescribeInstances lag, not gone
				alive[id] = true
			}
		}
	}
	// A drained node whose terminate failed still counts: it is billed until it is gone,
	// and max_workers bounds what is billed (counting it as leaving took the fleet over
	// max when a scale-up came meanwhile).
	// A node whose instance is gone does not count even while it still reads Ready: the
	// kubelet's last heartbeat outlives its instance by up to the node-monitor grace period.
	n := 0
	for _, nd := range t.obs.Nodes {
		if nd.ControlPlane || gone[nd.InstanceID] || (nd.InstanceID != "" && !nd.Ready && !alive[nd.InstanceID]) {
			continue
		}
		n++
	}
	t.obs.RegisteredWorkers = n
}

// reconcile finishes or rolls back the operations previous ticks left: the finishing ones,
// then the one in the slot. It returns the operation that makes the tick busy (still under
// way, or it did something this tick), or "".
func (t *tick) reconcile() (busy string, err error) {
	if busy, err = t.reconcileFinishing(); err != nil {
		return busy, err
	}
	op := t.st.Operation
	if op == nil {
		return busy, nil
	}
	switch {
	case op.Kind == OpScaleUp && op.Phase == PhaseLaunching:
		// RunInstances may or may not have run: retry with the same ClientToken.
		if err := t.launch(op); err != nil {
			return op.ID, err
		}
		// The retry may return instances launched long ago (the same token): watch them
		// at once, so the tick ends where a second run of it has nothing left to do.
		if t.st.Operation == op && op.Phase == PhaseJoining {
			return op.ID, t.watchSlot(op)
		}
		return op.ID, nil
	case op.Kind == OpScaleUp:
		return busy, t.watchSlot(op)
	case op.Kind == OpScaleDown:
		done, err := t.continueDrain(op)
		if done {
			t.drop(op)
		}
		return op.ID, err
	}
	t.st.Operation = nil
	return busy, nil
}

// watchSlot runs the join watch of the slot's scale-up and frees the slot when it ends.
func (t *tick) watchSlot(op *Operation) error {
	done, err := t.watchJoin(op)
	if done {
		t.st.Operation = nil
	}
	return err
}

// reconcileFinishing moves every finishing operation on and drops the ones that end. A
// finishing scale-down makes the tick busy. (Its operations are all single-node, so a
// finishing scale-up never launches: it only watches its instances join.)
func (t *tick) reconcileFinishing() (busy string, err error) {
	var left []*Operation
	for i, op := range t.st.Finishing {
		var done bool
		switch op.Kind {
		case OpScaleUp:
			done, err = t.watchJoin(op)
		case OpScaleDown: // set aside, or one node of a multi-node scale-down
			done, err = t.continueDrain(op)
		default: // a record from elsewhere must not wedge the state
			done = true
		}
		if op.Kind == OpScaleDown && busy == "" {
			busy = op.ID
		}
		if err != nil {
			t.st.Finishing = append(left, t.st.Finishing[i:]...)
			return busy, err
		}
		if !done {
			left = append(left, op)
		}
	}
	t.st.Finishing = left
	return busy, nil
}

// setAside moves the slot's operation to Finishing so a new one can take the slot, and
// says so in the record.
func (t *tick) setAside(why string) {
	op := t.st.Operation
	t.st.Operation = nil
	t.st.Finishing = append(t.st.Finishing, op)
	a := Act{Kind: "set_aside", Operation: op.ID, Node: op.Node, Result: "ok",
		Error: fmt.Sprintf("%s %s finishes beside the new operation: %s", op.Kind, op.Phase, why)}
	if op.Kind == OpScaleUp {
		a.Instances = op.Instances
	} else {
		a.Instances = []string{op.Instance}
	}
	t.act(a)
}

// retryBackoff is how long a failed terminate or uncordon waits before its next try:
// 30 s, doubling with each failure, at most 10 minutes.
func retryBackoff(failures int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < failures && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

func (t *tick) event(kind EventKind, d Decision, msg, errText string) {
	t.events = append(t.events, Event{Kind: kind, Time: t.now.UTC(), Message: msg, Decision: d, Error: errText})
}

// notify sends the tick's events after the lock is released. Failures are recorded and
// change nothing.
func (t *tick) notify() {
	t.rec.Events = t.events
	if t.s.Notifier == nil || t.s.DryRun {
		return
	}
	var errs []error
	for _, ev := range t.events {
		if err := t.s.Notifier.Notify(t.ctx, ev); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.rec.NotifyError = err.Error()
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
