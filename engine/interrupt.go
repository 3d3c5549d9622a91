package engine

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Cloud notices: EC2's spot interruption warning (the instance is reclaimed two minutes
// later) and rebalance recommendation (it is at elevated risk of one). The Lambda receives
// them from EventBridge, the simulator from its spot model; both call Step.Notice, which
// handles one under the same lease and fence as a tick: an interrupted node is cordoned and
// drained at once, bounded by the notice, and a replacement launched; an at-risk node is
// cordoned and its replacement launched, and it is drained once the replacement has joined.
// Both are operations in the state, so the scheduled tick moves them on. docs/algorithm.md
// ("Interruptions") says why.

// NoticeKind is the kind of a cloud notice.
type NoticeKind string

const (
	NoticeInterruption NoticeKind = "spot_interruption"        // EC2 Spot Instance Interruption Warning
	NoticeRebalance    NoticeKind = "rebalance_recommendation" // EC2 Instance Rebalance Recommendation
)

// InterruptionNotice is how long before reclaiming a spot instance EC2 warns.
const InterruptionNotice = 2 * time.Minute

// Notice is one cloud notice about one instance.
type Notice struct {
	Kind     NoticeKind `json:"kind"`
	Instance string     `json:"instance"`
	Time     time.Time  `json:"time"`              // when the cloud sent it
	Deadline time.Time  `json:"deadline,omitzero"` // interruption: when the instance is reclaimed (default Time + 2m)
	ID       string     `json:"id,omitempty"`      // the event's id, for the logs
	Action   string     `json:"action,omitempty"`  // the event's instance-action (terminate, stop, hibernate)
	Source   string     `json:"source,omitempty"`  // e.g. aws.ec2
}

// Check reports what makes the notice unusable, or nil.
func (n Notice) Check() error {
	switch {
	case n.Kind != NoticeInterruption && n.Kind != NoticeRebalance:
		return fmt.Errorf("unknown notice kind %q (known: %s, %s)", n.Kind, NoticeInterruption, NoticeRebalance)
	case n.Instance == "":
		return fmt.Errorf("%s notice without an instance id", n.Kind)
	case n.Time.IsZero():
		return fmt.Errorf("%s notice for %s without a time", n.Kind, n.Instance)
	}
	return nil
}

func (n Notice) deadline() time.Time {
	if !n.Deadline.IsZero() {
		return n.Deadline
	}
	return n.Time.Add(InterruptionNotice)
}

// Causes of the cloud's scale-downs (Operation.Cause).
const (
	CauseInterruption = "spot_interruption"
	CauseRebalance    = "rebalance"
)

// Actions of a notice's decision.
const (
	ActionInterruption Action = "interruption" // drain the interrupted node (and replace it)
	ActionRebalance    Action = "rebalance"    // replace the at-risk node, then drain it
)

// NoticeDecision is DecideNotice's answer: the decision as records show it, and what to do.
type NoticeDecision struct {
	Decision
	Upgrade  string // an open scale-down of the instance that becomes an interruption's
	GiveBack string // a scale-down given up instead of launching a replacement
	Drain    bool   // start a scale-down of Decision.Node with the notice's cause
}

