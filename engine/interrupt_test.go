package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// spotRig is newRig with a spot policy: w1 and w2 on-demand, w3 and w4 spot.
func spotRig() *rig {
	r := newRig()
	r.step.Policy.SpotPercent = 50
	r.metrics.p = r.step.Policy
	for i := range r.cloud.insts {
		if i >= 2 {
			r.cloud.insts[i].Offering = engine.Offering{InstanceType: "t3.medium", Zone: "b", CapacityType: engine.CapacitySpot}
		} else {
			r.cloud.insts[i].Offering = engine.Offering{InstanceType: "t3.medium", Zone: "a"}
		}
	}
	return r
}

func (r *rig) notice(t *testing.T, at time.Time, kind engine.NoticeKind, id string) engine.Record {
	t.Helper()
	rec, err := r.step.Notice(context.Background(), at, "n-"+at.Format("150405"), engine.Notice{Kind: kind, Instance: id, Time: at})
	if err != nil {
		t.Fatalf("notice at %v: %v", at, err)
	}
	return rec
}

func kindsOf(acts []engine.Act) string {
	var out []string
	for _, a := range acts {
		out = append(out, a.Kind+":"+a.Result)
	}
	return strings.Join(out, " ")
}

func TestNoticeInterruptionDrainsAndReplacesUnderTheLock(t *testing.T) {
	r := spotRig()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 3}} // evictions take longer than one pass
	var writes []string
	r.store.OnWrite = func(l engine.Lease, st engine.State) {
		var ops []string
		for _, op := range st.Open() {
			ops = append(ops, string(op.Kind)+"/"+string(op.Phase))
		}
		writes = append(writes, strings.Join(ops, ","))
	}
	rec := r.notice(t, t0, engine.NoticeInterruption, "i-w3")
	d := rec.Decision
	if rec.Lock != engine.LockAcquired || d.Action != engine.ActionInterruption || d.Delta != 1 || d.Node != "w3" {
		t.Fatalf("lock %s decision %+v", rec.Lock, d)
	}
	if got := kindsOf(rec.Acted); got != "cordon:ok launch:ok drain:in_progress" {
		t.Errorf("acts %s", got)
	}
	// both intents are written before any side effect
	if len(writes) == 0 || writes[0] != "scale_up/launching,scale_down/cordoned" {
		t.Errorf("first write %q (all: %q)", writes, writes)
	}
	st, _ := r.store.Load(context.Background())
	if len(st.Finishing) != 1 || st.Finishing[0].Cause != engine.CauseInterruption || !st.Finishing[0].Deadline.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("finishing %+v", st.Finishing)
	}
	if st.Operation == nil || st.Operation.Kind != engine.OpScaleUp || st.Operation.Phase != engine.PhaseJoining || len(st.Operation.Instances) != 1 {
		t.Fatalf("replacement %+v", st.Operation)
	}
	if _, ok := st.SpotTrouble["t3.medium/b//spot"]; !ok {
		t.Errorf("the interrupted offering is not remembered as troubled: %v", st.SpotTrouble)
	}
	// the replacement went spot (50% of 4), not to the troubled offering... there is no other
	// spot offering in zone b, so it goes to zone a's spot
	if l := r.cloud.insts[len(r.cloud.insts)-1]; !l.Offering.Spot() || l.Offering.Zone != "a" {
		t.Errorf("replacement offering %+v", l.Offering)
	}
	if h, _, _ := r.store.Holder(); h != "" {
		t.Errorf("lock left held by %s", h)
	}
	if len(r.notes.events) < 2 || !strings.Contains(r.notes.events[0].Message, "Spot interruption of i-w3 (w3)") {
		t.Errorf("events %+v", r.notes.events)
	}

	// the same warning again (EventBridge delivers at least once): nothing more
	calls := len(r.cloud.calls) + len(r.cluster.calls)
	rec = r.notice(t, t0.Add(10*time.Second), engine.NoticeInterruption, "i-w3")
	if rec.Decision.Action != engine.ActionNone || !strings.Contains(rec.Decision.Reason, "already handled") {
		t.Errorf("repeated warning: %+v", rec.Decision)
	}
	if n := len(r.cloud.calls) + len(r.cluster.calls); n != calls+1 { // one drain pass of the open operation
		t.Errorf("repeated warning made %d calls: %v %v", n-calls, r.cloud.calls, r.cluster.calls)
	}

	// the scheduled tick sees the result: busy while it drains; then EC2 reclaims the instance
	// and the operation ends with the node deleted, no termination of ours
	rec = r.tick(t, t0.Add(time.Minute))
	if rec.Decision.Action != engine.ActionBusy {
		t.Errorf("tick during the drain: %+v", rec.Decision)
	}
	for i := range r.cloud.insts {
		if r.cloud.insts[i].ID == "i-w3" {
			r.cloud.insts[i].State = engine.InstanceTerminated
		}
	}
	rec = r.tick(t, t0.Add(3*time.Minute))
	if got := kindsOf(rec.Acted); !strings.Contains(got, "gone:ok") {
		t.Errorf("acts after the reclaim: %s", got)
	}
	if slices.Contains(r.cluster.calls, "uncordon w3") || slices.ContainsFunc(r.cloud.calls, func(c string) bool { return strings.HasPrefix(c, "terminate i-w3") }) {
		t.Errorf("an interrupted node was given back or terminated undrained: %v %v", r.cluster.calls, r.cloud.calls)
	}
	if !slices.Contains(r.cluster.calls, "delete w3") {
		t.Errorf("node object of the reclaimed instance not deleted: %v", r.cluster.calls)
	}
	st, _ = r.store.Load(context.Background())
	for _, op := range st.Open() {
		if op.Instance == "i-w3" {
			t.Errorf("operation %s still open on the reclaimed instance", op.ID)
		}
	}
}

