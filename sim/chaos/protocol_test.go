package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/commands"
	"github.com/leanovate/gopter/gen"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/store"
	"github.com/smartscale/smartscale/sim/world"
)

// A gopter commands state-machine test of the lock + intent protocol: the simulator's state
// store and engine.Step over small fakes, driven by interleaved invocations, kills, pauses
// past the lease, lost responses, load changes and clock advances, checked against a
// model of the lease lock.

// --- fakes ----------------------------------------------------------------------------

type fakeCloud struct {
	now      func() time.Time
	insts    []*engine.Instance
	tokens   map[string][]string
	launches int // RunInstances calls that created instances
}

func (c *fakeCloud) Launch(_ context.Context, req engine.LaunchRequest) ([]engine.Instance, error) {
	if ids, ok := c.tokens[req.Token]; ok {
		return c.list(ids), nil
	}
	var ids []string
	for range req.Count {
		in := &engine.Instance{ID: fmt.Sprintf("i-%03d", len(c.insts)+1), State: engine.InstanceRunning,
			OperationID: req.OperationID, LaunchedAt: c.now()}
		c.insts = append(c.insts, in)
		ids = append(ids, in.ID)
	}
	c.tokens[req.Token] = ids
	c.launches++
	return c.list(ids), nil
}

func (c *fakeCloud) list(ids []string) []engine.Instance {
	var out []engine.Instance
	for _, in := range c.insts {
		if slices.Contains(ids, in.ID) {
			out = append(out, *in)
		}
	}
	return out
}

// Instances lists every instance, terminated ones too, as EC2 does for about an hour.
func (c *fakeCloud) Instances(context.Context) ([]engine.Instance, error) {
	var out []engine.Instance
	for _, in := range c.insts {
		out = append(out, *in)
	}
	return out, nil
}

func (c *fakeCloud) Terminate(_ context.Context, ids []string) error {
	for _, in := range c.insts {
		if slices.Contains(ids, in.ID) {
			in.State = engine.InstanceTerminated
		}
	}
	return nil
}

func (c *fakeCloud) active() int {
	n := 0
	for _, in := range c.insts {
		if in.State == engine.InstancePending || in.State == engine.InstanceRunning {
			n++
		}
	}
	return n
}

type fakeCluster struct{ nodes []*engine.Node }

func (c *fakeCluster) Nodes(context.Context) ([]engine.Node, error) {
	out := []engine.Node{{Name: "master", Ready: true, ControlPlane: true}}
	for _, n := range c.nodes {
		out = append(out, *n)
	}
	return out, nil
}

func (c *fakeCluster) node(name string) (*engine.Node, error) {
	for _, n := range c.nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, &engine.CloudError{Kind: engine.KindNotFound, Err: fmt.Errorf("node %s", name)}
}

func (c *fakeCluster) Cordon(_ context.Context, name string) error {
	n, err := c.node(name)
	if err == nil {
		n.Unschedulable = true
	}
	return err
}

func (c *fakeCluster) Uncordon(_ context.Context, name string) error {
	n, err := c.node(name)
	if err == nil {
		n.Unschedulable = false
	}
	return err
}

func (c *fakeCluster) Drain(_ context.Context, name string) (engine.DrainStatus, error) {
	_, err := c.node(name)
	return engine.DrainStatus{Done: err == nil}, err
}

func (c *fakeCluster) Resources(context.Context) (engine.ClusterResources, error) {
	return engine.ClusterResources{}, nil
}

func (c *fakeCluster) Delete(_ context.Context, name string) error {
	c.nodes = slices.DeleteFunc(c.nodes, func(n *engine.Node) bool { return n.Name == name })
	return nil
}

// fakeMetrics answers every query from the load level: high wants a scale-up, low a
// scale-down.
type fakeMetrics struct {
	names   map[string]string
	high    bool
	cluster *fakeCluster
}

func (m *fakeMetrics) Query(_ context.Context, q string, at time.Time) (engine.Sample, error) {
	cpu := 10.0
	if m.high {
		cpu = 90
	}
	v := map[string]float64{engine.ReadingCPU: cpu, engine.ReadingCPUHighMin: cpu, engine.ReadingCPULowMax: cpu,
		engine.ReadingMemory: 20, engine.ReadingNodes: float64(len(m.cluster.nodes) + 1), engine.ReadingMetricAge: 5}[m.names[q]]
	return engine.Sample{Value: v, Time: at}, nil
}

// --- system under test ------------------------------------------------------------------

const protoLease = 3 * time.Minute

