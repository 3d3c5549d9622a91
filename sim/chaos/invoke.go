package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// invocation is one run of the engine's Step: the primary tick, a duplicate, an
// overlapping one, or a paused (zombie) one.
type invocation struct {
	id          int
	role        string // tick, duplicate, overlap
	ctx         context.Context
	now         time.Time
	holder      string
	lease       engine.Lease
	acquired    bool
	promFaulted bool
	hooks       int
	killAt      int // die at this hook call (0: never)
	pauseArmed  bool
	pauseAt     int  // pause at this hook call, or the first after it
	overlap     bool // run an overlapping invocation at the first hook
	zombie      bool // resumed after a pause past its lease
	co          *coroutine
}

var (
	errKilled = errors.New("chaos: invocation killed (Lambda timeout)")
	errPaused = errors.New("chaos: invocation paused past its lease; it resumes later")
)

// autoscaler wraps SmartScale's autoscaler to drive the invocation faults.
type autoscaler struct {
	inner world.Autoscaler
	h     *Harness
}

// wrap puts the harness between the engine and its ports. Baselines (no engine Step) are
// returned as they are: they get the world's faults only.
func (h *Harness) wrap(a world.Autoscaler) world.Autoscaler {
	st := world.Step(a)
	if st == nil {
		return a
	}
	h.step = st
	st.Cloud = &cloudPort{inner: st.Cloud, h: h}
	st.Cluster = &clusterPort{inner: st.Cluster, h: h}
	st.Store = &storePort{inner: st.Store, h: h}
	if st.Notifier != nil {
		st.Notifier = &notifyPort{inner: st.Notifier, h: h}
	}
	st.Hook = h.hook
	return &autoscaler{inner: a, h: h}
}

func (h *Harness) lease() time.Duration {
	if h.step != nil && h.step.Lease > 0 {
		return h.step.Lease
	}
	return 3 * time.Minute
}

func (h *Harness) newInvocation(ctx context.Context, role string, now time.Time) *invocation {
	h.nInv++
	return &invocation{id: h.nInv, role: role, ctx: ctx, now: now}
}

// Tick implements world.Autoscaler.
func (a *autoscaler) Tick(ctx context.Context, now time.Time) (engine.Record, error) {
	h := a.h
	inv := h.newInvocation(ctx, "tick", now)
	if _, ok := h.active(InvokeKill); ok && h.chance(2) {
		inv.killAt = 1 + h.rng.IntN(4)
	}
	if _, ok := h.active(InvokePause); ok && h.paused == nil && h.chance(2) {
		inv.pauseArmed, inv.pauseAt = true, 1+h.rng.IntN(4)
	}
	_, dup := h.active(InvokeDuplicate)
	inv.overlap = dup

	var rec engine.Record
	var err error
	if inv.pauseArmed {
		c := h.start(inv, func() (engine.Record, error) { return a.inner.Tick(ctx, now) })
		if c.done {
			rec, err = c.rec, c.err
		} else {
			// Paused: this tick's invocation hangs. It resumes after its lease has
			// expired and the first tick after that has had the chance to take over.
			resume := now.Add(h.lease() + world.TickInterval + time.Second + time.Duration(h.rng.IntN(int(world.TickInterval/time.Second)))*time.Second)
			h.w.Loop.At(resume, h.resume)
			rec = engine.Record{Time: now.UTC(), Holder: inv.holder, Lock: engine.LockAcquired, Fence: inv.lease.Fence,
				Acted: []engine.Act{}, Error: errPaused.Error(),
				Decision: engine.Decision{Action: engine.ActionBusy, Reason: "invocation paused (chaos)"}}
			return rec, errPaused
		}
	} else {
		prev := h.cur
		h.cur = inv
		rec, err = a.inner.Tick(ctx, now)
		h.cur = prev
	}
	h.chk.record(inv, rec, err)
	if dup && err == nil && rec.Lock == engine.LockAcquired && !failed(rec) {
		h.duplicate(ctx, now)
	}
	return rec, err
}

