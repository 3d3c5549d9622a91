package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// The scale-up half of the Step: launching with a write-ahead intent, watching the
// instances join, and sweeping instances that never did.

// watchJoin follows a scale-up's instances until each is a Ready node, or terminates it when
// NodeReadyTimeout passes without that. It reports done when none is left to wait for.
func (t *tick) watchJoin(op *Operation) (done bool, err error) {
	ready := map[string]Node{}
	for _, n := range t.obs.Nodes {
		// A node with pods has been Ready (pods are only scheduled on Ready nodes): it
		// joined, and a NotReady spell now is no failed join. Terminating it would kill
		// its pods without eviction.
		if n.Ready || (n.Pods > 0 && n.InstanceID != "") {
			ready[n.InstanceID] = n
		}
	}
	launched := map[string]Instance{}
	for _, in := range t.obs.Instances {
		launched[in.ID] = in
	}
	var waiting []string
	for _, id := range op.Instances {
		if in, ok := launched[id]; ok && (in.State == InstanceTerminated || in.State == InstanceStopping) {
			// interrupted or terminated before joining: nothing left to wait for
			t.act(Act{Kind: "gone", Operation: op.ID, Instances: []string{id}, Result: "ok", Error: "instance " + string(in.State) + " before its node was Ready"})
			continue
		}
		if _, ok := ready[id]; ok {
			a := Act{Kind: "joined", Operation: op.ID, Instances: []string{id}, Result: "ok"}
			if in, ok := launched[id]; ok {
				a.JoinSeconds = t.now.Sub(in.LaunchedAt).Seconds()
			}
			t.act(a)
			continue
		}
		// The timeout runs from the instance's launch: a retried intent may launch long
		// after the operation started. An instance DescribeInstances does not list yet is
		// timed from when RunInstances answered (Launched, for a retried intent).
		started := op.Started
		if in, ok := launched[id]; ok && !in.LaunchedAt.IsZero() {
			started = in.LaunchedAt
		} else if op.Launched.After(started) {
			started = op.Launched
		}
		if t.now.Sub(started) > t.s.Policy.NodeReadyTimeout {
			if err := t.terminate(op.ID, id, "not Ready after "+t.s.Policy.NodeReadyTimeout.String()); err != nil {
				op.Instances = append(waiting, op.Instances[slices.Index(op.Instances, id):]...)
				return false, err
			}
			continue
		}
		waiting = append(waiting, id)
	}
	op.Instances = waiting
	return len(waiting) == 0, nil
}