type protoSUT struct {
	st       *store.Store
	cloud    *fakeCloud
	cluster  *fakeCluster
	metrics  *fakeMetrics
	step     *engine.Step
	now      time.Time
	n        int
	mode     string // "", "kill", "pause": what the hook does at the next chance
	paused   *protoCo
	lost     string // next store op whose response is lost
	maxFence int64
	badWrite string
}

type protoCo struct {
	resume, yield chan struct{}
	done          bool
	rec           engine.Record
	err           error
}

func newProtoSUT() *protoSUT {
	s := &protoSUT{st: store.New(), cloud: &fakeCloud{tokens: map[string][]string{}}, cluster: &fakeCluster{},
		now: world.Epoch}
	pol := engine.DefaultPolicy()
	pol.MinWorkers, pol.MaxWorkers = 1, 4
	pol.ScaleUpCooldown, pol.ScaleDownCooldown = 0, 0
	s.cloud.now = func() time.Time { return s.now }
	s.metrics = &fakeMetrics{names: readingsByQuery(pol), cluster: s.cluster}
	s.step = &engine.Step{ClusterID: "proto", Policy: pol, Metrics: s.metrics, Cloud: s.cloud, Cluster: s.cluster,
		Store: s.st, Lease: protoLease, Hook: s.hook}
	s.st.Fault = func(op string) (error, bool) {
		if s.lost == op {
			s.lost = ""
			return errLostResponse, true
		}
		return nil, false
	}
	s.st.OnWrite = func(l engine.Lease, _ engine.State) {
		if l.Fence < s.maxFence && s.badWrite == "" {
			s.badWrite = fmt.Sprintf("write with fence %d after %d", l.Fence, s.maxFence)
		}
		s.maxFence = max(s.maxFence, l.Fence)
	}
	return s
}

func (s *protoSUT) hook(point string) error {
	switch {
	case s.mode == "kill":
		s.mode = ""
		return errKilled
	case s.mode == "pause": // before any side effect
		s.mode = ""
		c := s.paused
		c.yield <- struct{}{}
		<-c.resume
	}
	return nil
}

// protoResult is what a command saw.
type protoResult struct {
	rec      engine.Record
	err      error
	holder   string
	fence    int64
	expires  time.Time
	op       *engine.Operation
	launched int  // instances created by this command
	paused   bool // the invocation is paused (no record yet)
}

func (s *protoSUT) snapshot(rec engine.Record, err error, launchesBefore int) protoResult {
	h, f, exp := s.st.Holder()
	f2 := s.st.Fault
	s.st.Fault = nil
	st, _ := s.st.Load(context.Background())
	s.st.Fault = f2
	return protoResult{rec: rec, err: err, holder: h, fence: f, expires: exp, op: st.Operation,
		launched: s.cloud.launches - launchesBefore}
}

func (s *protoSUT) invoke(mode string) protoResult {
	s.n++
	before := s.cloud.launches
	s.mode = mode
	holder := fmt.Sprintf("inv-%d", s.n)
	if mode != "pause" {
		rec, err := s.step.Run(context.Background(), s.now, holder)
		s.mode = ""
		return s.snapshot(rec, err, before)
	}
	c := &protoCo{resume: make(chan struct{}), yield: make(chan struct{})}
	s.paused = c
	now := s.now
	go func() {
		c.rec, c.err = s.step.Run(context.Background(), now, holder)
		c.done = true
		c.yield <- struct{}{}
	}()
	<-c.yield
	s.mode = ""
	if c.done {
		s.paused = nil
	}
	r := s.snapshot(c.rec, c.err, before)
	r.paused = !c.done
	return r
}

func (s *protoSUT) resume() protoResult {
	c := s.paused
	before := s.cloud.launches
	s.paused = nil
	c.resume <- struct{}{}
	<-c.yield
	return s.snapshot(c.rec, c.err, before)
}

// --- model -------------------------------------------------------------------------------

type protoModel struct {
	now         time.Time
	holder      string // "" when free
	expires     time.Time
	fence       int64
	n           int
	paused      bool
	pausedFence int64
	lostAcquire bool
	lostWrite   string // "save" or "release": the next clean tick's call whose response is lost
	expectErr   bool   // the last clean tick must report the lost response
	expect      string // what the last invocation must report: acquired or held
	cleanAt     time.Time
}

func (m protoModel) free() bool { return m.holder == "" || !m.now.Before(m.expires) }

