package chaos

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// One test per fault kind: the run keeps every invariant (runChaos fails the test
// otherwise), the fault did fire, and the behaviour the catalogue promises shows in the
// records.

func needInjected(t *testing.T, out *Outcome, kind string) {
	t.Helper()
	if out.Injected[kind] == 0 {
		t.Fatalf("%s never fired: %v", kind, out.Injected)
	}
}

func TestChaosKindInvokeDuplicate(t *testing.T) {
	base := runChaos(t, spike(t), 1, "notify-down@0s+1s")
	out := runChaos(t, spike(t), 1, "invoke-duplicate@0s+40m")
	needInjected(t, out, InvokeDuplicate)
	if out.Injected[InvokeDuplicate] < 20 {
		t.Errorf("want an overlap and a duplicate on most ticks, got %d", out.Injected[InvokeDuplicate])
	}
	// duplicates and overlaps changed nothing: the same instances were launched
	if a, b := len(base.World.Cloud.All()), len(out.World.Cloud.All()); a != b {
		t.Errorf("instances: %d without duplicates, %d with", a, b)
	}
}

func TestChaosKindInvokeKill(t *testing.T) {
	out := runChaos(t, spike(t), 1, "invoke-kill@8m+10m")
	needInjected(t, out, InvokeKill)
	recs := out.Result.Records
	lease := 3 * time.Minute
	for i, r := range recs {
		if !strings.Contains(r.Error, "killed") {
			continue
		}
		freed := false
		for _, n := range recs[i+1:] {
			if n.Time.After(r.Time.Add(lease + world.TickInterval)) {
				break
			}
			if n.Lock == engine.LockAcquired {
				freed = true
				break
			}
		}
		if !freed {
			t.Errorf("killed at %s: no tick acquired the lock within a lease plus a tick", r.Time.Format(time.TimeOnly))
		}
	}
	// every intent left open by a kill was reconciled: nothing is left launching
	last := recs[len(recs)-1]
	if op := last.State.Operation; op != nil && op.Phase == engine.PhaseLaunching {
		t.Errorf("operation %s still launching at the end", op.ID)
	}
	if len(actsOf(recs, "launch")) == 0 {
		t.Error("no launch at all")
	}
}

func TestChaosKindInvokePause(t *testing.T) {
	out := runChaos(t, spike(t), 1, "invoke-pause@8m+14m")
	needInjected(t, out, InvokePause)
	if out.World.State.Rejected == 0 {
		t.Error("the resumed holder's write was not fenced out")
	}
}

func TestChaosKindLockHeld(t *testing.T) {
	out := runChaos(t, spike(t), 1, "lock-held@8m+6m")
	needInjected(t, out, LockHeld)
	for _, r := range out.Result.Records {
		in := within(r.Time, 8*time.Minute, 14*time.Minute)
		if in && (r.Lock != engine.LockHeld || len(r.Acted) > 0) {
			t.Errorf("%s: lock %s, %d acts while the lock is held elsewhere", r.Time.Format(time.TimeOnly), r.Lock, len(r.Acted))
		}
		if !in && r.Lock != engine.LockAcquired {
			t.Errorf("%s: lock %s outside the fault", r.Time.Format(time.TimeOnly), r.Lock)
		}
	}
}

// instancesPerOp checks that no operation got more instances than the policy's largest step.
func instancesPerOp(t *testing.T, out *Outcome) {
	t.Helper()
	per := map[string]int{}
	for _, in := range out.World.Cloud.All() {
		if in.OperationID != "" {
			per[in.OperationID]++
		}
	}
	for op, n := range per {
		if n > engine.DefaultPolicy().ScaleUpMaxStep {
			t.Errorf("operation %s has %d instances", op, n)
		}
	}
}

func TestChaosKindStoreThrottle(t *testing.T) {
	out := runChaos(t, spike(t), 3, "store-throttle@6m+24m")
	needInjected(t, out, StoreThrottle)
	instancesPerOp(t, out)
	if out.Result.Summary.TickErrors == 0 {
		t.Error("no tick saw the throttling")
	}
}