// sweepOrphans terminates managed instances that never registered as a node within
// NodeReadyTimeout and belong to no open operation: no orphaned, billed instances.
func (t *tick) sweepOrphans() error {
	registered := map[string]bool{}
	for _, n := range t.obs.Nodes {
		registered[n.InstanceID] = true
	}
	open := map[string]bool{}
	for _, op := range t.st.Open() {
		for _, id := range op.Instances {
			open[id] = true
		}
		open[op.Instance] = true
	}
	// terminate removes the instance from t.obs.Instances: range over a copy, or the
	// instance after each terminated one is skipped
	for _, in := range slices.Clone(t.obs.Instances) {
		if registered[in.ID] || open[in.ID] || in.State == InstanceTerminated || in.State == InstanceStopping {
			continue
		}
		if age := t.now.Sub(in.LaunchedAt); age > t.s.Policy.NodeReadyTimeout {
			if err := t.terminate("", in.ID, fmt.Sprintf("never registered, %v after launch", age.Round(time.Second))); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tick) scaleUp(d Decision) error {
	var draining []*Operation
	for _, op := range t.st.Open() {
		if op.Kind == OpScaleDown && op.Cause == "" && (op.Phase == PhaseCordoned || op.Phase == PhaseDraining) {
			draining = append(draining, op)
		}
	}
	if t.s.DryRun {
		for _, op := range draining {
			t.act(Act{Kind: "uncordon", Operation: op.ID, Node: op.Node, Result: "dry_run", Error: "scale-up needed"})
		}
		t.act(Act{Kind: "launch", Count: d.Delta, Result: "dry_run"})
		return nil
	}
	// The scale-up needs the operation slot, and an unfinished operation is never dropped.
	// A scale-down still cordoned or draining is given up: its node, uncordoned, is capacity
	// at once. A drained node whose terminate failed, a node whose uncordon failed, and a
	// scale-up whose instances still join finish beside the new operation.
	for _, op := range draining {
		done, err := t.abortDrain(op, "scale-up needed: "+d.Reason)
		if err != nil {
			return err
		}
		if done {
			t.drop(op)
		}
	}
	if t.st.Operation != nil {
		t.setAside("scale-up needed: " + d.Reason)
	}
	t.st.Seq++
	return t.launch(&Operation{ID: fmt.Sprintf("%s-op-%d", t.s.ClusterID, t.st.Seq), Kind: OpScaleUp,
		Phase: PhaseLaunching, Started: t.now, Count: d.Delta, Reason: d.Reason})
}

// launch runs the launching phase of a scale-up: each usable offering in turn, intent saved
// before every RunInstances, backoff recorded for offerings that fail.
func (t *tick) launch(op *Operation) error {
	if t.s.Policy.PlansCapacity() {
		return t.launchPlan(op) // capacity_launch.go
	}
	offerings := t.s.Offerings
	if len(offerings) == 0 {
		offerings = []Offering{{}}
	}
	// A retry after a crash keeps the offering and token it had.
	if op.Token != "" {
		offerings = append([]Offering{op.Offering}, slices.DeleteFunc(slices.Clone(offerings), func(o Offering) bool { return o == op.Offering })...)
	}
	var lastErr error
	for _, off := range offerings {
		if until, ok := t.st.Backoff[off.Key()]; ok && t.now.Before(until) && op.Token == "" {
			continue
		}
		if op.Token == "" || op.Offering != off {
			op.Attempts++
			op.Offering, op.Token = off, fmt.Sprintf("%s-%d", op.ID, op.Attempts)
		}
		t.st.Operation = op
		if err := t.save(); err != nil { // write-ahead intent
			return err
		}
		if err := t.guard("launch"); err != nil {
			return err
		}
		insts, err := t.s.Cloud.Launch(t.ctx, LaunchRequest{Token: op.Token, OperationID: op.ID, Count: op.Count, Offering: off})
		a := Act{Kind: "launch", Operation: op.ID, Count: op.Count, Offering: off.Key(), Result: "ok"}
		if err == nil {
			t.launched(op, insts, false)
			a.Instances = op.Instances
			t.act(a)
			op.Phase = PhaseJoining
			if t.now.After(op.Started) {
				op.Launched = t.now
			}
			t.st.LastScaleUp = t.now
			t.st.Workers = t.obs.Capacity()
			delete(t.st.Backoff, off.Key())
			cpu := "n/a"
			if r := t.obs.Readings.CPU; r.OK() {
				cpu = fmt.Sprintf("%.0f%%", r.Value)
			}
			t.event(EventScaleUp, t.rec.Decision, fmt.Sprintf("Added %d %s (CPU: %s) → Total: %d nodes",
				len(op.Instances), plural(len(op.Instances), "node"), cpu, t.st.Workers), "")
			return nil
		}
		a.Result, a.Error, a.ErrorKind = "failed", err.Error(), string(KindOf(err))
		t.act(a)
		lastErr = err
		op.Token = ""
		switch KindOf(err) {
		case KindCapacity:
			t.backoff(off, t.s.capBackoff())
			continue
		case KindUnsupported:
			t.backoff(off, t.s.unsupBackoff())
			continue
		}
		break // quota, throttling, other: no other offering will fare better this tick
	}
	t.st.Operation = nil
	if lastErr == nil {
		lastErr = errors.New("every offering is backing off")
	}
	t.event(EventFailure, t.rec.Decision, "Scale-up failed: "+failureText(lastErr), lastErr.Error())
	return nil
}

func (t *tick) backoff(off Offering, d time.Duration) {
	if t.st.Backoff == nil {
		t.st.Backoff = map[string]time.Time{}
	}
	t.st.Backoff[off.Key()] = t.now.Add(d)
}

// failureText words a launch error for people: "EC2 quota exceeded".
func failureText(err error) string {
	switch KindOf(err) {
	case KindQuota:
		return "EC2 quota exceeded"
	case KindCapacity:
		return "EC2 has no capacity for any configured offering"
	case KindThrottled:
		return "EC2 API throttled, retrying next tick"
	case KindUnsupported:
		return "instance type not supported in the configured zones"
	}
	return err.Error()
}

// launched records a launch's instances in op (its spot ones in SpotInstances too) and
// counts as launching only what the observation does not show yet: a retry with the same
// token returns instances that may be listed (even joined or gone) already.
func (t *tick) launched(op *Operation, insts []Instance, spot bool) {
	seen := map[string]bool{}
	for _, in := range t.obs.Instances {
		seen[in.ID] = true
	}
	for _, in := range insts {
		op.Instances = append(op.Instances, in.ID)
		if spot {
			op.SpotInstances = append(op.SpotInstances, in.ID)
		}
		if !seen[in.ID] && (in.State == InstancePending || in.State == InstanceRunning) {
			seen[in.ID] = true
			t.obs.Instances = append(t.obs.Instances, in)
			t.obs.Launching++
		}
	}
	slices.Sort(op.Instances)
	op.Instances = slices.Compact(op.Instances)
	if spot {
		slices.Sort(op.SpotInstances)
		op.SpotInstances = slices.Compact(op.SpotInstances)
	}
}