// invoke predicts an invocation: it acquires when the lock is free. mode is "", kill or
// pause.
func (m protoModel) invoke(mode string) protoModel {
	m.n++
	holder := fmt.Sprintf("inv-%d", m.n)
	lost := m.lostAcquire
	m.lostAcquire = false
	m.expectErr = false
	if !m.free() {
		m.expect = engine.LockHeld
		return m
	}
	m.expect = engine.LockAcquired
	m.fence++
	m.holder, m.expires = holder, m.now.Add(protoLease)
	switch {
	case lost:
		m.expect = engine.LockNotAcquired // taken, but the invocation does not know
	case mode == "kill":
	case mode == "pause":
		m.paused, m.pausedFence = true, m.fence
	default:
		m.holder = "" // released
		if m.lostWrite != "" {
			m.expectErr, m.lostWrite = true, ""
		} else {
			m.cleanAt = m.now
		}
	}
	return m
}

func (m protoModel) resume() protoModel {
	m.paused = false
	if m.fence == m.pausedFence { // no one took over: it finishes and releases
		m.holder = ""
	}
	return m
}

func post(ok bool, format string, a ...any) *gopter.PropResult {
	if ok {
		return &gopter.PropResult{Status: gopter.PropTrue}
	}
	return &gopter.PropResult{Status: gopter.PropFalse, Labels: []string{fmt.Sprintf(format, a...)}}
}

// checkCommon holds after every command.
func checkCommon(s protoModel, r protoResult, sut *protoSUT) *gopter.PropResult {
	if sut.badWrite != "" {
		return post(false, "inv 1: %s", sut.badWrite)
	}
	if r.fence != s.fence {
		return post(false, "fence %d, model %d", r.fence, s.fence)
	}
	wantHolder := s.holder
	if r.holder != wantHolder {
		return post(false, "lock holder %q, model %q", r.holder, wantHolder)
	}
	if wantHolder != "" && !r.expires.Equal(s.expires) {
		return post(false, "lease expires %v, model %v", r.expires, s.expires)
	}
	per := map[string]int{}
	for _, in := range sut.cloud.insts {
		per[in.OperationID]++
	}
	for op, n := range per {
		if n > sut.step.Policy.ScaleUpMaxStep {
			return post(false, "inv 4: operation %s has %d instances", op, n)
		}
	}
	if n := sut.cloud.active(); n > sut.step.Policy.MaxWorkers {
		return post(false, "inv 3: %d instances, max %d", n, sut.step.Policy.MaxWorkers)
	}
	return post(true, "")
}

func invokeCommand(mode string) commands.Command {
	var sut *protoSUT
	return &commands.ProtoCommand{
		Name: "Invoke(" + mode + ")",
		RunFunc: func(s commands.SystemUnderTest) commands.Result {
			sut = s.(*protoSUT)
			return sut.invoke(mode)
		},
		PreConditionFunc: func(st commands.State) bool {
			m := st.(protoModel)
			return mode == "" || (!m.paused && m.lostWrite == "")
		},
		NextStateFunc: func(st commands.State) commands.State { return st.(protoModel).invoke(mode) },
		PostConditionFunc: func(st commands.State, res commands.Result) *gopter.PropResult {
			m, r := st.(protoModel), res.(protoResult)
			if mode == "pause" {
				if r.paused != (m.expect == engine.LockAcquired) {
					return post(false, "paused %v, model expects lock %q", r.paused, m.expect)
				}
				if r.paused {
					return checkCommon(m, r, sut)
				}
			}
			if r.rec.Lock != m.expect {
				return post(false, "lock %q, model %q (err %v)", r.rec.Lock, m.expect, r.err)
			}
			if m.expect == engine.LockHeld && (len(r.rec.Acted) > 0 || r.launched > 0) {
				return post(false, "inv 1: acted without the lock: %+v", r.rec.Acted)
			}
			if mode == "" && m.expect == engine.LockAcquired {
				if (r.err != nil) != m.expectErr {
					return post(false, "tick error %v, model expects one: %v", r.err, m.expectErr)
				}
				if n := sut.cloud.active(); r.err == nil && n < sut.step.Policy.MinWorkers {
					return post(false, "inv 3: %d instances after a clean tick, min %d", n, sut.step.Policy.MinWorkers)
				}
				if op := r.op; r.err == nil && op != nil && (op.Phase == engine.PhaseLaunching || op.Phase == engine.PhaseCordoned || op.Phase == engine.PhaseTerminating) {
					return post(false, "intent left %s after a clean tick", op.Phase)
				}
			}
			return checkCommon(m, r, sut)
		},
	}
}