func TestChaosKindStoreLostResponse(t *testing.T) {
	out := runChaos(t, spike(t), 3, "store-lost-response@6m+24m")
	needInjected(t, out, StoreLostResponse)
	instancesPerOp(t, out)
}

func TestChaosKindEC2Capacity(t *testing.T) {
	out := runChaos(t, spike(t), 1, "ec2-capacity@8m+10m#0")
	needInjected(t, out, EC2Capacity)
	a, b := world.Offerings[0].Key(), world.Offerings[1].Key()
	for i, r := range out.Result.Records {
		if len(r.Acted) < 2 || r.Acted[0].Kind != "launch" {
			continue
		}
		if r.Acted[0].Offering != a || r.Acted[0].ErrorKind != string(engine.KindCapacity) {
			t.Fatalf("first launch: %+v", r.Acted[0])
		}
		if r.Acted[1].Offering != b || r.Acted[1].Result != "ok" {
			t.Fatalf("the other zone was not used in the same tick: %+v", r.Acted[1])
		}
		next := out.Result.Records[i+1].State
		if until := next.Backoff[a]; !until.Equal(r.Time.Add(5 * time.Minute)) {
			t.Fatalf("backoff of %s: %v, want %v", a, until, r.Time.Add(5*time.Minute))
		}
		for _, l := range actsOf(out.Result.Records[i+1:], "launch") {
			if l.a.Offering == a && l.t.Before(r.Time.Add(5*time.Minute)) {
				t.Errorf("%s retried at %s inside its backoff", a, l.t.Format(time.TimeOnly))
			}
		}
		return
	}
	t.Fatal("no launch met the capacity fault")
}

func TestChaosKindEC2Quota(t *testing.T) {
	out := runChaos(t, spike(t), 1, "ec2-quota@8m+10m")
	needInjected(t, out, EC2Quota)
	failedTicks := 0
	for _, r := range out.Result.Records {
		if !within(r.Time, 8*time.Minute, 18*time.Minute) {
			continue
		}
		launches := actsOf([]engine.Record{r}, "launch")
		if len(launches) == 0 {
			continue
		}
		failedTicks++
		if len(launches) != 1 || launches[0].a.ErrorKind != string(engine.KindQuota) {
			t.Errorf("%s: want one launch refused for quota (no other offering tried), got %+v", r.Time.Format(time.TimeOnly), launches)
		}
		if len(r.Events) == 0 || !strings.Contains(r.Events[0].Message, "EC2 quota exceeded") {
			t.Errorf("%s: no failure event: %+v", r.Time.Format(time.TimeOnly), r.Events)
		}
	}
	if failedTicks == 0 {
		t.Fatal("no launch during the quota fault")
	}
	ok := false
	for _, l := range actsOf(out.Result.Records, "launch") {
		ok = ok || (l.a.Result == "ok" && !l.t.Before(at(18*time.Minute)))
	}
	if !ok {
		t.Error("no scale-up after the quota allowed it again")
	}
}

func TestChaosKindEC2Throttle(t *testing.T) {
	out := runChaos(t, spike(t), 1, "ec2-throttle@8m+14m")
	needInjected(t, out, EC2Throttle)
	instancesPerOp(t, out)
	if out.Result.Summary.ScaleUps == 0 {
		t.Error("no scale-up at all")
	}
}

func TestChaosKindEC2Unsupported(t *testing.T) {
	out := runChaos(t, spike(t), 1, "ec2-unsupported@8m+20m#0")
	needInjected(t, out, EC2Unsupported)
	a := world.Offerings[0].Key()
	var firstFail time.Time
	for _, l := range actsOf(out.Result.Records, "launch") {
		if l.a.Offering == a && l.a.ErrorKind == string(engine.KindUnsupported) && firstFail.IsZero() {
			firstFail = l.t
			continue
		}
		if !firstFail.IsZero() && l.a.Offering == a {
			t.Errorf("%s tried again at %s, inside its 6h backoff", a, l.t.Format(time.TimeOnly))
		}
		if !firstFail.IsZero() && l.a.Result != "ok" {
			t.Errorf("launch on the other zone failed: %+v", l.a)
		}
	}
	if firstFail.IsZero() {
		t.Fatal("no launch met the fault")
	}
}

