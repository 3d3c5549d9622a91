package engine

import (
	"math"
	"strings"
	"testing"
)

const mib = 1 << 20

// the simulator's shapes: a t3.medium worker (1900m, 3400 MiB allocatable, 150m/200 MiB of
// DaemonSet pods) and a 250m/256 MiB app pod: 7 fit on a worker
var (
	appPod    = Resources{MilliCPU: 250, Memory: 256 * mib, Pods: 1}
	workerCap = Resources{MilliCPU: 1900, Memory: 3400 * mib, Pods: 110}
	workerDS  = Resources{MilliCPU: 150, Memory: 200 * mib, Pods: 2}
)

// podCluster is a responsive observation: the 4 workers of calm() with podsPer app pods
// each, pending unschedulable pods, and readings for the pod rules.
func podCluster(podsPer []int, pending int) Observation {
	o := calm()
	o.NextOffering = Offering{InstanceType: "t3.medium"}
	res := &ClusterResources{}
	for i, n := range o.Nodes {
		nr := NodeResources{Node: n.Name, InstanceType: "t3.medium", Allocatable: workerCap, DaemonSet: workerDS, Requested: workerDS}
		for range podsPer[i] {
			nr.Requested = nr.Requested.Add(appPod)
			nr.AddPod(appPod)
		}
		o.Nodes[i].Pods = podsPer[i]
		res.Nodes = append(res.Nodes, nr)
	}
	for range pending {
		res.Pending = append(res.Pending, PendingPod{Namespace: "default", Name: "p", Requests: appPod, Since: t0})
	}
	o.Resources = res
	total := 0
	for _, k := range podsPer {
		total += k
	}
	o.Readings.HPADesired = ok(float64(total + pending))
	o.Readings.RequestRate, o.Readings.ServedRate = ok(300), ok(300)
	o.Readings.RequestedCPUMax, o.Readings.RequestedMemoryMax = ok(testShare(podsPer)), ok(20)
	return o
}

func testShare(podsPer []int) float64 {
	var req, alloc int64
	for _, k := range podsPer {
		req += workerDS.MilliCPU + int64(k)*appPod.MilliCPU
		alloc += workerCap.MilliCPU
	}
	return 100 * float64(req) / float64(alloc)
}

func TestPack(t *testing.T) {
	shape := workerCap.Sub(workerDS)
	pods := make([]Resources, 17)
	for i := range pods {
		pods[i] = appPod
	}
	if r := pack(pods, nil, shape, 10); r.NewNodes != 3 || r.Placed != 0 {
		t.Errorf("17 pods of 7 a node: %+v, want 3 new nodes", r)
	}
	if r := pack(pods, []Resources{shape, shape}, shape, 10); r.NewNodes != 1 || r.Placed != 14 {
		t.Errorf("with two launching nodes' room: %+v, want 14 placed and 1 new", r)
	}
	if r := pack(pods, nil, shape, 2); r.NewNodes != 2 {
		t.Errorf("limit: %+v", r)
	}
	big := Resources{MilliCPU: 4000, Memory: mib, Pods: 1}
	if r := pack([]Resources{big, appPod}, nil, shape, 10); r.Unplaceble != 1 || r.NewNodes != 1 {
		t.Errorf("a pod larger than a node: %+v", r)
	}
	// first-fit-decreasing: the large pods go first, so 2 nodes are enough
	mixed := []Resources{{MilliCPU: 300, Pods: 1}, {MilliCPU: 1200, Pods: 1}, {MilliCPU: 500, Pods: 1}, {MilliCPU: 1200, Pods: 1}, {MilliCPU: 300, Pods: 1}}
	if r := pack(mixed, nil, Resources{MilliCPU: 1800, Pods: 110}, 10); r.NewNodes != 2 {
		t.Errorf("FFD: %+v, want 2 nodes", r)
	}
	if got := slotsIn(shape, appPod); got != 7 {
		t.Errorf("slots %d, want 7", got)
	}
}