// duplicateCommand runs the tick again at the same instant right after a clean one: it
// must change nothing (invariant 13).
var duplicateCommand = &commands.ProtoCommand{
	Name: "Duplicate",
	RunFunc: func(s commands.SystemUnderTest) commands.Result {
		sut := s.(*protoSUT)
		return sut.invoke("")
	},
	PreConditionFunc: func(st commands.State) bool {
		m := st.(protoModel)
		return m.cleanAt.Equal(m.now) && m.free() && !m.lostAcquire && m.lostWrite == ""
	},
	NextStateFunc: func(st commands.State) commands.State { return st.(protoModel).invoke("") },
	PostConditionFunc: func(st commands.State, res commands.Result) *gopter.PropResult {
		r := res.(protoResult)
		for _, a := range r.rec.Acted {
			switch a.Kind {
			case "launch", "terminate", "cordon", "uncordon":
				return post(false, "inv 13: the duplicate tick did a %s", a.Kind)
			}
		}
		return post(r.launched == 0, "inv 13: the duplicate tick launched %d", r.launched)
	},
}

var resumeCommand = &commands.ProtoCommand{
	Name: "Resume",
	RunFunc: func(s commands.SystemUnderTest) commands.Result {
		sut := s.(*protoSUT)
		r := sut.resume()
		r.err = errors.Join(r.err, func() error {
			if sut.badWrite != "" {
				return errors.New(sut.badWrite)
			}
			return nil
		}())
		return r
	},
	PreConditionFunc: func(st commands.State) bool { return st.(protoModel).paused },
	NextStateFunc:    func(st commands.State) commands.State { return st.(protoModel).resume() },
	PostConditionFunc: func(st commands.State, res commands.Result) *gopter.PropResult {
		m, r := st.(protoModel), res.(protoResult)
		if m.fence != m.pausedFence {
			// taken over: the resumed holder is fenced out and launches nothing new
			if !errors.Is(r.err, engine.ErrFenced) {
				return post(false, "inv 1: resumed holder not fenced out: %v", r.err)
			}
			if r.launched > 0 {
				return post(false, "inv 1: resumed holder launched %d new instances", r.launched)
			}
		}
		return post(true, "")
	},
}

func advanceCommand(d time.Duration) commands.Command {
	return &commands.ProtoCommand{
		Name: "Advance(" + d.String() + ")",
		RunFunc: func(s commands.SystemUnderTest) commands.Result {
			sut := s.(*protoSUT)
			sut.now = sut.now.Add(d)
			return nil
		},
		NextStateFunc: func(st commands.State) commands.State {
			m := st.(protoModel)
			m.now = m.now.Add(d)
			return m
		},
	}
}

func loadCommand(high bool) commands.Command {
	return &commands.ProtoCommand{
		Name: fmt.Sprintf("Load(high=%v)", high),
		RunFunc: func(s commands.SystemUnderTest) commands.Result {
			s.(*protoSUT).metrics.high = high
			return nil
		},
		NextStateFunc: worldChanged,
	}
}

// joinCommand: every running instance's node registers, Ready.
var joinCommand = &commands.ProtoCommand{
	Name: "Join",
	RunFunc: func(s commands.SystemUnderTest) commands.Result {
		sut := s.(*protoSUT)
		for _, in := range sut.cloud.insts {
			has := slices.ContainsFunc(sut.cluster.nodes, func(n *engine.Node) bool { return n.InstanceID == in.ID })
			if in.State == engine.InstanceRunning && !has {
				sut.cluster.nodes = append(sut.cluster.nodes, &engine.Node{Name: "node-" + in.ID, InstanceID: in.ID, Ready: true})
			}
		}
		return nil
	},
	NextStateFunc: worldChanged,
}

// interruptCommand: the provider takes the oldest running instance away (spot); its node
// object stays, NotReady. Like EC2, DescribeInstances keeps listing it (shutting-down):
// an instance that vanished from the list could be DescribeInstances lag, which the engine
// counts as launching until the node-ready timeout.
var interruptCommand = &commands.ProtoCommand{
	Name: "Interrupt",
	RunFunc: func(s commands.SystemUnderTest) commands.Result {
		sut := s.(*protoSUT)
		for _, in := range sut.cloud.insts {
			if in.State == engine.InstanceRunning {
				in.State = engine.InstanceStopping
				for _, n := range sut.cluster.nodes {
					if n.InstanceID == in.ID {
						n.Ready = false
					}
				}
				break
			}
		}
		return nil
	},
	NextStateFunc: worldChanged,
}