func TestChaosKindEC2LaunchThenFail(t *testing.T) {
	out := runChaos(t, spike(t), 1, "ec2-launch-then-fail@9m+3m")
	needInjected(t, out, EC2LaunchThenFail)
	recs := out.Result.Records
	for i, r := range recs {
		if len(r.Acted) == 0 || r.Acted[0].Kind != "launch" || r.Acted[0].Result != "failed" {
			continue
		}
		op := r.Acted[0].Operation
		n := 0
		for _, in := range out.World.Cloud.All() {
			if in.OperationID == op {
				n++
			}
		}
		if n != r.Acted[0].Count {
			t.Fatalf("operation %s: %d instances, asked %d", op, n, r.Acted[0].Count)
		}
		next := recs[i+1]
		if got, want := next.Observation.Capacity(), r.Observation.Capacity()+n; got < want {
			t.Errorf("next tick counts %d workers, want >= %d: the launched instances are not counted", got, want)
		}
		instancesPerOp(t, out)
		return
	}
	t.Fatal("no failed launch")
}

func TestChaosKindEC2DescribeLag(t *testing.T) {
	out := runChaos(t, spike(t), 1, "ec2-describe-lag@6m+30m#119")
	needInjected(t, out, EC2DescribeLag)
	instancesPerOp(t, out)
	// the lagging instances were counted as launching: never two launches in a cooldown
	var last time.Time
	for _, l := range actsOf(out.Result.Records, "launch") {
		if l.a.Result == "ok" && !last.IsZero() && l.t.Sub(last) < 5*time.Minute {
			t.Errorf("launches at %s and %s", last.Format(time.TimeOnly), l.t.Format(time.TimeOnly))
		}
		if l.a.Result == "ok" {
			last = l.t
		}
	}
}

func TestChaosKindNodeNeverReady(t *testing.T) {
	out := runChaos(t, spike(t), 1, "node-never-ready@9m+3m")
	needInjected(t, out, NodeNeverReady)
	now := world.Epoch.Add(spike(t).Duration())
	found := false
	for _, in := range out.World.Cloud.All() {
		if !in.Managed || out.World.Cluster.NodeByInstance(in.ID) != nil {
			continue
		}
		found = true
		if in.State != engine.InstanceTerminated {
			t.Errorf("never-ready instance %s is %s at the end", in.ID, in.State)
		}
		if s := in.BilledSeconds(now); s > (10*time.Minute + 2*world.TickInterval).Seconds() {
			t.Errorf("never-ready instance %s billed %.0fs", in.ID, s)
		}
	}
	if !found {
		t.Fatal("no instance without a node")
	}
	ok := false
	for _, a := range actsOf(out.Result.Records, "terminate") {
		// by the operation's watch, or by the orphan sweep when a later scale-up took
		// the operation's place
		ok = ok || strings.Contains(a.a.Error, "not Ready after") || strings.Contains(a.a.Error, "never registered")
	}
	if !ok {
		t.Error("no termination for the node-ready timeout")
	}
}

func TestChaosKindSlowBoot(t *testing.T) {
	out := runChaos(t, spike(t), 1, "slow-boot@8m+20m#4")
	needInjected(t, out, SlowBoot)
	instancesPerOp(t, out)
	launched := 0
	for _, l := range actsOf(out.Result.Records, "launch") {
		if l.a.Result == "ok" {
			launched += len(l.a.Instances)
		}
	}
	if joined := len(actsOf(out.Result.Records, "joined")); joined != launched {
		t.Errorf("%d launched, %d joined: a slow instance was given up", launched, joined)
	}
}

