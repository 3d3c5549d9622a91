package engine

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func ok(v float64) Reading { return Reading{Value: v, At: t0} }

// calm is an observation on which no rule fires: 4 workers, CPU and memory mid-range.
func calm() Observation {
	o := Observation{Time: t0, RegisteredWorkers: 4, WorkersKnown: true, Readings: Readings{
		CPU: ok(45), CPUHighMin: ok(40), CPULowMax: ok(50), Memory: ok(45),
		Pending: ok(0), PendingMin: ok(0), Nodes: ok(5), MetricAge: ok(10)}}
	for i, name := range []string{"w1", "w2", "w3", "w4"} {
		id := "i-" + name
		o.Nodes = append(o.Nodes, Node{Name: name, InstanceID: id, Ready: true, Pods: 4 - i%2, CreatedAt: t0.Add(-time.Duration(i+1) * time.Hour)})
		o.Instances = append(o.Instances, Instance{ID: id, State: InstanceRunning})
	}
	return o
}

// idle is an observation on which every scale-down condition holds.
func idle() Observation {
	o := calm()
	o.Readings.CPU, o.Readings.CPUHighMin, o.Readings.CPULowMax = ok(12), ok(10), ok(15)
	o.Readings.Memory = ok(30)
	return o
}

func TestDecide(t *testing.T) {
	p := DefaultPolicy()
	type tc struct {
		name   string
		obs    func(*Observation)
		state  State
		now    time.Time
		action Action
		delta  int
		reason string // substring
		node   string
	}
	cases := []tc{
		{name: "calm holds", obs: nil, action: ActionNone, reason: "steady"},
		{name: "cpu sustained high scales up by 1", obs: func(o *Observation) { o.Readings.CPUHighMin, o.Readings.CPU = ok(72), ok(74) },
			action: ActionScaleUp, delta: 1, reason: "cpu 72.0% > 70% for 3m0s"},
		{name: "cpu high only briefly does nothing", obs: func(o *Observation) { o.Readings.CPU, o.Readings.CPUHighMin = ok(95), ok(60) },
			action: ActionNone},
		{name: "cpu exactly at threshold does not fire", obs: func(o *Observation) { o.Readings.CPUHighMin = ok(70) }, action: ActionNone},
		{name: "pending pods sustained scale up", obs: func(o *Observation) { o.Readings.Pending, o.Readings.PendingMin = ok(3), ok(2) },
			action: ActionScaleUp, delta: 1, reason: "pods pending for 3m0s"},
		{name: "pending pods not sustained does nothing", obs: func(o *Observation) { o.Readings.Pending, o.Readings.PendingMin = ok(3), ok(0) },
			action: ActionNone, reason: "3 pods pending"},
		{name: "memory high scales up at once", obs: func(o *Observation) { o.Readings.Memory = ok(76) },
			action: ActionScaleUp, delta: 1, reason: "memory 76.0% > 75%"},
		{name: "cpu high and pods pending: 2", obs: func(o *Observation) {
			o.Readings.CPUHighMin, o.Readings.CPU, o.Readings.PendingMin = ok(71), ok(72), ok(1)
		}, action: ActionScaleUp, delta: 2},
		{name: "cpu far above threshold needs more than one node: 2", obs: func(o *Observation) {
			o.Readings.CPUHighMin, o.Readings.CPU = ok(90), ok(98) // 5 nodes * 98/70 = 7 -> +2
		}, action: ActionScaleUp, delta: 2},
		{name: "pending pods that fill more than one node: 2", obs: func(o *Observation) {
			o.Readings.Pending, o.Readings.PendingMin = ok(9), ok(5) // workers hold 3.5 pods on average: ceil(5/3.5) = 2
		}, action: ActionScaleUp, delta: 2},
		{name: "pending pods that fit on one node: 1", obs: func(o *Observation) {
			o.Readings.Pending, o.Readings.PendingMin = ok(4), ok(3) // ceil(3/3.5) = 1
		}, action: ActionScaleUp, delta: 1},
		{name: "pending pods without a node list: 1", obs: func(o *Observation) {
			o.Nodes = nil
			o.Readings.Pending, o.Readings.PendingMin = ok(40), ok(30)
		}, action: ActionScaleUp, delta: 1},
		{name: "step is capped at max step", obs: func(o *Observation) { o.Readings.CPUHighMin, o.Readings.CPU = ok(99), ok(100) },
			action: ActionScaleUp, delta: 2},
		{name: "step is capped by max workers", obs: func(o *Observation) {
			o.RegisteredWorkers = 9
			o.Readings.CPUHighMin, o.Readings.CPU, o.Readings.PendingMin = ok(90), ok(98), ok(2)
		}, action: ActionScaleUp, delta: 1},
		{name: "at max is a warning, not silence", obs: func(o *Observation) { o.RegisteredWorkers = 10; o.Readings.PendingMin = ok(4) },
			action: ActionAtMax, reason: "at max capacity (10 workers)"},
		{name: "launching workers count towards max", obs: func(o *Observation) {
			o.RegisteredWorkers, o.Launching = 8, 2
			o.Readings.PendingMin = ok(4)
		}, action: ActionAtMax},
		{name: "scale-up cooldown holds a scale-up", obs: func(o *Observation) { o.Readings.PendingMin = ok(1) },
			state: State{LastScaleUp: t0.Add(-4 * time.Minute)}, action: ActionCooldown, reason: "scale-up cooldown, 1m0s left"},
		{name: "scale-up cooldown elapsed", obs: func(o *Observation) { o.Readings.PendingMin = ok(1) },
			state: State{LastScaleUp: t0.Add(-5 * time.Minute)}, action: ActionScaleUp, delta: 1},
		{name: "scale-down cooldown never holds a needed scale-up", obs: func(o *Observation) { o.Readings.PendingMin = ok(1) },
			state: State{LastScaleDown: t0.Add(-time.Minute)}, action: ActionScaleUp, delta: 1},
		{name: "a duplicate of the tick that removed a node does not scale up", obs: func(o *Observation) { o.Readings.PendingMin = ok(1) },
			state: State{LastRemoved: t0}, action: ActionCooldown, reason: "a node was removed at this very time"},
		{name: "a scale-up a second after a removal", obs: func(o *Observation) { o.Readings.PendingMin = ok(1) },
			state: State{LastRemoved: t0.Add(-time.Second)}, action: ActionScaleUp, delta: 1},
		{name: "below min scales up to min whatever the metrics", obs: func(o *Observation) {
			o.RegisteredWorkers = 0
			o.Readings = Readings{}
			for _, n := range QueryNames() {
				*o.Readings.field(n) = Reading{Problem: ProblemEmpty}
			}
			o.Invalid = o.Readings.Invalid()
		}, action: ActionScaleUp, delta: 2, reason: "below min"},
		{name: "below min counts launching workers", obs: func(o *Observation) { o.RegisteredWorkers, o.Launching = 1, 1 }, action: ActionNone},
		{name: "all low: scale down the least loaded, youngest worker", obs: func(o *Observation) { *o = idle() },
			action: ActionScaleDown, delta: -1, node: "w2", reason: "removing w2"},
		{name: "cpu low but only just: no scale-down at 30%", obs: func(o *Observation) { *o = idle(); o.Readings.CPULowMax = ok(30) },
			action: ActionNone, reason: "cpu max over 10m0s 30.0% >= 30%"},
		{name: "pending pods now forbid scale-down", obs: func(o *Observation) { *o = idle(); o.Readings.Pending = ok(1) },
			action: ActionNone, reason: "1 pods pending"},
		{name: "memory forbids scale-down", obs: func(o *Observation) { *o = idle(); o.Readings.Memory = ok(50) },
			action: ActionNone, reason: "memory 50.0% >= 50%"},
		{name: "at min", obs: func(o *Observation) { *o = idle(); o.RegisteredWorkers = 2 }, action: ActionAtMin},
		{name: "scale-down waits for launching workers", obs: func(o *Observation) { *o = idle(); o.Launching = 1 },
			action: ActionNone, reason: "still launching"},
		{name: "scale-down cooldown", obs: func(o *Observation) { *o = idle() }, state: State{LastScaleDown: t0.Add(-9 * time.Minute)},
			action: ActionCooldown, reason: "scale-down cooldown"},
		{name: "scale-up cooldown also holds scale-down", obs: func(o *Observation) { *o = idle() }, state: State{LastScaleUp: t0.Add(-2 * time.Minute)},
			action: ActionCooldown, reason: "scale-up cooldown"},
		{name: "scale-down after both cooldowns", obs: func(o *Observation) { *o = idle() },
			state: State{LastScaleUp: t0.Add(-time.Hour), LastScaleDown: t0.Add(-10 * time.Minute)}, action: ActionScaleDown, delta: -1},
		{name: "anti-flap guard lets a safe removal through", obs: func(o *Observation) {
			*o = idle()
			o.RegisteredWorkers = 3
			o.Readings.CPULowMax = ok(29) // 4 nodes -> 3: 29 * 4/3 = 38.7% < 70%
			o.Readings.Memory = ok(49)    // 49 * 4/3 = 65.3% < 75%
		}, action: ActionScaleDown, delta: -1},
		{name: "unfinished operation: busy", obs: func(o *Observation) { *o = idle() },
			state: State{Operation: &Operation{ID: "op-1", Kind: OpScaleDown, Phase: PhaseDraining}}, action: ActionBusy, reason: "op-1"},
		{name: "unfinished operation does not block a scale-up", obs: func(o *Observation) { o.Readings.PendingMin = ok(1) },
			state: State{Operation: &Operation{ID: "op-1", Kind: OpScaleDown, Phase: PhaseDraining}}, action: ActionScaleUp},
		{name: "no removable worker", obs: func(o *Observation) {
			*o = idle()
			for i := range o.Nodes {
				o.Nodes[i].CriticalPods = 1
			}
		}, action: ActionNone, reason: "no removable worker"},
		{name: "unmanaged workers are never picked", obs: func(o *Observation) { *o = idle(); o.Instances = o.Instances[:1] },
			action: ActionScaleDown, node: "w1"},
		{name: "above max scales down regardless of load", obs: func(o *Observation) {
			*o = calm()
			o.RegisteredWorkers = 11
		}, action: ActionScaleDown, reason: "11 workers above max 10"},
		{name: "unknown worker count", obs: func(o *Observation) {
			o.WorkersKnown = false
			o.Readings.Nodes = Reading{Problem: ProblemEmpty}
		}, action: ActionNoData, reason: "worker count unknown: nodes reading is empty"},
	}
	for _, prob := range []MetricProblem{ProblemMissing, ProblemEmpty, ProblemNaN, ProblemInf, ProblemStale, ProblemPartial, ProblemHTTP, ProblemTimeout} {
		for _, name := range QueryNames() {
			if name == ReadingNodes {
				continue
			}
			cases = append(cases, tc{name: "scale-down forbidden by " + name + " " + string(prob), obs: func(o *Observation) {
				*o = idle()
				*o.Readings.field(name) = Reading{Problem: prob, Detail: "injected"}
				o.Invalid = o.Readings.Invalid()
			}, action: ActionNoData, reason: name + " " + string(prob)})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := calm()
			if c.obs != nil {
				c.obs(&o)
			}
			now := c.now
			if now.IsZero() {
				now = t0
			}
			d := Decide(now, p, o, c.state)
			if d.Action != c.action {
				t.Fatalf("action %s, want %s (reason %q)", d.Action, c.action, d.Reason)
			}
			if c.delta != 0 && d.Delta != c.delta {
				t.Errorf("delta %d, want %d (reason %q)", d.Delta, c.delta, d.Reason)
			}
			if !d.Acts() && d.Delta != 0 {
				t.Errorf("non-acting decision with delta %d", d.Delta)
			}
			if d.Target != d.Workers+d.Delta {
				t.Errorf("target %d != workers %d + delta %d", d.Target, d.Workers, d.Delta)
			}
			if c.reason != "" && !strings.Contains(d.Reason, c.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, c.reason)
			}
			if c.node != "" && d.Node != c.node {
				t.Errorf("node %q, want %q", d.Node, c.node)
			}
			if d.Action == ActionScaleDown && (d.Node == "" || d.Instance == "") {
				t.Errorf("scale-down without node/instance: %+v", d)
			}
			if d.Action == ActionScaleUp {
				belowMin := len(d.Triggers) == 1 && d.Triggers[0] == TriggerBelowMin
				if d.Target > p.MaxWorkers || d.Delta < 1 || (d.Delta > p.ScaleUpMaxStep && !belowMin) {
					t.Errorf("scale-up out of bounds: %+v", d)
				}
			}
		})
	}
}