func TestNoticeIgnoresWhatIsNotManaged(t *testing.T) {
	r := spotRig()
	for _, c := range []struct {
		name string
		n    engine.Notice
		want string
		lock string
	}{
		{"unmanaged", engine.Notice{Kind: engine.NoticeInterruption, Instance: "i-someone-else", Time: t0}, "not a managed worker", engine.LockAcquired},
		{"no instance", engine.Notice{Kind: engine.NoticeInterruption, Time: t0}, "malformed notice ignored", engine.LockNotAcquired},
		{"unknown kind", engine.Notice{Kind: "stop", Instance: "i-w3", Time: t0}, "unknown notice kind", engine.LockNotAcquired},
		{"no time", engine.Notice{Kind: engine.NoticeRebalance, Instance: "i-w3"}, "without a time", engine.LockNotAcquired},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec, err := r.step.Notice(context.Background(), t0, "h", c.n)
			if err != nil || rec.Decision.Action != engine.ActionNone || !strings.Contains(rec.Decision.Reason, c.want) || rec.Lock != c.lock {
				t.Errorf("err %v lock %s decision %+v", err, rec.Lock, rec.Decision)
			}
		})
	}
	if len(r.cloud.calls) != 0 || len(r.cluster.calls) != 0 {
		t.Errorf("ignored notices acted: %v %v", r.cloud.calls, r.cluster.calls)
	}
	// late: the instance is gone already
	r.cloud.insts[2].State = engine.InstanceTerminated
	rec := r.notice(t, t0, engine.NoticeInterruption, "i-w3")
	if rec.Decision.Action != engine.ActionNone || !strings.Contains(rec.Decision.Reason, "already terminated") || len(r.cloud.calls) != 0 {
		t.Errorf("late notice: %+v, calls %v", rec.Decision, r.cloud.calls)
	}
}