// DecideNotice decides what a notice calls for. It is pure, like Decide: an instance the
// cloud's list does not show as a managed worker is ignored; one already gone, or already
// handled, needs nothing (repeated and late notices change nothing); otherwise its node is
// drained (interruption) or cordoned to drain later (rebalance), and a replacement is
// launched unless that would take the fleet, without the nodes leaving, over max_workers.
// An interruption that comes while another node drains for a scale-down keeps that node
// (its scale-down given up) instead of launching a replacement.
func DecideNotice(now time.Time, p Policy, obs Observation, st State, n Notice) NoticeDecision {
	capacity := obs.Capacity()
	d := NoticeDecision{Decision: Decision{Action: ActionNone, Workers: capacity, Target: capacity, Instance: n.Instance}}
	none := func(format string, args ...any) NoticeDecision {
		d.Reason = fmt.Sprintf("%s for %s: ", n.Kind, n.Instance) + fmt.Sprintf(format, args...)
		return d
	}
	if err := n.Check(); err != nil {
		return none("malformed notice ignored: %v", err)
	}
	var inst *Instance
	for i := range obs.Instances {
		if obs.Instances[i].ID == n.Instance {
			inst = &obs.Instances[i]
		}
	}
	launching := false
	for _, op := range st.Open() {
		if op.Kind == OpScaleUp && slices.Contains(op.Instances, n.Instance) {
			launching = true
		}
	}
	switch {
	case inst == nil && !launching:
		return none("not a managed worker of this cluster (the cloud does not list it as one): ignored")
	case inst != nil && (inst.State == InstanceTerminated || inst.State == InstanceStopping):
		return none("instance already %s: nothing to do (the scheduled tick replaces lost capacity by the scaling rules)", inst.State)
	}
	var node *Node
	for i := range obs.Nodes {
		if obs.Nodes[i].InstanceID == n.Instance && !obs.Nodes[i].ControlPlane {
			node = &obs.Nodes[i]
		}
	}
	if node != nil {
		d.Node = node.Name
	}
	// a replacement an earlier notice of this instance launched (the repeated notice of a
	// node is found by its scale-down below)
	var replacement *Operation
	for _, op := range st.Open() {
		if op.Kind == OpScaleUp && op.Replaces == n.Instance {
			replacement = op
		}
	}
	if replacement != nil && node == nil {
		return none("already replaced by operation %s (%s)", replacement.ID, replacement.Phase)
	}
	for _, op := range st.Open() {
		if op.Kind != OpScaleDown || op.Instance != n.Instance {
			continue
		}
		switch {
		case op.Cause == CauseInterruption:
			return none("already handled by operation %s (%s)", op.ID, op.Phase)
		case n.Kind == NoticeRebalance:
			return none("already leaving: operation %s (%s)", op.ID, op.Phase)
		}
		d.Action, d.Upgrade = ActionInterruption, op.ID
		d.Reason = fmt.Sprintf("spot interruption of %s (%s) at %s: its operation %s (%s) drains it now, bounded by the notice",
			n.Instance, d.Node, n.deadline().UTC().Format(time.TimeOnly), op.ID, op.Phase)
		return d
	}
	// Room for a replacement: the fleet without the interrupted instances (they are gone
	// within their notice) stays within max_workers. An at-risk node stays billed until its
	// replacement has joined and it has drained, so a rebalance counts it.
	leaving := 0
	if n.Kind == NoticeInterruption {
		leaving++ // this instance
	}
	var drained *Operation
	for _, op := range st.Open() {
		if op.Kind != OpScaleDown || op.Instance == n.Instance {
			continue
		}
		if op.Cause == CauseInterruption {
			leaving++
		}
		if op.Cause == "" && (op.Phase == PhaseCordoned || op.Phase == PhaseDraining) && drained == nil {
			drained = op
		}
	}
	room := capacity-leaving < p.MaxWorkers
	what := fmt.Sprintf("%s (node %s)", n.Instance, d.Node)
	if node == nil {
		what = n.Instance + " (not a node yet)"
	}
	if n.Kind == NoticeRebalance {
		switch {
		case node == nil:
			return none("not a node yet: nothing to drain, no replacement ahead of an interruption that may not come")
		case replacement != nil:
			return none("already replaced by operation %s (%s)", replacement.ID, replacement.Phase)
		case !room:
			return none("at max_workers (%d) without the leaving nodes: no room for a replacement ahead of the interruption; an interruption warning, if it comes, drains it", p.MaxWorkers)
		}
		d.Action, d.Drain, d.Delta = ActionRebalance, true, 1
		d.Reason = fmt.Sprintf("rebalance recommendation for %s: launching 1 replacement; the node is cordoned and drained once it has joined", what)
		d.Target = capacity + 1
		return d
	}
	d.Action, d.Drain = ActionInterruption, node != nil
	d.Reason = fmt.Sprintf("spot interruption of %s at %s", what, n.deadline().UTC().Format(time.TimeOnly))
	if d.Drain {
		d.Reason += ": draining it now, bounded by the notice"
	}
	switch {
	case replacement != nil:
		d.Reason += fmt.Sprintf("; its replacement %s (%s) is on its way", replacement.ID, replacement.Phase)
	case drained != nil:
		d.GiveBack = drained.ID
		d.Reason += fmt.Sprintf("; keeping %s (its scale-down %s given up) instead of launching a replacement", drained.Node, drained.ID)
	case room:
		d.Delta = 1
		d.Reason += "; launching 1 replacement"
	default:
		d.Reason += fmt.Sprintf("; no replacement: the fleet without the leaving nodes is at max_workers (%d)", p.MaxWorkers)
	}
	d.Target = capacity + d.Delta
	return d
}