// scaleDownOps returns the scale-down operations' acts by operation.
func scaleDownOps(recs []engine.Record) map[string][]timedAct {
	ops := map[string][]timedAct{}
	for _, r := range recs {
		for _, a := range r.Acted {
			switch a.Kind {
			case "cordon", "drain", "uncordon", "terminate":
				if a.Node != "" {
					ops[a.Operation] = append(ops[a.Operation], timedAct{r.Time, a})
				}
			}
		}
	}
	return ops
}

func TestChaosKindPDB429(t *testing.T) {
	out := runChaos(t, quiet(t, 4), 1, "pdb-429@10m+10m")
	needInjected(t, out, PDB429)
	aborted := 0
	for op, acts := range scaleDownOps(out.Result.Records) {
		if acts[0].t.Before(at(10*time.Minute)) || !acts[0].t.Before(at(20*time.Minute)) {
			continue
		}
		kinds := []string{}
		for _, a := range acts {
			kinds = append(kinds, a.a.Kind)
		}
		if slices.Contains(kinds, "terminate") {
			t.Errorf("%s: node terminated although every eviction was refused: %v", op, kinds)
		}
		last := acts[len(acts)-1]
		if last.a.Kind != "uncordon" || last.t.Sub(acts[0].t) < 5*time.Minute {
			t.Errorf("%s: want an uncordon after the 5m drain timeout, got %v", op, kinds)
			continue
		}
		aborted++
		for _, n := range out.World.Cluster.AllNodes() {
			if n.Name == last.a.Node && n.Unschedulable {
				t.Errorf("%s still cordoned", n.Name)
			}
		}
	}
	if aborted == 0 {
		t.Fatal("no drain met the fault")
	}
}

func TestChaosKindPodIgnoresSIGTERM(t *testing.T) {
	out := runChaos(t, quiet(t, 4), 1, "pod-ignores-sigterm@5m+30m")
	needInjected(t, out, PodIgnoresSIGTERM)
	if out.Result.Summary.ScaleDowns == 0 {
		t.Fatal("no scale-down")
	}
	for op, acts := range scaleDownOps(out.Result.Records) {
		drained := false
		for _, a := range acts {
			drained = drained || (a.a.Kind == "drain" && a.a.Result == "ok")
			if a.a.Kind == "terminate" && !drained {
				t.Errorf("%s: terminated before the slow pods were gone", op)
			}
		}
	}
}

func TestChaosKindNodesNotReady(t *testing.T) {
	out := runChaos(t, quiet(t, 4), 1, "nodes-notready@10m+10m")
	needInjected(t, out, NodesNotReady)
	for _, r := range out.Result.Records {
		notReady := map[string]bool{}
		for _, n := range r.Observation.Nodes {
			notReady[n.Name] = !n.Ready
		}
		if r.Decision.Action == engine.ActionScaleDown && notReady[r.Decision.Node] {
			t.Errorf("%s: scale-down of NotReady node %s", r.Time.Format(time.TimeOnly), r.Decision.Node)
		}
	}
}

func TestChaosKindProm(t *testing.T) {
	for _, kind := range promKinds {
		t.Run(kind, func(t *testing.T) {
			// every reading faulty for the first 20 minutes of a run that wants to
			// scale down
			out := runChaos(t, quiet(t, 4), 1, kind+"@0s+20m#254")
			needInjected(t, out, kind)
			after := false
			for _, r := range out.Result.Records {
				if r.Decision.Action != engine.ActionScaleDown {
					continue
				}
				if r.Time.Before(at(20 * time.Minute)) {
					t.Errorf("%s: scale-down on faulty metrics (%s)", r.Time.Format(time.TimeOnly), r.Decision.Reason)
				}
				after = true
			}
			if !after {
				t.Error("no scale-down once the metrics were good again: the test shows nothing")
			}
		})
	}
}