func TestNoticeRebalanceReplacesThenDrains(t *testing.T) {
	r := spotRig()
	rec := r.notice(t, t0, engine.NoticeRebalance, "i-w4")
	if rec.Decision.Action != engine.ActionRebalance || rec.Decision.Delta != 1 {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if got := kindsOf(rec.Acted); got != "cordon:ok launch:ok" {
		t.Errorf("acts %s: cordoned and replaced, not drained yet", got)
	}
	st, _ := r.store.Load(context.Background())
	if len(st.Finishing) != 1 || st.Finishing[0].Phase != engine.PhaseAtRisk || st.Finishing[0].After != st.Operation.ID {
		t.Fatalf("finishing %+v, slot %+v", st.Finishing, st.Operation)
	}
	// a second recommendation changes nothing
	if rec := r.notice(t, t0.Add(time.Second), engine.NoticeRebalance, "i-w4"); rec.Decision.Action != engine.ActionNone {
		t.Errorf("second recommendation: %+v", rec.Decision)
	}
	// while the replacement joins, the at-risk node waits, cordoned
	if rec := r.tick(t, t0.Add(2*time.Minute)); slices.ContainsFunc(rec.Acted, func(a engine.Act) bool { return a.Kind == "drain" }) {
		t.Errorf("drained before the replacement joined: %s", kindsOf(rec.Acted))
	}
	// the replacement joins: the next tick drains and removes the at-risk node
	repl := st.Operation.Instances[0]
	r.cluster.nodes = append(r.cluster.nodes, engine.Node{Name: "w5", InstanceID: repl, Ready: true, CreatedAt: t0})
	r.tick(t, t0.Add(4*time.Minute))
	rec = r.tick(t, t0.Add(6*time.Minute))
	calls := strings.Join(r.cluster.calls, ",")
	if !strings.Contains(calls, "drain w4") || !slices.Contains(r.cloud.calls, "terminate i-w4") {
		t.Errorf("at-risk node not drained and removed after its replacement joined: %v %v", r.cluster.calls, r.cloud.calls)
	}
	st, _ = r.store.Load(context.Background())
	if len(st.Open()) != 0 {
		t.Errorf("operations left open: %+v", st.Open())
	}
}

func TestNoticeRebalanceThenInterruptionDrainsAtOnce(t *testing.T) {
	r := spotRig()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 2}}
	r.notice(t, t0, engine.NoticeRebalance, "i-w4")
	launches := len(r.cloud.tokens)
	rec := r.notice(t, t0.Add(30*time.Second), engine.NoticeInterruption, "i-w4")
	if rec.Decision.Action != engine.ActionInterruption || rec.Decision.Delta != 0 || !strings.Contains(rec.Decision.Reason, "drains it now") {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if !strings.Contains(kindsOf(rec.Acted), "drain:") {
		t.Errorf("not drained at once: %s", kindsOf(rec.Acted))
	}
	if len(r.cloud.tokens) != launches {
		t.Errorf("a second replacement was launched")
	}
	st, _ := r.store.Load(context.Background())
	if op := st.Finishing[0]; op.Cause != engine.CauseInterruption || op.Deadline.IsZero() {
		t.Errorf("operation not upgraded: %+v", op)
	}
}

func TestNoticeDuringScaleDownKeepsThatNode(t *testing.T) {
	r := spotRig()
	r.quiet()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 2}}
	rec := r.tick(t, t0)
	if rec.Decision.Action != engine.ActionScaleDown {
		t.Fatalf("no scale-down to interrupt: %+v", rec.Decision)
	}
	down := rec.Decision.Node
	victim := "i-w3"
	if down == "w3" {
		victim = "i-w4"
	}
	rec = r.notice(t, t0.Add(time.Minute), engine.NoticeInterruption, victim)
	if rec.Decision.Delta != 0 || !strings.Contains(rec.Decision.Reason, "keeping "+down) {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if !slices.Contains(r.cluster.calls, "uncordon "+down) || len(r.cloud.tokens) != 0 {
		t.Errorf("the draining node was not given back instead of a launch: %v, %d launches", r.cluster.calls, len(r.cloud.tokens))
	}
	// the interrupted node of the scale-down itself: its operation is bounded by the notice
	r2 := spotRig()
	r2.quiet()
	r2.cluster.drains = []engine.DrainStatus{{Remaining: 2}}
	rec = r2.tick(t, t0)
	id := rec.Decision.Instance
	rec = r2.notice(t, t0.Add(time.Minute), engine.NoticeInterruption, id)
	if rec.Decision.Action != engine.ActionInterruption || rec.Decision.Delta != 0 || len(r2.cloud.tokens) != 0 {
		t.Errorf("interruption of the draining node: %+v, %d launches", rec.Decision, len(r2.cloud.tokens))
	}
	// a scale-up does not give an interrupted node back
	r2.busy()
	rec = r2.tick(t, t0.Add(2*time.Minute))
	if slices.Contains(r2.cluster.calls, "uncordon "+rec.Decision.Node) && rec.Decision.Node != "" {
		t.Errorf("scale-up uncordoned the interrupted node: %v", r2.cluster.calls)
	}
	for _, c := range r2.cluster.calls {
		if strings.HasPrefix(c, "uncordon") {
			t.Errorf("scale-up gave an interrupted node back: %v", r2.cluster.calls)
		}
	}
}

func TestNoticeAtMaxLaunchesNoReplacementOverTheBound(t *testing.T) {
	r := spotRig()
	r.step.Policy.MaxWorkers = 4
	rec := r.notice(t, t0, engine.NoticeRebalance, "i-w3")
	if rec.Decision.Action != engine.ActionNone || !strings.Contains(rec.Decision.Reason, "no room for a replacement") {
		t.Errorf("rebalance at max: %+v", rec.Decision)
	}
	rec = r.notice(t, t0, engine.NoticeInterruption, "i-w3")
	if rec.Decision.Delta != 1 {
		t.Errorf("interruption at max replaces (the interrupted one leaves within its notice): %+v", rec.Decision)
	}
}