// Notice handles one cloud notice at now as holder: observe, lock, reconcile the open
// operations as a tick does, DecideNotice, act, record, release, notify. A malformed notice
// is recorded and ignored (no lock taken, nil error); a lock held by someone else is a clean
// exit (Lock "held"): the caller may retry while the notice is still useful.
func (s *Step) Notice(ctx context.Context, now time.Time, holder string, n Notice) (Record, error) {
	if err := n.Check(); err != nil {
		return Record{Time: now.UTC(), Holder: holder, Lock: LockNotAcquired, Acted: []Act{}, Notice: &n,
			Decision: Decision{Action: ActionNone, Reason: "malformed notice ignored: " + err.Error()}}, nil
	}
	rec := Record{Time: now.UTC(), Holder: holder, Lock: LockNotAcquired, Acted: []Act{}, Notice: &n}
	return s.invoke(ctx, now, holder, rec, &n, func(t *tick) error { return t.runNotice(n) })
}

func (t *tick) runNotice(n Notice) error {
	if !t.s.DryRun {
		if _, err := t.reconcile(); err != nil {
			return err
		}
	}
	t.adjustForLag()
	t.adjustForGone()
	decided := t.st.Clone()
	t.rec.DecideState = &decided
	nd := DecideNotice(t.now, t.s.Policy, t.obs, t.st, n)
	t.rec.Decision = nd.Decision
	t.rec.Observation = t.obs
	t.rec.Observation.Nodes = slices.Clone(t.obs.Nodes)
	t.rec.Observation.Instances = slices.Clone(t.obs.Instances)
	if nd.Action == ActionNone {
		return t.save()
	}
	if t.s.DryRun {
		if nd.Drain {
			t.act(Act{Kind: "cordon", Node: nd.Node, Instances: []string{n.Instance}, Result: "dry_run"})
		}
		if nd.Delta > 0 {
			t.act(Act{Kind: "launch", Count: nd.Delta, Result: "dry_run"})
		}
		return nil
	}
	for _, in := range t.obs.Instances {
		if in.ID == n.Instance {
			t.noteTrouble(in.Offering)
		}
	}
	t.event(EventWarning, nd.Decision, noticeMessage(n, nd), "")
	if nd.Upgrade != "" {
		for _, op := range t.st.Open() {
			if op.ID != nd.Upgrade {
				continue
			}
			op.Cause, op.Deadline = CauseInterruption, n.deadline()
			if op.Phase == PhaseAtRisk { // drain it now: its cordon is repeated, harmlessly
				op.Phase, op.DrainFrom = PhaseCordoned, t.now
			}
			if err := t.save(); err != nil {
				return err
			}
			done, err := t.continueDrain(op)
			if done {
				t.drop(op)
			}
			if err != nil {
				return err
			}
		}
		return t.save()
	}
	if nd.GiveBack != "" {
		for _, op := range t.st.Open() {
			if op.ID == nd.GiveBack {
				done, err := t.abortDrain(op, "interruption of "+n.Instance+": the node is kept instead of a replacement")
				if err != nil {
					return err
				}
				if done {
					t.drop(op)
				}
			}
		}
	}
	var drain, up *Operation
	if nd.Drain {
		t.st.Seq++
		drain = &Operation{ID: fmt.Sprintf("%s-op-%d", t.s.ClusterID, t.st.Seq), Kind: OpScaleDown, Phase: PhaseCordoned,
			Started: t.now, Node: nd.Node, Instance: n.Instance, Reason: nd.Reason, Cause: CauseInterruption, Deadline: n.deadline()}
		if n.Kind == NoticeRebalance {
			drain.Phase, drain.Cause, drain.Deadline = PhaseAtRisk, CauseRebalance, time.Time{}
		}
		t.st.Finishing = append(t.st.Finishing, drain)
	}
	if nd.Delta > 0 {
		if t.st.Operation != nil {
			t.setAside(string(nd.Action) + " of " + n.Instance + ": replacement needed")
		}
		t.st.Seq++
		up = &Operation{ID: fmt.Sprintf("%s-op-%d", t.s.ClusterID, t.st.Seq), Kind: OpScaleUp, Phase: PhaseLaunching,
			Started: t.now, Count: nd.Delta, Reason: nd.Reason, Replaces: n.Instance}
		t.st.Operation = up
		if drain != nil && drain.Cause == CauseRebalance {
			drain.After = up.ID
		}
	}
	if err := t.save(); err != nil { // both intents, before any side effect
		return err
	}
	if drain != nil { // cordoned first: no pod lands on the node any more
		if done, err := t.cordonNotice(drain); err != nil || done {
			if done {
				t.drop(drain)
			}
			if err != nil {
				return err
			}
			drain = nil
		}
	}
	if up != nil {
		if err := t.launch(up); err != nil {
			return err
		}
		if t.st.Operation != up && drain != nil && drain.Cause == CauseRebalance {
			// no replacement could launch: the at-risk node serves on until it is interrupted
			done, err := t.abortDrain(drain, "rebalance of "+n.Instance+": no replacement could launch")
			if done {
				t.drop(drain)
			}
			if err != nil {
				return err
			}
			drain = nil
		}
	}
	if drain != nil && drain.Cause == CauseInterruption { // then one drain pass, now
		done, err := t.continueDrain(drain)
		if done {
			t.drop(drain)
		}
		if err != nil {
			return err
		}
	}
	return t.save()
}