// AlertTick implements world.AlertTicker: an alert tick is an invocation like the others,
// its side effects checked, the world's faults applying (the invocation faults drive the
// scheduled ticks).
func (a *autoscaler) AlertTick(ctx context.Context, now time.Time, alerts []string) (engine.Record, error) {
	at, ok := a.inner.(world.AlertTicker)
	if !ok {
		return engine.Record{Time: now.UTC(), Lock: engine.LockSkipped, Acted: []engine.Act{}}, nil
	}
	h := a.h
	inv := h.newInvocation(ctx, "alert", now)
	prev := h.cur
	h.cur = inv
	rec, err := at.AlertTick(ctx, now, alerts)
	h.cur = prev
	h.chk.record(inv, rec, err)
	return rec, err
}

func failed(rec engine.Record) bool {
	if rec.Error != "" {
		return true
	}
	for _, a := range rec.Acted {
		if a.Result == "failed" {
			return true
		}
	}
	for _, ev := range rec.Events {
		if ev.Kind == engine.EventFailure { // e.g. every offering is backing off
			return true
		}
	}
	return false
}

// duplicate runs the tick again at the same instant (EventBridge delivered it twice).
func (h *Harness) duplicate(ctx context.Context, now time.Time) {
	before := h.rawState()
	inv := h.newInvocation(ctx, "duplicate", now)
	prev := h.cur
	h.cur = inv
	rec, err := h.step.Run(ctx, now, fmt.Sprintf("dup-%d", inv.id))
	h.cur = prev
	h.inject(InvokeDuplicate)
	h.chk.record(inv, rec, err)
	h.chk.duplicate(inv, rec, err, before, h.rawState())
}

// overlapping runs another invocation while inv holds the lock.
func (h *Harness) overlapping(inv *invocation) {
	ov := h.newInvocation(inv.ctx, "overlap", inv.now)
	prev := h.cur
	h.cur = ov
	rec, err := h.step.Run(inv.ctx, inv.now, fmt.Sprintf("overlap-%d", ov.id))
	h.cur = prev
	h.inject(InvokeDuplicate)
	h.chk.record(ov, rec, err)
	h.chk.overlap(ov, rec, err)
}

// rawState reads the stored state without faults.
func (h *Harness) rawState() engine.State {
	f := h.w.State.Fault
	h.w.State.Fault = nil
	st, _ := h.w.State.Load(context.Background())
	h.w.State.Fault = f
	return st
}

// hook is the engine Step's Hook: called before each side effect.
func (h *Harness) hook(point string) error {
	inv := h.cur
	if inv == nil {
		return nil
	}
	inv.hooks++
	if inv.overlap {
		inv.overlap = false
		h.overlapping(inv)
	}
	if inv.killAt > 0 && inv.hooks == inv.killAt {
		h.inject(InvokeKill)
		h.chk.died(inv, "killed at "+point)
		return errKilled
	}
	// a pause may come before any side effect: state writes, launches, cordons, drains,
	// uncordons, terminations and node deletions (each renews the lease first, so a holder
	// that resumes after losing it is fenced out before it acts)
	if inv.pauseArmed && inv.hooks >= inv.pauseAt {
		inv.pauseArmed = false
		h.inject(InvokePause)
		h.pause(inv.co)
	}
	return nil
}

// coroutine runs a pausable invocation on its own goroutine. Exactly one of it and the
// simulator's goroutine runs at any time: each waits on the other at fixed points.
type coroutine struct {
	inv    *invocation
	resume chan struct{}
	yield  chan struct{}
	done   bool
	rec    engine.Record
	err    error
}

// start runs fn as a coroutine until it finishes or pauses.
func (h *Harness) start(inv *invocation, fn func() (engine.Record, error)) *coroutine {
	c := &coroutine{inv: inv, resume: make(chan struct{}), yield: make(chan struct{})}
	inv.co = c
	prev := h.cur
	h.cur = inv
	go func() {
		c.rec, c.err = fn()
		c.done = true
		c.yield <- struct{}{}
	}()
	<-c.yield
	h.cur = prev
	return c
}

// pause runs on the coroutine: hand control back and wait to be resumed.
func (h *Harness) pause(c *coroutine) {
	h.paused = c
	c.yield <- struct{}{}
	<-c.resume
}

