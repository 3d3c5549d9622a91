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
	t.obs.countWorkers(t.s.Policy, t.s.Cluster != nil)
	return nil
}

func (t *tick) scaleDown(d Decision) error {
	if t.s.DryRun {
		t.act(Act{Kind: "cordon", Node: d.Node, Instances: []string{d.Instance}, Result: "dry_run"})
		return nil
	}
	t.st.Seq++
	op := &Operation{ID: fmt.Sprintf("%s-op-%d", t.s.ClusterID, t.st.Seq), Kind: OpScaleDown,
		Phase: PhaseCordoned, Started: t.now, Node: d.Node, Instance: d.Instance, Reason: d.Reason}
	t.st.Operation = op
	t.st.LastScaleDown = t.now
	if err := t.save(); err != nil {
		return err
	}
	return t.continueDrain(op)
}

// continueDrain moves the slot's scale-down along: cordon -> drain (one Drain call per tick)
// -> terminate -> delete the node; or uncordon when the drain fails or times out.
func (t *tick) continueDrain(op *Operation) error {
	if op.Phase == PhaseCordoned {
		if err := t.guard("cordon"); err != nil {
			return err
		}
		if err := t.s.Cluster.Cordon(t.ctx, op.Node); err != nil {
			t.act(Act{Kind: "cordon", Operation: op.ID, Node: op.Node, Result: "failed", Error: err.Error(), ErrorKind: string(KindOf(err))})
			if IsNotFound(err) {
				t.st.Operation = nil
				return nil
			}
			return t.abortDrain(op, "cordon failed: "+err.Error())
		}
		t.act(Act{Kind: "cordon", Operation: op.ID, Node: op.Node, Result: "ok"})
		op.Phase = PhaseDraining
		if err := t.save(); err != nil {
			return err
		}
	}
	if op.Phase == PhaseDraining {
		if err := t.guard("drain"); err != nil {
			return err
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
				return err
			}
		case t.now.Sub(op.Started) >= t.s.Policy.DrainTimeout:
			why := fmt.Sprintf("drain not finished after %v (%d pods left)", t.s.Policy.DrainTimeout, ds.Remaining)
			if a.Error != "" {
				why += ": " + a.Error
			}
			return t.abortDrain(op, why)
		default:
			return nil // keep draining next tick
		}
	}
	var done bool
	var err error
	switch op.Phase {
	case PhaseTerminating:
		done, err = t.retire(op)
	case PhaseUncordoning:
		done, err = t.giveBack(op)
	}
	if done {
		t.st.Operation = nil
	}
	return err
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

// abortDrain gives the slot's cordoned node back and drops the operation; when the uncordon
// fails, the operation stays (phase uncordoning) and the uncordon is retried with backoff.
func (t *tick) abortDrain(op *Operation, why string) error {
	op.Phase = PhaseUncordoning
	done, err := t.uncordon(op, why)
	if err != nil {
		return err
	}
	t.event(EventFailure, Decision{Action: ActionScaleDown, Delta: -1, Node: op.Node, Instance: op.Instance, Reason: op.Reason},
		"Scale-down of "+op.Node+" abandoned: "+why, why)
	if done {
		t.st.Operation = nil
	}
	return nil
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