// cordonNotice cordons the node of a notice's scale-down; it reports done when the
// operation ended (its node is gone, or an at-risk node could not be cordoned: it stays as
// it is and the interruption warning, if it comes, drains it).
func (t *tick) cordonNotice(op *Operation) (done bool, err error) {
	if err := t.guard("cordon"); err != nil {
		return false, err
	}
	if err := t.s.Cluster.Cordon(t.ctx, op.Node); err != nil {
		t.act(Act{Kind: "cordon", Operation: op.ID, Node: op.Node, Result: "failed", Error: err.Error(), ErrorKind: string(KindOf(err))})
		return IsNotFound(err) || op.Cause == CauseRebalance, nil
	}
	t.act(Act{Kind: "cordon", Operation: op.ID, Node: op.Node, Result: "ok"})
	if op.Phase == PhaseCordoned {
		op.Phase = PhaseDraining
	}
	return false, t.save()
}

func noticeMessage(n Notice, nd NoticeDecision) string {
	node := nd.Node
	if node == "" {
		node = "no node yet"
	}
	switch nd.Action {
	case ActionRebalance:
		return fmt.Sprintf("Rebalance recommendation for %s (%s): replacing it ahead of an interruption", n.Instance, node)
	}
	msg := fmt.Sprintf("Spot interruption of %s (%s) at %s", n.Instance, node, n.deadline().UTC().Format(time.TimeOnly))
	switch {
	case nd.Delta > 0:
		msg += ": draining it, 1 replacement launched"
	case nd.GiveBack != "":
		msg += ": draining it, a node leaving for a scale-down is kept instead"
	case nd.Upgrade != "":
		msg += ": it was being removed already; draining it now"
	default:
		msg += ": draining it, no replacement (at max)"
	}
	return msg
}

