package chaos

import (
	"fmt"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// The spot invariants, 16-19 (docs/chaos.md). 16 and 17 hold trivially without spot; 18 and
// 19 hold for every policy.

// spotCheck is what the spot invariants remember.
type spotCheck struct {
	baseShortSince, readyShortSince time.Time
	readyExcuse                     time.Time
	drainedBy                       map[string]string // node -> the operation that drained it
}

// readyKinds delay Ready workers beyond one tick plus a boot (besides the low kinds).
var readyKinds = []string{NodeNeverReady, SlowBoot, NodesNotReady, EC2DescribeLag, EC2LaunchThenFail}

// warnedLive counts the live managed instances warned of an interruption: they leave within
// their notice, so their replacements may stand beside them for that long.
func (c *checker) warnedLive() int {
	n := 0
	for _, in := range c.h.w.Cloud.All() {
		if in.Managed && (in.State == engine.InstancePending || in.State == engine.InstanceRunning) && c.h.w.Cloud.Warned(in.ID) {
			n++
		}
	}
	return n
}

// cloudAsked lists the nodes of the cloud's scale-downs (interrupted, at risk).
func (c *checker) cloudAsked() map[string]bool {
	out := map[string]bool{}
	for _, op := range c.state.Open() {
		if op.Kind == engine.OpScaleDown && op.Cause != "" {
			out[op.Node] = true
		}
	}
	return out
}

// bootBound is a generous bound on launch-to-Ready: twice the p90s of boot and join, plus
// the ready delay.
func (c *checker) bootBound() time.Duration {
	cl := c.h.w.Sim.Cloud
	return time.Duration((2*(cl.BootP90S+cl.JoinP90S) + cl.ReadyDelayS) * float64(time.Second))
}

func (c *checker) afterStepSpot() {
	now, p, w := c.now(), c.policy(), c.h.w
	tick := world.TickInterval
	if c.h.anyActive(lowKinds...) {
		c.sp.readyExcuse = later(c.sp.readyExcuse, now.Add(c.h.lease()+c.capBackoff()+tick+c.bootBound()))
	}
	if c.h.anyActive(readyKinds...) {
		c.sp.readyExcuse = later(c.sp.readyExcuse, now.Add(p.NodeReadyTimeout+2*tick+c.bootBound()))
	}

	// 16: the on-demand base
	if p.UsesSpot() && p.OnDemandBase > 0 {
		od, n := 0, 0
		for _, in := range w.Cloud.All() {
			if !in.Managed || (in.State != engine.InstancePending && in.State != engine.InstanceRunning) {
				continue
			}
			n++
			if !in.Offering.Spot() {
				od++
			}
		}
		if od < min(p.OnDemandBase, n) && n < p.MaxWorkers {
			if c.sp.baseShortSince.IsZero() {
				c.sp.baseShortSince = now
			}
			if deadline := later(c.sp.baseShortSince.Add(tick+30*time.Second), c.lowExcuse); now.After(deadline) {
				c.failOnce(fmt.Sprintf("base@%d", c.sp.baseShortSince.Unix()), 16, "%d on-demand workers of %d, below on_demand_base %d since %s",
					od, n, p.OnDemandBase, shortDur(c.sp.baseShortSince.Sub(world.Epoch)))
			}
		} else {
			c.sp.baseShortSince = time.Time{}
		}
	}

	// 17: spot requests and their instances
	reqs := map[string]bool{}
	for _, r := range w.Cloud.SpotRequests() {
		in, ok := w.Cloud.Get(r.Instance)
		live := ok && (in.State == engine.InstancePending || in.State == engine.InstanceRunning)
		if r.State == "active" {
			reqs[r.Instance] = true
			if !live {
				c.failOnce("sir@"+r.ID, 17, "spot request %s is %s but its instance %s is gone: orphaned", r.ID, r.State, r.Instance)
			}
		}
	}
	for _, in := range w.Cloud.All() {
		if in.Managed && in.Offering.Spot() && (in.State == engine.InstancePending || in.State == engine.InstanceRunning) && !reqs[in.ID] {
			c.failOnce("nosir@"+in.ID, 17, "spot instance %s has no active spot request", in.ID)
		}
	}

	// 19: min workers Ready again within one tick plus a boot
	ready := 0
	for _, nd := range w.Cluster.AllNodes() {
		if !nd.ControlPlane && !nd.Gone && nd.Ready {
			ready++
		}
	}
	if ready < p.MinWorkers {
		if c.sp.readyShortSince.IsZero() {
			c.sp.readyShortSince = now
		}
		deadline := later(c.sp.readyShortSince.Add(tick+30*time.Second+c.bootBound()), later(c.sp.readyExcuse, c.lowExcuse))
		if now.After(deadline) {
			c.failOnce(fmt.Sprintf("ready@%d", c.sp.readyShortSince.Unix()), 19, "%d Ready workers, below min %d since %s (more than a tick plus a boot)",
				ready, p.MinWorkers, shortDur(c.sp.readyShortSince.Sub(world.Epoch)))
		}
	} else {
		c.sp.readyShortSince = time.Time{}
	}
}

// onWriteSpot checks every accepted state write: no two open operations own one node (18).
func (c *checker) onWriteSpot(st engine.State) {
	owner := map[string]string{}
	for _, op := range st.Open() {
		if op.Kind != engine.OpScaleDown || op.Node == "" {
			continue
		}
		if o, ok := owner[op.Node]; ok {
			c.failOnce("owners@"+op.Node+o+op.ID, 18, "node %s owned by two open operations, %s and %s", op.Node, o, op.ID)
		}
		owner[op.Node] = op.ID
	}
}

// recordSpot checks a record's drains: a node is drained by one operation at most (18).
func (c *checker) recordSpot(inv *invocation, rec engine.Record) {
	if c.sp.drainedBy == nil {
		c.sp.drainedBy = map[string]string{}
	}
	for _, a := range rec.Acted {
		if a.Kind != "drain" || a.Result != "ok" || a.Node == "" {
			continue
		}
		if by, ok := c.sp.drainedBy[a.Node]; ok && by != a.Operation {
			c.failOnce("drained2@"+a.Node, 18, "node %s drained by %s after %s had drained it", a.Node, a.Operation, by)
		}
		c.sp.drainedBy[a.Node] = a.Operation
	}
}