// worldChanged: a tick run again after the world changed is no duplicate.
func worldChanged(st commands.State) commands.State {
	m := st.(protoModel)
	m.cleanAt = time.Time{}
	return m
}

func lostCommand(op string) commands.Command {
	return &commands.ProtoCommand{
		Name: "LoseResponse(" + op + ")",
		RunFunc: func(s commands.SystemUnderTest) commands.Result {
			s.(*protoSUT).lost = op
			return nil
		},
		PreConditionFunc: func(st commands.State) bool {
			m := st.(protoModel)
			return !m.lostAcquire && m.lostWrite == "" && !m.paused
		},
		NextStateFunc: func(st commands.State) commands.State {
			m := st.(protoModel)
			if op == "acquire" {
				m.lostAcquire = true
			} else {
				m.lostWrite = op
			}
			return m
		},
	}
}

func protocolCommands() commands.Commands {
	return &commands.ProtoCommands{
		NewSystemUnderTestFunc: func(commands.State) commands.SystemUnderTest { return newProtoSUT() },
		DestroySystemUnderTestFunc: func(s commands.SystemUnderTest) {
			if sut := s.(*protoSUT); sut.paused != nil {
				sut.resume() // let the goroutine end
			}
		},
		InitialStateGen: gen.Const(protoModel{now: world.Epoch}),
		GenCommandFunc: func(st commands.State) gopter.Gen {
			return gen.Weighted([]gen.WeightedGen{
				{Weight: 6, Gen: gen.Const(invokeCommand(""))},
				{Weight: 2, Gen: gen.Const(invokeCommand("kill"))},
				{Weight: 1, Gen: gen.Const(invokeCommand("pause"))},
				{Weight: 2, Gen: gen.Const(resumeCommand)},
				{Weight: 2, Gen: gen.Const(duplicateCommand)},
				{Weight: 5, Gen: gen.OneConstOf(advanceCommand(30*time.Second), advanceCommand(time.Minute),
					advanceCommand(2*time.Minute), advanceCommand(4*time.Minute))},
				{Weight: 2, Gen: gen.OneConstOf(loadCommand(true), loadCommand(false))},
				{Weight: 2, Gen: gen.Const(joinCommand)},
				{Weight: 1, Gen: gen.Const(interruptCommand)},
				{Weight: 1, Gen: gen.OneConstOf(lostCommand("acquire"), lostCommand("save"), lostCommand("release"))},
			})
		},
	}
}

// TestPropertyChaosLockProtocol is the commands state-machine test. CHAOS_CASES scales it.
func TestPropertyChaosLockProtocol(t *testing.T) {
	n := chaosCases(t, 1000)
	params := gopter.DefaultTestParametersWithSeed(chaosSeed(t))
	params.MinSuccessfulTests = n
	params.MaxSize = 40
	props := gopter.NewProperties(params)
	props.Property("lock + intent protocol matches the model", commands.Prop(protocolCommands()))
	props.TestingRun(t)
}

// protocolCommandsByName maps a command's String() to the command, for replays.
func protocolCommandsByName() map[string]commands.Command {
	all := []commands.Command{invokeCommand(""), invokeCommand("kill"), invokeCommand("pause"), resumeCommand,
		duplicateCommand, joinCommand, interruptCommand, loadCommand(true), loadCommand(false),
		lostCommand("acquire"), lostCommand("save"), lostCommand("release")}
	for _, d := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
		all = append(all, advanceCommand(d))
	}
	m := map[string]commands.Command{}
	for _, c := range all {
		m[c.String()] = c
	}
	return m
}

// TestChaosProtocolRegressions replays the command sequences kept in testdata/chaos.
func TestChaosProtocolRegressions(t *testing.T) {
	byName := protocolCommandsByName()
	for name, r := range loadRegressions(t) {
		if len(r.Commands) == 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			sut := newProtoSUT()
			defer protocolCommands().DestroySystemUnderTest(sut)
			var st commands.State = protoModel{now: world.Epoch}
			for i, n := range r.Commands {
				c, ok := byName[n]
				if !ok {
					t.Fatalf("unknown command %q", n)
				}
				if !c.PreCondition(st) {
					t.Fatalf("step %d %s: precondition does not hold", i, n)
				}
				res := c.Run(sut)
				st = c.NextState(st)
				if pr := c.PostCondition(st, res); !pr.Success() {
					t.Errorf("step %d %s: %v", i, n, pr.Labels)
				}
			}
		})
	}
}