// resume lets the paused invocation go on until it finishes, then checks what it did.
func (h *Harness) resume() {
	c := h.paused
	if c == nil {
		return
	}
	h.paused = nil
	c.inv.zombie = true
	prev := h.cur
	h.cur = c.inv
	c.resume <- struct{}{}
	<-c.yield
	h.cur = prev
	h.chk.record(c.inv, c.rec, c.err)
}

// storePort is the StateStore port seen by the engine: it learns each invocation's lease.
type storePort struct {
	inner engine.StateStore
	h     *Harness
}

func (s *storePort) Load(ctx context.Context) (engine.State, error) { return s.inner.Load(ctx) }

func (s *storePort) Acquire(ctx context.Context, holder string, now time.Time, lease time.Duration) (engine.Lease, engine.State, error) {
	l, st, err := s.inner.Acquire(ctx, holder, now, lease)
	if inv := s.h.cur; inv != nil {
		inv.holder = holder
		switch {
		case err == nil:
			inv.lease, inv.acquired = l, true
		case !errors.Is(err, engine.ErrLockHeld):
			if hd, f, exp := s.h.w.State.Holder(); hd == holder {
				// the lock was taken but the invocation does not know: it is held
				// by no one alive until the lease expires
				inv.lease = engine.Lease{Holder: hd, Fence: f, Expires: exp}
				s.h.chk.died(inv, "acquire response lost")
			}
		}
	}
	return l, st, err
}

func (s *storePort) Save(ctx context.Context, l engine.Lease, st engine.State) error {
	return s.inner.Save(ctx, l, st)
}

func (s *storePort) Renew(ctx context.Context, l engine.Lease, until time.Time) (engine.Lease, error) {
	return s.inner.Renew(ctx, l, until)
}

func (s *storePort) Release(ctx context.Context, l engine.Lease) error {
	err := s.inner.Release(ctx, l)
	if inv := s.h.cur; inv != nil && err != nil {
		if hd, f, _ := s.h.w.State.Holder(); hd == l.Holder && f == l.Fence {
			s.h.chk.died(inv, "release failed")
		}
	}
	return err
}

// cloudPort is the Cloud port seen by the engine: every call is checked.
type cloudPort struct {
	inner engine.Cloud
	h     *Harness
}

func (c *cloudPort) Launch(ctx context.Context, req engine.LaunchRequest) ([]engine.Instance, error) {
	c.h.chk.beforeLaunch(c.h.cur, req)
	before := c.h.w.Cloud.Launches
	insts, err := c.inner.Launch(ctx, req)
	c.h.chk.afterLaunch(c.h.cur, req, c.h.w.Cloud.Launches > before)
	return insts, err
}

func (c *cloudPort) Instances(ctx context.Context) ([]engine.Instance, error) {
	return c.inner.Instances(ctx)
}

func (c *cloudPort) Terminate(ctx context.Context, ids []string) error {
	pods := c.h.chk.beforeTerminate(c.h.cur, ids)
	err := c.inner.Terminate(ctx, ids)
	if err == nil {
		c.h.chk.afterTerminate(ids, pods)
	}
	return err
}

// clusterPort is the Cluster port seen by the engine: every side effect is checked.
type clusterPort struct {
	inner engine.Cluster
	h     *Harness
}

func (c *clusterPort) Nodes(ctx context.Context) ([]engine.Node, error) { return c.inner.Nodes(ctx) }

func (c *clusterPort) Resources(ctx context.Context) (engine.ClusterResources, error) {
	return c.inner.Resources(ctx)
}

func (c *clusterPort) Cordon(ctx context.Context, node string) error {
	c.h.chk.nodeEffect(c.h.cur, "cordon", node)
	return c.inner.Cordon(ctx, node)
}

func (c *clusterPort) Uncordon(ctx context.Context, node string) error {
	c.h.chk.nodeEffect(c.h.cur, "uncordon", node)
	return c.inner.Uncordon(ctx, node)
}

func (c *clusterPort) Drain(ctx context.Context, node string) (engine.DrainStatus, error) {
	c.h.chk.nodeEffect(c.h.cur, "drain", node)
	return c.inner.Drain(ctx, node)
}

func (c *clusterPort) Delete(ctx context.Context, node string) error {
	c.h.chk.nodeEffect(c.h.cur, "delete", node)
	return c.inner.Delete(ctx, node)
}