// causeStep moves the cloud's scale-downs along before the ordinary drain steps: one whose
// instance is gone (reclaimed) ends with its node object deleted; an at-risk node waits,
// cordoned, until its replacement has joined (or NodeReadyTimeout passed), then drains. It
// reports handled when the ordinary steps must not run this time.
func (t *tick) causeStep(op *Operation) (done, handled bool, err error) {
	if op.Cause == "" {
		return false, false, nil
	}
	gone := t.terminated[op.Instance]
	for _, in := range t.obs.Instances {
		if in.ID == op.Instance && (in.State == InstanceTerminated || in.State == InstanceStopping) {
			gone = true
		}
	}
	if gone {
		t.act(Act{Kind: "gone", Operation: op.ID, Instances: []string{op.Instance}, Node: op.Node, Result: "ok", Error: "instance reclaimed by the cloud"})
		if err := t.guard("delete_node"); err != nil {
			return false, true, err
		}
		if err := t.s.Cluster.Delete(t.ctx, op.Node); err != nil && !IsNotFound(err) {
			t.act(Act{Kind: "delete_node", Operation: op.ID, Node: op.Node, Result: "failed", Error: err.Error()})
		}
		t.st.LastRemoved = t.now
		t.obs.Nodes = slices.DeleteFunc(t.obs.Nodes, func(n Node) bool { return n.Name == op.Node })
		return true, true, nil
	}
	if op.Phase != PhaseAtRisk {
		return false, false, nil
	}
	due := t.now.Sub(op.Started) > t.s.Policy.NodeReadyTimeout || t.replaced(op.After)
	if !due {
		return false, true, nil
	}
	op.Phase, op.DrainFrom = PhaseCordoned, t.now
	return false, false, t.save()
}

// replaced reports whether the replacement operation id has ended or its instances have
// all joined (Ready nodes) or gone, on this tick's observation: the answer does not depend
// on whether the replacement's own operation was moved on before or after this one.
func (t *tick) replaced(id string) bool {
	var rop *Operation
	for _, o := range t.st.Open() {
		if o.ID == id {
			rop = o
		}
	}
	if rop == nil {
		return true
	}
	if len(rop.Instances) == 0 {
		return false // still launching
	}
	ready, gone := map[string]bool{}, map[string]bool{}
	for _, n := range t.obs.Nodes {
		if n.Ready {
			ready[n.InstanceID] = true
		}
	}
	for _, in := range t.obs.Instances {
		if in.State == InstanceTerminated || in.State == InstanceStopping {
			gone[in.ID] = true
		}
	}
	for _, in := range rop.Instances {
		if !ready[in] && !gone[in] {
			return false
		}
	}
	return true
}

// drainExpired reports whether a drain has run out of time: DrainTimeout from its start;
// for an interrupted node, DrainTimeout after the interruption was due (the instance should
// be gone by then: a warning that did not come true gives the node back).
func (t *tick) drainExpired(op *Operation) bool {
	if op.Cause == CauseInterruption {
		return !t.now.Before(op.Deadline.Add(t.s.Policy.DrainTimeout))
	}
	from := op.Started
	if op.DrainFrom.After(from) {
		from = op.DrainFrom
	}
	return t.now.Sub(from) >= t.s.Policy.DrainTimeout
}