func TestNoticeLockHeldIsACleanExitForTheCallerToRetry(t *testing.T) {
	r := spotRig()
	if _, _, err := r.store.Acquire(context.Background(), "other", t0, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	rec := r.notice(t, t0.Add(time.Second), engine.NoticeInterruption, "i-w3")
	if rec.Lock != engine.LockHeld || len(r.cluster.calls) != 0 || len(r.cloud.calls) != 0 {
		t.Errorf("lock %s, calls %v %v", rec.Lock, r.cluster.calls, r.cloud.calls)
	}
}

// A notice killed after writing its intents is finished by the next tick: the drain goes on
// and the replacement launches with the intent's ClientToken, once.
func TestNoticeKilledMidwayIsReconciled(t *testing.T) {
	r := spotRig()
	r.cluster.drains = []engine.DrainStatus{{Remaining: 1}}
	r.step.Hook = func(point string) error {
		if point == "launch" {
			return errors.New("killed")
		}
		return nil
	}
	if _, err := r.step.Notice(context.Background(), t0, "n1", engine.Notice{Kind: engine.NoticeInterruption, Instance: "i-w3", Time: t0}); !errors.Is(err, engine.ErrAborted) {
		t.Fatalf("err %v", err)
	}
	r.step.Hook = nil
	st, _ := r.store.Load(context.Background())
	if st.Operation == nil || st.Operation.Phase != engine.PhaseLaunching || len(st.Finishing) != 1 {
		t.Fatalf("intents after the kill: slot %+v finishing %+v", st.Operation, st.Finishing)
	}
	r.tick(t, t0.Add(4*time.Minute)) // after the lease
	if n := len(r.cloud.tokens); n != 1 {
		t.Errorf("%d launches, want 1", n)
	}
	if !slices.Contains(r.cluster.calls, "drain w3") {
		t.Errorf("drain not continued: %v", r.cluster.calls)
	}
}

// keyedCloud fails launches by offering key.
type keyedCloud struct {
	*fakeCloud
	errs  map[string]error
	tried []string
}

func (c *keyedCloud) Launch(ctx context.Context, req engine.LaunchRequest) ([]engine.Instance, error) {
	c.tried = append(c.tried, req.Offering.Key())
	if err := c.errs[req.Offering.Key()]; err != nil {
		return nil, err
	}
	return c.fakeCloud.Launch(ctx, req)
}

func TestPlannedLaunchFallsBackToOtherZonesThenOnDemand(t *testing.T) {
	ice := &engine.CloudError{Kind: engine.KindCapacity, Code: "InsufficientInstanceCapacity"}
	spotLimit := &engine.CloudError{Kind: engine.KindQuota, Code: "MaxSpotInstanceCountExceeded"}
	for _, c := range []struct {
		name      string
		errs      map[string]error
		wantTried []string
		wantSpot  int
	}{
		{"spot in the first zone", nil, []string{"t3.medium/a//spot"}, 1},
		{"no spot capacity in a: b", map[string]error{"t3.medium/a//spot": ice},
			[]string{"t3.medium/a//spot", "t3.medium/b//spot"}, 1},
		{"no spot anywhere: on-demand", map[string]error{"t3.medium/a//spot": ice, "t3.medium/b//spot": ice},
			[]string{"t3.medium/a//spot", "t3.medium/b//spot", "t3.medium/a/"}, 0},
		{"spot instance limit: straight to on-demand", map[string]error{"t3.medium/a//spot": spotLimit},
			[]string{"t3.medium/a//spot", "t3.medium/a/"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig()
			r.step.Policy.SpotPercent = 100
			r.metrics.p = r.step.Policy
			r.metrics.values["cpu_high_min"], r.metrics.values["cpu"] = 80, 75 // +1 worker
			kc := &keyedCloud{fakeCloud: r.cloud, errs: c.errs}
			r.step.Cloud = kc
			rec := r.tick(t, t0)
			if rec.Decision.Action != engine.ActionScaleUp || rec.Decision.Delta != 1 {
				t.Fatalf("decision %+v", rec.Decision)
			}
			if !slices.Equal(kc.tried, c.wantTried) {
				t.Errorf("tried %v, want %v", kc.tried, c.wantTried)
			}
			st, _ := r.store.Load(context.Background())
			if st.Operation == nil || len(st.Operation.Instances) != 1 || len(st.Operation.SpotInstances) != c.wantSpot {
				t.Fatalf("operation %+v", st.Operation)
			}
			for k := range c.errs {
				if until, ok := st.Backoff[k]; !ok || !until.After(t0) {
					t.Errorf("%s not backing off: %v", k, st.Backoff)
				}
			}
		})
	}
}

// A scale-up planned over two capacity types killed between its parts goes on from the part
// in flight with the same ClientToken: nothing is launched twice.
func TestPlannedLaunchRetriesThePartInFlight(t *testing.T) {
	r := newRig()
	r.step.Policy.SpotPercent = 20
	r.metrics.p = r.step.Policy
	r.busy() // +2 on 4 on-demand workers: one spot (20% of 5), one on-demand (20% of 6 is 1)
	launches := 0
	r.step.Hook = func(point string) error {
		if point == "launch" {
			if launches++; launches == 2 {
				return errors.New("killed before the second part")
			}
		}
		return nil
	}
	if _, err := r.step.Run(context.Background(), t0, "h1"); !errors.Is(err, engine.ErrAborted) {
		t.Fatalf("err %v", err)
	}
	st, _ := r.store.Load(context.Background())
	op := st.Operation
	if op == nil || op.Phase != engine.PhaseLaunching || len(op.Plan) != 1 || len(op.Instances) != 1 || op.Token == "" {
		t.Fatalf("intent after the kill: %+v", op)
	}
	token := op.Token
	r.step.Hook = nil
	r.tick(t, t0.Add(4*time.Minute))
	st, _ = r.store.Load(context.Background())
	if st.Operation == nil || len(st.Operation.Instances) != 2 || st.Operation.Phase != engine.PhaseJoining {
		t.Fatalf("after the retry: %+v", st.Operation)
	}
	if !slices.Contains(r.cloud.calls, "launch "+token) || len(r.cloud.tokens) != 2 {
		t.Errorf("calls %v: want the second part launched once with token %s", r.cloud.calls, token)
	}
}

// A notice repeated for an instance that was not a node yet finds the replacement the first
// one launched (chaos: the duplicate delivery launched a second one); once the instance is a
// node, its interruption drains it without another replacement.
func TestNoticeRepeatedBeforeTheNodeJoinedLaunchesOnce(t *testing.T) {
	p := engine.DefaultPolicy()
	p.SpotPercent = 50
	spot := engine.Offering{InstanceType: "t3.medium", Zone: "b", CapacityType: engine.CapacitySpot}
	obs := engine.Observation{Time: t0, RegisteredWorkers: 2, WorkersKnown: true,
		Nodes: []engine.Node{{Name: "w1", InstanceID: "i-w1", Ready: true}, {Name: "w2", InstanceID: "i-w2", Ready: true}},
		Instances: []engine.Instance{{ID: "i-w1", State: engine.InstanceRunning}, {ID: "i-w2", State: engine.InstanceRunning},
			{ID: "i-new", State: engine.InstanceRunning, Offering: spot}}}
	joining := &engine.Operation{ID: "op-1", Kind: engine.OpScaleUp, Phase: engine.PhaseJoining, Count: 1, Instances: []string{"i-new"}}
	n := engine.Notice{Kind: engine.NoticeInterruption, Instance: "i-new", Time: t0}

	first := engine.DecideNotice(t0, p, obs, engine.State{Operation: joining}, n)
	if first.Action != engine.ActionInterruption || first.Delta != 1 || first.Drain {
		t.Fatalf("first notice: %+v", first)
	}
	replacement := &engine.Operation{ID: "op-2", Kind: engine.OpScaleUp, Phase: engine.PhaseLaunching, Count: 1, Replaces: "i-new"}
	st := engine.State{Operation: replacement, Finishing: []*engine.Operation{joining}}
	again := engine.DecideNotice(t0, p, obs, st, n)
	if again.Action != engine.ActionNone || again.Delta != 0 || !strings.Contains(again.Reason, "already replaced by operation op-2") {
		t.Errorf("repeated notice: %+v", again)
	}
	if rb := engine.DecideNotice(t0, p, obs, st, engine.Notice{Kind: engine.NoticeRebalance, Instance: "i-new", Time: t0}); rb.Action != engine.ActionNone {
		t.Errorf("rebalance after the interruption: %+v", rb)
	}

	obs.Nodes = append(obs.Nodes, engine.Node{Name: "w3", InstanceID: "i-new", Ready: true})
	late := engine.DecideNotice(t0.Add(30*time.Second), p, obs, st, n)
	if late.Action != engine.ActionInterruption || !late.Drain || late.Delta != 0 || !strings.Contains(late.Reason, "replacement op-2") {
		t.Errorf("late repeat once the node joined: %+v", late)
	}
}