func TestDecideIsPure(t *testing.T) {
	o, st := idle(), State{LastScaleUp: t0.Add(-time.Hour)}
	a := Decide(t0, DefaultPolicy(), o, st)
	for range 10 {
		if b := Decide(t0, DefaultPolicy(), o, st); b.Reason != a.Reason || b.Action != a.Action || b.Node != a.Node {
			t.Fatalf("Decide not deterministic: %+v vs %+v", a, b)
		}
	}
}

func TestAntiFlapGuard(t *testing.T) {
	p := DefaultPolicy()
	p.ScaleDownCPUPercent = 60
	o := idle()
	o.RegisteredWorkers = 2
	p.MinWorkers = 1
	o.Readings.CPULowMax = ok(50) // 3 nodes -> 2: 50*3/2 = 75 >= 70
	d := Decide(t0, p, o, State{})
	if d.Action != ActionNone || !strings.Contains(d.Reason, "would lift cpu to 75.0%") {
		t.Fatalf("got %s %q, want the anti-flap hold", d.Action, d.Reason)
	}
}

func TestUpStepMemoryProjection(t *testing.T) {
	p := DefaultPolicy()
	o := calm()
	o.Readings.Memory = ok(95) // 5 nodes * 95/75 = 6.33 -> 7: +2
	if d := Decide(t0, p, o, State{}); d.Action != ActionScaleUp || d.Delta != 2 {
		t.Fatalf("got %+v, want scale_up by 2", d)
	}
	o.Readings.Memory = ok(80) // 5*80/75 = 5.33 -> 6: +1
	if d := Decide(t0, p, o, State{}); d.Delta != 1 {
		t.Fatalf("got %+v, want scale_up by 1", d)
	}
}