func TestLearnShape(t *testing.T) {
	p := ResponsivePolicy()
	o := podCluster([]int{1, 1, 1, 1}, 0)
	s, err := learnShape(p, o, "t3.medium")
	if err != nil || s.Room != workerCap.Sub(workerDS) || !strings.Contains(s.From, "learned from w1") {
		t.Errorf("from a Ready worker: %+v %v", s, err)
	}
	s, err = learnShape(p, o, "m5.large") // no such worker: the type's figures less the reserve
	if err != nil || s.Room.MilliCPU != 2000-100 || s.Room.Memory != (8<<30)-600*mib {
		t.Errorf("from the capacity table: %+v %v", s, err)
	}
	s, err = learnShape(p, o, "x9.weird") // unknown: another worker's room, said so
	if err != nil || !strings.Contains(s.From, "no capacity figures") {
		t.Errorf("unknown type: %+v %v", s, err)
	}
	o.Resources.Nodes = nil
	if _, err := learnShape(p, o, "x9.weird"); err == nil {
		t.Error("nothing to learn from and no figures: want an error")
	}
}

func TestPodRules(t *testing.T) {
	type tc struct {
		name   string
		obs    func() Observation
		policy func(*Policy)
		action Action
		delta  int
		reason string
	}
	full := []int{7, 7, 7, 7}
	cases := []tc{
		{name: "unschedulable pods scale up at once, packed onto nodes",
			obs: func() Observation { return podCluster(full, 10) }, action: ActionScaleUp, delta: 2,
			reason: "10 pods unschedulable need 2 nodes of t3.medium"},
		{name: "launching workers take the pending pods first",
			obs: func() Observation { o := podCluster(full, 10); o.Launching = 1; return o }, action: ActionScaleUp, delta: 1,
			reason: "(7 fit on the workers launching or joining)"},
		{name: "pending pods that fit on launching workers start nothing",
			obs: func() Observation { o := podCluster(full, 5); o.Launching = 1; return o }, action: ActionNone,
			reason: "no new node needed"},
		{name: "a saturated app's demand sizes beyond the pending pods",
			obs: func() Observation {
				o := podCluster(full, 4)
				o.Readings.RequestRate, o.Readings.ServedRate = ok(700), ok(400) // 43% turned away
				return o
			}, action: ActionScaleUp, delta: 4, reason: "x 1.75 offered/served"},
		{name: "a demand shortfall within the HPA's tolerance waits for pods",
			obs: func() Observation {
				o := podCluster(full, 7)
				o.Readings.RequestRate, o.Readings.ServedRate = ok(310), ok(300)
				return o
			}, action: ActionScaleUp, delta: 1, reason: "7 pods unschedulable need 1 nodes"},
		{name: "missing HPA series: the demand rule stands aside, pods still packed",
			obs: func() Observation {
				o := podCluster(full, 7)
				o.Readings.HPADesired = Reading{Problem: ProblemEmpty, Detail: "empty vector"}
				o.Readings.RequestRate, o.Readings.ServedRate = ok(900), ok(300)
				return o
			}, action: ActionScaleUp, delta: 1, reason: "7 pods unschedulable need 1 nodes"},
		{name: "NaN request rates: no saturation correction",
			obs: func() Observation {
				o := podCluster(full, 0)
				o.Readings.HPADesired = ok(35)
				o.Readings.RequestRate = Reading{Problem: ProblemNaN}
				return o
			}, action: ActionScaleUp, delta: 1, reason: "request rates nan"},
		{name: "no resource picture: the pod rules stand aside, the brief's rules hold",
			obs: func() Observation {
				o := podCluster(full, 10)
				o.Resources, o.ResourcesError = nil, "listing pods: forbidden"
				o.Readings.PendingMin = ok(10)
				return o
			}, action: ActionScaleUp, delta: 2, reason: "pod rules stand aside: no resource picture of the cluster: listing pods: forbidden"},
		{name: "never a step beyond max",
			obs:    func() Observation { return podCluster(full, 60) },
			policy: func(p *Policy) { p.MaxWorkers = 6 }, action: ActionScaleUp, delta: 2},
		{name: "scale_up_max_step caps the packing",
			obs:    func() Observation { return podCluster(full, 60) },
			policy: func(p *Policy) { p.ScaleUpMaxStep = 3 }, action: ActionScaleUp, delta: 3},
		{name: "a prediction within the HPA's tolerance makes nothing",
			obs: func() Observation {
				o := podCluster([]int{6, 6, 6, 6}, 0)
				o.Readings.BusyCores, o.Readings.BusyCoresPredicted = ok(4), ok(4.3)
				return o
			},
			policy: func(p *Policy) { p.PredictHorizon = p.NodeReadyTimeout / 5 }, action: ActionNone},
		{name: "a predicted growth that will not fit scales up ahead",
			obs: func() Observation {
				o := podCluster([]int{6, 6, 6, 6}, 0)
				o.Readings.BusyCores, o.Readings.BusyCoresPredicted = ok(4), ok(6)
				return o
			},
			policy: func(p *Policy) { p.PredictHorizon = p.NodeReadyTimeout / 5 }, action: ActionScaleUp, delta: 2,
			reason: "predicted in 2m0s"},
		{name: "a NaN prediction is no growth",
			obs: func() Observation {
				o := podCluster([]int{6, 6, 6, 6}, 0)
				o.Readings.BusyCores, o.Readings.BusyCoresPredicted = ok(4), Reading{Problem: ProblemNaN}
				return o
			},
			policy: func(p *Policy) { p.PredictHorizon = p.NodeReadyTimeout / 5 }, action: ActionNone},
		{name: "headroom keeps room for more app pods",
			obs:    func() Observation { return podCluster([]int{7, 7, 7, 5}, 0) },
			policy: func(p *Policy) { p.HeadroomPods = 6 }, action: ActionScaleUp, delta: 1, reason: "+ 6 headroom"},
		{name: "requests that fit on fewer workers: several go at once",
			obs: func() Observation {
				o := podCluster([]int{2, 1, 1, 1}, 0)
				o.Readings.CPULowMax, o.Readings.Memory = ok(20), ok(30)
				return o
			}, action: ActionScaleDown, delta: -2, reason: "without w2, w3 cpu"},
		{name: "never below min",
			obs:    func() Observation { return podCluster([]int{1, 1, 1, 1}, 0) },
			policy: func(p *Policy) { p.MinWorkers = 3 }, action: ActionScaleDown, delta: -1},
		{name: "pods that do not fit elsewhere keep their node",
			obs: func() Observation { return podCluster([]int{7, 7, 6, 6}, 0) }, action: ActionNone,
			reason: "steady"},
		{name: "the sustained requests keep a node the current ones would free",
			obs: func() Observation {
				o := podCluster([]int{3, 3, 3, 3}, 0)
				o.Readings.RequestedCPUMax = ok(95) // 5 minutes ago the fleet was nearly full
				return o
			}, action: ActionNone, reason: "requests would reach"},
		{name: "a demand that would not fit after the removal keeps the node",
			obs: func() Observation {
				o := podCluster([]int{4, 4, 4, 4}, 0)
				o.Readings.RequestRate, o.Readings.ServedRate = ok(500), ok(300)
				return o
			}, action: ActionNone, reason: "without w4 21 app pods fit, 27 wanted"},
		{name: "invalid requested reading: no scale-down",
			obs: func() Observation {
				o := podCluster([]int{1, 1, 1, 1}, 0)
				o.Readings.RequestedCPUMax = Reading{Problem: ProblemStale}
				o.Invalid = o.Readings.InvalidOf(ResponsivePolicy().ReadingNames())
				return o
			}, action: ActionNoData, reason: "requested_cpu_max stale"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ResponsivePolicy()
			if c.policy != nil {
				c.policy(&p)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			o := c.obs()
			d := Decide(t0, p, o, State{})
			if d.Action != c.action || (c.delta != 0 && d.Delta != c.delta) || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("got %s %+d %q\nwant %s %+d containing %q", d.Action, d.Delta, d.Reason, c.action, c.delta, c.reason)
			}
			if d.Target > p.MaxWorkers || d.Target < min(p.MinWorkers, o.Capacity()) {
				t.Errorf("target %d outside [%d, %d]", d.Target, p.MinWorkers, p.MaxWorkers)
			}
		})
	}
}

func TestDemandOf(t *testing.T) {
	p := ResponsivePolicy()
	r := Readings{HPADesired: ok(26), RequestRate: ok(700), ServedRate: ok(400)}
	okd, demand, _, why := demandOf(p, r)
	if !okd || math.Abs(demand-45.5) > 1e-9 || !strings.Contains(why, "HPAs want 26 x 1.75 offered/served") {
		t.Errorf("demand %v %v %q", okd, demand, why)
	}
	r.ServedRate = ok(0) // nothing answered at all: no ratio to trust
	if _, demand, _, _ := demandOf(p, r); demand != 26 {
		t.Errorf("served 0: demand %v, want the HPA's 26", demand)
	}
}
