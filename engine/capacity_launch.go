package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// launchPlan runs the launching phase of a scale-up of a policy that plans capacity: the
// operation's plan (its parts: capacity type, zone, count) is made when it starts, and each
// part is launched in turn into its candidates (capacity.go), the intent saved before every
// RunInstances. A spot part that finds no spot capacity falls back to on-demand. A retry
// after a crash goes on from the part in flight, with the same offering and ClientToken.
func (t *tick) launchPlan(op *Operation) error {
	if op.Plan == nil && op.Token == "" && len(op.Instances) == 0 {
		m := mixOf(t.obs, t.st)
		op.Plan = planLaunch(t.s.Policy, zonesOf(baseOfferings(t.s.Policy, t.s.Offerings)), m, op.Count)
	}
	if op.Plan == nil && op.Token != "" { // an intent written before plans: its one offering
		op.Plan = []LaunchPart{{CapacityType: op.Offering.CapacityType, Zone: op.Offering.Zone, Count: op.Count}}
	}
	t.st.Operation = op
	var failed []string
	var lastErr error
	for len(op.Plan) > 0 {
		part := op.Plan[0]
		ok, err, stop := t.launchPart(op, part)
		if stop != nil {
			return stop
		}
		if !ok {
			lastErr = err
			failed = append(failed, fmt.Sprintf("%d %s: %s", part.Count, part.CapacityType, failureText(err)))
		}
		op.Plan = op.Plan[1:]
		if !ok && !retryElsewhere(err) {
			for _, rest := range op.Plan {
				failed = append(failed, fmt.Sprintf("%d %s: not tried", rest.Count, rest.CapacityType))
			}
			break
		}
	}
	op.Plan, op.Token = nil, ""
	if len(op.Instances) == 0 {
		t.st.Operation = nil
		if lastErr == nil {
			lastErr = errors.New("every offering is backing off")
		}
		t.event(EventFailure, t.rec.Decision, "Scale-up failed: "+failureText(lastErr), lastErr.Error())
		return nil
	}
	op.Phase = PhaseJoining
	if t.now.After(op.Started) {
		op.Launched = t.now
	}
	t.st.LastScaleUp = t.now
	t.st.Workers = t.obs.Capacity()
	cpu := "n/a"
	if r := t.obs.Readings.CPU; r.OK() {
		cpu = fmt.Sprintf("%.0f%%", r.Value)
	}
	mix := ""
	if n := len(op.SpotInstances); n > 0 {
		mix = fmt.Sprintf(", %d spot", n)
	}
	t.event(EventScaleUp, t.rec.Decision, fmt.Sprintf("Added %d %s%s (CPU: %s) → Total: %d nodes",
		len(op.Instances), plural(len(op.Instances), "node"), mix, cpu, t.st.Workers), "")
	if len(failed) > 0 {
		why := strings.Join(failed, "; ")
		t.event(EventFailure, t.rec.Decision, fmt.Sprintf("Scale-up launched %d of %d: %s", len(op.Instances), op.Count, why), lastErr.Error())
	}
	return nil
}

// retryElsewhere reports whether a part's failure leaves the next parts worth trying (they
// may go to other capacity types and zones); throttling and unknown errors end the launch.
func retryElsewhere(err error) bool {
	switch KindOf(err) {
	case KindCapacity, KindUnsupported, KindQuota:
		return true
	}
	return err != nil && strings.Contains(err.Error(), "backing off")
}

// launchPart launches one part into its candidates in order. It reports whether the part
// launched, the last launch error when it did not, and a non-nil stop when the tick must end
// (the intent could not be saved, the lease was lost, the invocation was killed).
func (t *tick) launchPart(op *Operation, part LaunchPart) (ok bool, lastErr error, stop error) {
	cands := t.candidates(part)
	if op.Token != "" { // in flight when the last run ended: the same offering and token first
		cands = append([]Offering{op.Offering}, slices.DeleteFunc(cands, func(o Offering) bool { return o == op.Offering })...)
	}
	spotQuota := false
	for _, off := range cands {
		if off.Spot() && spotQuota {
			continue
		}
		if op.Token == "" || op.Offering != off {
			op.Attempts++
			op.Offering, op.Token = off, fmt.Sprintf("%s-%d", op.ID, op.Attempts)
		}
		if err := t.save(); err != nil { // write-ahead intent
			return false, nil, err
		}
		if err := t.guard("launch"); err != nil {
			return false, nil, err
		}
		insts, err := t.s.Cloud.Launch(t.ctx, LaunchRequest{Token: op.Token, OperationID: op.ID, Count: part.Count, Offering: off})
		a := Act{Kind: "launch", Operation: op.ID, Count: part.Count, Offering: off.Key(), Result: "ok"}
		if err == nil {
			t.launched(op, insts, off.Spot())
			a.Instances = instancesOf(insts)
			t.act(a)
			delete(t.st.Backoff, off.Key())
			op.Token = ""
			return true, nil, nil
		}
		a.Result, a.Error, a.ErrorKind = "failed", err.Error(), string(KindOf(err))
		t.act(a)
		lastErr = err
		op.Token = ""
		switch KindOf(err) {
		case KindCapacity:
			t.backoff(off, t.s.capBackoff())
			t.noteTrouble(off)
			continue
		case KindUnsupported:
			t.backoff(off, t.s.unsupBackoff())
			continue
		case KindQuota:
			if off.Spot() { // the spot instance limit: on-demand has its own
				spotQuota = true
				for _, o := range cands {
					if o.Spot() {
						t.backoff(o, t.s.capBackoff())
					}
				}
				continue
			}
		}
		return false, err, nil // quota, throttling, other: no other offering will fare better this tick
	}
	if lastErr == nil {
		lastErr = errors.New("every offering is backing off")
	}
	return false, lastErr, nil
}

func instancesOf(insts []Instance) []string {
	out := make([]string, 0, len(insts))
	for _, in := range insts {
		out = append(out, in.ID)
	}
	slices.Sort(out)
	return out
}
