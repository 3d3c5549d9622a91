package engine

import (
	"fmt"
	"slices"
)

// The scale-down half of the Step: cordon, a bounded drain per tick, terminate, or give
// the node back.

// terminate terminates one instance and removes it from the observation.
func (t *tick) terminate(opID, id, why string) error {
	if err := t.guard("terminate"); err != nil {
		return err
	}
	a := Act{Kind: "terminate", Operation: opID, Instances: []string{id}, Result: "ok", Error: why}
	if err := t.s.Cloud.Terminate(t.ctx, []string{id}); err != nil && !IsNotFound(err) {
		a.Result, a.Error, a.ErrorKind = "failed", err.Error(), string(KindOf(err))
		t.act(a)
		return nil
	}
	t.act(a)
	t.obs.Instances = slices.DeleteFunc(t.obs.Instances, func(in Instance) bool { return in.ID == id })
	if t.terminated == nil {
		t.terminated = map[string]bool{}
	}
	t.terminated[id] = true
	t.obs.countWorkers(t.s.Policy, t.s.Cluster != nil)
	return nil
}

// scaleDown starts one operation per node of the decision: the first in the slot, the others
// (a multi-node scale-down) beside it in Finishing; each is written before its node is
// cordoned and goes its own way (drained, terminated, or given back).
func (t *tick) scaleDown(d Decision) error {
	nodes := append([]NodeRef{{Node: d.Node, Instance: d.Instance}}, d.Also...)
	if t.s.DryRun {
		for _, n := range nodes {
			t.act(Act{Kind: "cordon", Node: n.Node, Instances: []string{n.Instance}, Result: "dry_run"})
		}
		return nil
	}
	var ops []*Operation
	for i, n := range nodes {
		t.st.Seq++
		op := &Operation{ID: fmt.Sprintf("%s-op-%d", t.s.ClusterID, t.st.Seq), Kind: OpScaleDown,
			Phase: PhaseCordoned, Started: t.now, Node: n.Node, Instance: n.Instance, Reason: d.Reason}
		if i == 0 {
			t.st.Operation = op
		} else {
			t.st.Finishing = append(t.st.Finishing, op)
		}
		ops = append(ops, op)
	}
	t.st.LastScaleDown = t.now
	if err := t.save(); err != nil {
		return err
	}
	for _, op := range ops {
		done, err := t.continueDrain(op)
		if done {
			t.drop(op)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// drop removes an ended operation from the slot or from Finishing.
func (t *tick) drop(op *Operation) {
	if t.st.Operation == op {
		t.st.Operation = nil
		return
	}
	t.st.Finishing = slices.DeleteFunc(t.st.Finishing, func(o *Operation) bool { return o == op })
	if len(t.st.Finishing) == 0 {
		t.st.Finishing = nil
	}
}

// continueDrain moves a scale-down along: cordon -> drain (one Drain call per tick) ->
// terminate -> delete the node; or uncordon when the drain fails or times out. It reports
// done when the operation has ended.
func (t *tick) continueDrain(op *Operation) (done bool, err error) {
	if op.Phase == PhaseCordoned {
		if err := t.guard("cordon"); err != nil {
			return false, err
		}
		if err := t.s.Cluster.Cordon(t.ctx, op.Node); err != nil {
			t.act(Act{Kind: "cordon", Operation: op.ID, Node: op.Node, Result: "failed", Error: err.Error(), ErrorKind: string(KindOf(err))})
			if IsNotFound(err) {
				return true, nil
			}
			return t.abortDrain(op, "cordon failed: "+err.Error())
		}
		t.act(Act{Kind: "cordon", Operation: op.ID, Node: op.Node, Result: "ok"})
		op.Phase = PhaseDraining
		if err := t.save(); err != nil {
			return false, err
		}
	}
	if op.Phase == PhaseDraining {
		if err := t.guard("drain"); err != nil {
			return false, err
		}
		ds, err := t.s.Cluster.Drain(t.ctx, op.Node)
		a := Act{Kind: "drain", Operation: op.ID, Node: op.Node, Count: ds.Remaining, Result: "in_progress"}
		switch {
		case err != nil:
			a.Result, a.Error = "failed", err.Error()
		case ds.Critical:
			a.Result, a.Error = "failed", "critical kube-system pod on node"
		case ds.Done:
			a.Result = "ok"
		case ds.Blocked > 0:
			a.Error = fmt.Sprintf("%d evictions refused by a PodDisruptionBudget", ds.Blocked)
		}
		t.act(a)
		switch {
		case ds.Critical:
			return t.abortDrain(op, a.Error)
		case err == nil && ds.Done:
			op.Phase = PhaseTerminating
			if err := t.save(); err != nil {
				return false, err
			}
		case t.now.Sub(op.Started) >= t.s.Policy.DrainTimeout:
			why := fmt.Sprintf("drain not finished after %v (%d pods left)", t.s.Policy.DrainTimeout, ds.Remaining)
			if a.Error != "" {
				why += ": " + a.Error
			}
			return t.abortDrain(op, why)
		default:
			return false, nil // keep draining next tick
		}
	}
	switch op.Phase {
	case PhaseTerminating:
		return t.retire(op)
	case PhaseUncordoning:
		return t.giveBack(op)
	}
	return false, nil
}

// retire terminates a drained node's instance and deletes the node object. A failed
// terminate is retried with backoff (the node stays cordoned and empty, owned by the
// operation); it reports done once the instance is gone.
func (t *tick) retire(op *Operation) (done bool, err error) {
	if t.now.Before(op.RetryAt) {
		return false, nil
	}
	if err := t.guard("terminate"); err != nil {
		return false, err
	}
	if err := t.s.Cloud.Terminate(t.ctx, []string{op.Instance}); err != nil && !IsNotFound(err) {
		t.retryLater(op)
		t.act(Act{Kind: "terminate", Operation: op.ID, Instances: []string{op.Instance}, Node: op.Node, Result: "failed",
			Error: fmt.Sprintf("%v (retried after %s)", err, op.RetryAt.UTC().Format("15:04:05")), ErrorKind: string(KindOf(err))})
		return false, nil
	}
	t.act(Act{Kind: "terminate", Operation: op.ID, Instances: []string{op.Instance}, Node: op.Node, Result: "ok"})
	if err := t.guard("delete_node"); err != nil {
		return false, err
	}
	if err := t.s.Cluster.Delete(t.ctx, op.Node); err != nil && !IsNotFound(err) {
		t.act(Act{Kind: "delete_node", Operation: op.ID, Node: op.Node, Result: "failed", Error: err.Error()})
	}
	// a second run of this tick (a duplicate delivery) must not start another scale-down
	// at once: Decide's same-instant guard reads this
	t.st.LastRemoved = t.now
	t.st.Workers = max(0, t.obs.Capacity()-1)
	t.obs.Instances = slices.DeleteFunc(t.obs.Instances, func(in Instance) bool { return in.ID == op.Instance })
	t.obs.Nodes = slices.DeleteFunc(t.obs.Nodes, func(n Node) bool { return n.Name == op.Node })
	t.obs.RegisteredWorkers = max(0, t.obs.RegisteredWorkers-1)
	cpu := "n/a"
	if r := t.obs.Readings.CPU; r.OK() {
		cpu = fmt.Sprintf("%.0f%%", r.Value)
	}
	t.event(EventScaleDown, Decision{Action: ActionScaleDown, Delta: -1, Node: op.Node, Instance: op.Instance, Reason: op.Reason},
		fmt.Sprintf("Removed 1 node (CPU: %s) → Total: %d nodes", cpu, t.st.Workers), "")
	return true, nil
}

// abortDrain gives a cordoned node back; it reports done when the uncordon went through.
// When it fails, the operation stays (phase uncordoning) and the uncordon is retried with
// backoff.
func (t *tick) abortDrain(op *Operation, why string) (done bool, err error) {
	op.Phase = PhaseUncordoning
	if done, err = t.uncordon(op, why); err != nil {
		return false, err
	}
	t.event(EventFailure, Decision{Action: ActionScaleDown, Delta: -1, Node: op.Node, Instance: op.Instance, Reason: op.Reason},
		"Scale-down of "+op.Node+" abandoned: "+why, why)
	return done, nil
}

// giveBack retries the uncordon of an abandoned scale-down once its backoff has passed.
func (t *tick) giveBack(op *Operation) (done bool, err error) {
	if t.now.Before(op.RetryAt) {
		return false, nil
	}
	return t.uncordon(op, "retrying the uncordon of an abandoned scale-down")
}

func (t *tick) uncordon(op *Operation, why string) (done bool, err error) {
	if err := t.guard("uncordon"); err != nil {
		return false, err
	}
	a := Act{Kind: "uncordon", Operation: op.ID, Node: op.Node, Result: "ok", Error: why}
	if err := t.s.Cluster.Uncordon(t.ctx, op.Node); err != nil && !IsNotFound(err) {
		t.retryLater(op)
		a.Result, a.ErrorKind = "failed", string(KindOf(err))
		a.Error = fmt.Sprintf("%s; uncordon: %v (retried after %s)", why, err, op.RetryAt.UTC().Format("15:04:05"))
		t.act(a)
		return false, nil
	}
	t.act(a)
	return true, nil
}

// retryLater notes a failed terminate or uncordon and when to try again.
func (t *tick) retryLater(op *Operation) {
	op.Failures++
	op.RetryAt = t.now.Add(retryBackoff(op.Failures))
}