func TestChaosKindNotifyDown(t *testing.T) {
	out := runChaos(t, spike(t), 1, "notify-down@0s+40m", Options{Twin: true})
	needInjected(t, out, NotifyDown)
	for _, r := range out.Result.Records {
		if len(r.Events) > 0 && r.NotifyError == "" {
			t.Errorf("%s: events sent but no notify error recorded", r.Time.Format(time.TimeOnly))
		}
		if r.Error != "" {
			t.Errorf("%s: a notification failure failed the tick: %s", r.Time.Format(time.TimeOnly), r.Error)
		}
	}
}

func TestChaosKindSpotInterruption(t *testing.T) {
	// at min: the interrupted worker must be replaced at the next tick (regression: the
	// gone node's object kept counting as a worker, so it never was)
	out := runChaos(t, quiet(t, 2), 1, "spot-interruption@10m+2m")
	needInjected(t, out, SpotInterruption)
	for _, r := range out.Result.Records {
		if r.Time.Before(at(12 * time.Minute)) {
			continue
		}
		if r.Decision.Action != engine.ActionScaleUp || !slices.Contains(r.Decision.Triggers, engine.TriggerBelowMin) {
			t.Fatalf("%s: first tick after the interruption: %s %q, want a below-min scale-up", r.Time.Format(time.TimeOnly), r.Decision.Action, r.Decision.Reason)
		}
		if l := actsOf([]engine.Record{r}, "launch"); len(l) != 1 || l[0].a.Result != "ok" {
			t.Fatalf("no replacement launched: %+v", r.Acted)
		}
		return
	}
}

// The checker itself must be able to fail: an engine whose policy differs from the one the
// checker holds it to breaks the invariants.
func TestChaosCheckerCatchesBrokenEngine(t *testing.T) {
	cases := []struct {
		name  string
		sc    scenarios.Scenario
		bend  func(p *engine.Policy)
		inv   string
		sched string
	}{
		{"cooldown ignored", spike(t), func(p *engine.Policy) { p.ScaleUpCooldown = 0 }, "inv 10", "notify-down@0s+1s"},
		{"min ignored", quiet(t, 2), func(p *engine.Policy) { p.MinWorkers = 1 }, "inv 3", "notify-down@0s+1s"},
		{"bad data trusted", quiet(t, 4), func(p *engine.Policy) { p.MaxMetricAge = 24 * time.Hour }, "inv 5", "prom-stale@0s+30m"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := world.Config{Scenario: c.sc, Seed: 1, Policy: engine.DefaultPolicy(), InitialWorkers: -1}
			cfg.Autoscaler = func(w *world.World) (world.Autoscaler, error) {
				a, err := world.SmartScale(w)
				if err == nil {
					c.bend(&world.Step(a).Policy)
				}
				return a, err
			}
			out, err := Run(context.Background(), cfg, mustSchedule(t, c.sched), Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range out.Violations {
				if strings.HasPrefix(v, c.inv+" ") {
					return
				}
			}
			t.Errorf("want a %s violation, got %v", c.inv, out.Violations)
		})
	}
}

// TestInvariantUnownedCordonFails: a worker cordoned behind the autoscaler's back (no
// operation owns it) is reported by invariant 15 once it stays so past a tick.
func TestInvariantUnownedCordonFails(t *testing.T) {
	cfg := world.Config{Scenario: quiet(t, 3), Seed: 1, Policy: engine.DefaultPolicy(), InitialWorkers: -1}
	cfg.Setup = func(w *world.World) error {
		w.Loop.At(at(5*time.Minute), func() {
			for _, n := range w.Cluster.AllNodes() {
				if !n.ControlPlane {
					_ = w.Cluster.Cordon(context.Background(), n.Name)
					return
				}
			}
		})
		return nil
	}
	out, err := Run(context.Background(), cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(out.Violations, "\n"), "inv 15") {
		t.Fatalf("a cordon no operation owns went unnoticed: %v", out.Violations)
	}
}
